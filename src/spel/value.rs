//! The values an expression works on: plain data, and read-only views of the objects ShinyProxy
//! offers (`proxy`, `oidcUser`, …), whose kind decides which methods they answer.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(Object),
}

/// Which of ShinyProxy's objects a value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `proxy`: `getRuntimeValue('KEY')` and friends read `runtimeValues`.
    Proxy,
    /// `proxy.getRuntimeObject('SHINYPROXY_PARAMETERS')`.
    Parameters,
    /// `oidcUser`: `getClaimAsString` reads `attributes`.
    OidcUser,
    /// `samlCredential`: `getFirstAttribute` reads `attributes` (lists of text).
    SamlCredential,
    /// Anything else with fields: `proxySpec`, `ldapUser`, a container, …
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub fields: BTreeMap<String, Value>,
}

impl Object {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            fields: BTreeMap::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_string(), value.into());
        self
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Str(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map(Into::into).unwrap_or(Value::Null)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}

impl From<&[String]> for Value {
    fn from(items: &[String]) -> Self {
        Value::List(items.iter().map(Value::from).collect())
    }
}

impl From<&BTreeMap<String, String>> for Value {
    fn from(m: &BTreeMap<String, String>) -> Self {
        Value::Map(m.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
    }
}

impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Self {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::List(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "true/false",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "text",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Object(o) => o.kind.name(),
        }
    }

    /// The text of a value inside a longer text: null is empty, a list is `A,B` (Spring's
    /// conversion), so `x-#{groups}` gives `x-A,B`.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(","),
            other => other.java_string(),
        }
    }

    /// Java's `toString`, which a value standing alone in a text field gets: `[A, B]` for a
    /// list, `null` for null inside `+`.
    pub fn java_string(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => {
                if f.fract() == 0.0 && f.is_finite() {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            }
            Value::Str(s) => s.clone(),
            Value::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Value::java_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.java_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Object(o) => o.kind.name().to_string(),
        }
    }

    /// The result of an access rule: ShinyProxy converts it to a Boolean, which also takes
    /// `yes`/`no`, `on`/`off`, `1`/`0`; anything else (null included) is an error.
    pub fn to_bool(&self) -> Result<bool, String> {
        match self {
            Value::Bool(b) => Ok(*b),
            Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(format!("'{s}' is not true or false")),
            },
            other => Err(format!("{} is not true or false", other.type_name())),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// SpEL's `==`: numbers by value across types, no conversion between text and numbers.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (a, b) if a.as_f64().is_some() && b.as_f64().is_some() => a.as_f64() == b.as_f64(),
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (a, b) => a == b,
        }
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::Parameters => "parameters",
            Kind::OidcUser => "oidcUser",
            Kind::SamlCredential => "samlCredential",
            Kind::Plain => "an object",
        }
    }
}
