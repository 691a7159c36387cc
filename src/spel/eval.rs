//! Evaluating a parsed expression against the names of one moment (a login, a page, a
//! launch). Only values handed in can be read, and only the methods listed here called.

use std::collections::BTreeMap;

use super::parser::{BinOp, Expr, Pattern, compile_pattern};
use super::value::{Kind, Value};

/// The names an expression can read, e.g. `userId`, `groups`, `proxy`.
#[derive(Debug, Clone, Default)]
pub struct Context {
    roots: BTreeMap<String, Value>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.roots.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.roots.get(name)
    }
}

/// Why an expression could not be evaluated; `at` counts characters in the config value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub at: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, EvalError>;

fn fail<T>(at: usize, message: impl Into<String>) -> Result<T> {
    Err(EvalError {
        at,
        message: message.into(),
    })
}

pub fn eval(e: &Expr, ctx: &Context) -> Result<Value> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        // A name the moment does not provide is null, as in ShinyProxy.
        Expr::Name { name, .. } => Ok(ctx.get(name).cloned().unwrap_or(Value::Null)),
        Expr::This => Ok(Value::Map(ctx.roots.clone())),
        Expr::Prop {
            target,
            name,
            safe,
            at,
        } => {
            let t = eval(target, ctx)?;
            property(t, name, *safe, *at)
        }
        Expr::Call {
            target: None,
            name,
            args,
            at,
            ..
        } => {
            let args = eval_all(args, ctx)?;
            root_function(name, &args, *at)
        }
        Expr::Call {
            target: Some(target),
            name,
            args,
            safe,
            at,
        } => {
            let t = eval(target, ctx)?;
            if t == Value::Null {
                return if *safe {
                    Ok(Value::Null)
                } else {
                    fail(*at, format!("cannot call '{name}' on null"))
                };
            }
            let args = eval_all(args, ctx)?;
            // ShinyProxy's group matching ignores case (`access-groups`); so does
            // `groups.contains`, although `groups` holds the names upper-cased as ShinyProxy
            // hands them to expressions.
            let on_groups = matches!(&**target, Expr::Name { name, .. } if name == "groups");
            method(t, name, &args, *at, on_groups)
        }
        Expr::Index { target, index, at } => {
            let t = eval(target, ctx)?;
            let i = eval(index, ctx)?;
            indexed(t, i, *at)
        }
        Expr::Not(inner, at) => Ok(Value::Bool(!boolean(eval(inner, ctx)?, *at)?)),
        Expr::Neg(inner, at) => match eval(inner, ctx)? {
            Value::Int(n) => Ok(Value::Int(n.checked_neg().unwrap_or(i64::MAX))),
            Value::Float(f) => Ok(Value::Float(-f)),
            other => fail(*at, format!("cannot negate {}", other.type_name())),
        },
        Expr::And(a, b, at) => Ok(Value::Bool(
            boolean(eval(a, ctx)?, *at)? && boolean(eval(b, ctx)?, *at)?,
        )),
        Expr::Or(a, b, at) => Ok(Value::Bool(
            boolean(eval(a, ctx)?, *at)? || boolean(eval(b, ctx)?, *at)?,
        )),
        Expr::Binary {
            op,
            left,
            right,
            at,
        } => binary(*op, eval(left, ctx)?, eval(right, ctx)?, *at),
        Expr::Matches { text, pattern, at } => {
            let text = match eval(text, ctx)? {
                Value::Null => return fail(*at, "'matches' on null"),
                v => v.to_text(),
            };
            let is_match = match pattern {
                Pattern::Fixed(re) => re.is_match(&text),
                Pattern::Computed(p) => {
                    let p = eval(p, ctx)?.to_text();
                    compile_pattern(&p, *at)
                        .map_err(|e| EvalError {
                            at: e.at,
                            message: e.message,
                        })?
                        .is_match(&text)
                }
            };
            Ok(Value::Bool(is_match))
        }
        Expr::Ternary(cond, yes, no, at) => {
            if boolean(eval(cond, ctx)?, *at)? {
                eval(yes, ctx)
            } else {
                eval(no, ctx)
            }
        }
        Expr::Elvis(a, b) => match eval(a, ctx)? {
            Value::Null => eval(b, ctx),
            Value::Str(s) if s.is_empty() => eval(b, ctx),
            v => Ok(v),
        },
        Expr::List(items) => Ok(Value::List(eval_all(items, ctx)?)),
        Expr::Map(entries) => Ok(Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), eval(v, ctx)?)))
                .collect::<Result<_>>()?,
        )),
    }
}

fn eval_all(items: &[Expr], ctx: &Context) -> Result<Vec<Value>> {
    items.iter().map(|e| eval(e, ctx)).collect()
}

fn boolean(v: Value, at: usize) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(b),
        other => fail(
            at,
            format!("expected true or false here, found {}", other.type_name()),
        ),
    }
}

fn property(t: Value, name: &str, safe: bool, at: usize) -> Result<Value> {
    match t {
        Value::Null if safe => Ok(Value::Null),
        Value::Null => fail(
            at,
            format!("cannot read '{name}' of null (use ?. to allow null)"),
        ),
        Value::Map(m) => match m.get(name) {
            Some(v) => Ok(v.clone()),
            None => fail(
                at,
                format!("there is no '{name}' here; use ['{name}'] to allow a missing key"),
            ),
        },
        Value::Object(o) => match o.fields.get(name) {
            Some(v) => Ok(v.clone()),
            None => fail(
                at,
                format!(
                    "{} has no '{name}'; it has: {}",
                    o.kind.name(),
                    o.fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
        },
        other => fail(
            at,
            format!("{} has no property '{name}'", other.type_name()),
        ),
    }
}

fn indexed(t: Value, i: Value, at: usize) -> Result<Value> {
    match (t, i) {
        (Value::List(items), Value::Int(n)) => usize::try_from(n)
            .ok()
            .and_then(|n| items.get(n).cloned())
            .map_or_else(|| fail(at, format!("index {n} is outside the list")), Ok),
        (Value::Str(s), Value::Int(n)) => usize::try_from(n)
            .ok()
            .and_then(|n| s.chars().nth(n))
            .map_or_else(
                || fail(at, format!("index {n} is outside the text")),
                |c| Ok(Value::Str(c.to_string())),
            ),
        // A missing key in [] is null, unlike the dotted form.
        (Value::Map(m), Value::Str(k)) => Ok(m.get(&k).cloned().unwrap_or(Value::Null)),
        (Value::Object(o), Value::Str(k)) => Ok(o.fields.get(&k).cloned().unwrap_or(Value::Null)),
        (Value::Null, _) => fail(at, "cannot index null"),
        (t, i) => fail(
            at,
            format!("cannot index {} with {}", t.type_name(), i.type_name()),
        ),
    }
}

fn binary(op: BinOp, a: Value, b: Value, at: usize) -> Result<Value> {
    use std::cmp::Ordering;
    let order = |a: &Value, b: &Value| -> Result<Ordering> {
        match (a, b) {
            (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
            (x, y) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x
                    .partial_cmp(&y)
                    .map_or_else(|| fail(at, "cannot compare NaN"), Ok),
                _ => fail(
                    at,
                    format!("cannot compare {} with {}", x.type_name(), y.type_name()),
                ),
            },
        }
    };
    Ok(match op {
        BinOp::Eq => Value::Bool(a.equals(&b)),
        BinOp::Ne => Value::Bool(!a.equals(&b)),
        BinOp::Lt => Value::Bool(order(&a, &b)?.is_lt()),
        BinOp::Le => Value::Bool(order(&a, &b)?.is_le()),
        BinOp::Gt => Value::Bool(order(&a, &b)?.is_gt()),
        BinOp::Ge => Value::Bool(order(&a, &b)?.is_ge()),
        BinOp::Add => match (&a, &b) {
            (Value::Str(_), _) | (_, Value::Str(_)) => {
                Value::Str(a.java_string() + &b.java_string())
            }
            _ => arithmetic(op, &a, &b, at)?,
        },
        _ => arithmetic(op, &a, &b, at)?,
    })
}

fn arithmetic(op: BinOp, a: &Value, b: &Value, at: usize) -> Result<Value> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let (x, y) = (*x, *y);
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y == 0 => return fail(at, "division by zero"),
            BinOp::Div => x.checked_div(y),
            BinOp::Rem if y == 0 => return fail(at, "division by zero"),
            BinOp::Rem => x.checked_rem(y),
            BinOp::Pow => u32::try_from(y).ok().and_then(|y| x.checked_pow(y)),
            _ => None,
        };
        return r.map_or_else(
            || fail(at, "the number is out of range"),
            |n| Ok(Value::Int(n)),
        );
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return fail(
            at,
            format!(
                "cannot do arithmetic on {} and {}",
                a.type_name(),
                b.type_name()
            ),
        );
    };
    Ok(Value::Float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Rem => x % y,
        BinOp::Pow => x.powf(y),
        _ => return fail(at, "not an arithmetic operator"),
    }))
}

/// The names a method may have; `check` refuses any other at load.
pub const METHODS: &[&str] = &[
    "contains",
    "startsWith",
    "endsWith",
    "equals",
    "equalsIgnoreCase",
    "toLowerCase",
    "toUpperCase",
    "trim",
    "strip",
    "length",
    "isEmpty",
    "isBlank",
    "substring",
    "indexOf",
    "lastIndexOf",
    "replace",
    "concat",
    "split",
    "replaceFirst",
    "replaceAll",
    "matches",
    "toString",
    "asText",
    "size",
    "get",
    "containsKey",
    "isOneOf",
    "isOneOfIgnoreCase",
    "getRuntimeValue",
    "getRuntimeValueOrNull",
    "getRuntimeValueOrDefault",
    "getRuntimeObject",
    "getValue",
    "getValueSetName",
    "getClaimAsString",
    "getClaimAsStringList",
    "getFirstAttribute",
    "getAttribute",
];

/// ShinyProxy's helpers at the root: `toList`, `toLowerCaseList`, `isOneOf`,
/// `isOneOfIgnoreCase`; null-safe and trimming.
pub const ROOT_FUNCTIONS: &[&str] = &["toList", "toLowerCaseList", "isOneOf", "isOneOfIgnoreCase"];

fn root_function(name: &str, args: &[Value], at: usize) -> Result<Value> {
    match (name, args) {
        ("toList" | "toLowerCaseList", [s, rest @ ..]) if rest.len() <= 1 => {
            let Value::Str(s) = s else {
                return Ok(Value::List(Vec::new()));
            };
            let parts: Vec<String> = match rest.first() {
                Some(sep) => regex_of(&sep.to_text(), at)?
                    .split(s)
                    .map(str::to_string)
                    .collect(),
                None => s.split(',').map(str::to_string).collect(),
            };
            Ok(Value::List(
                parts
                    .into_iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        Value::Str(if name == "toLowerCaseList" {
                            p.to_lowercase()
                        } else {
                            p
                        })
                    })
                    .collect(),
            ))
        }
        ("isOneOf" | "isOneOfIgnoreCase", [value, allowed @ ..]) => {
            let Value::Str(v) = value else {
                return Ok(Value::Bool(false));
            };
            Ok(Value::Bool(one_of(v, allowed, name == "isOneOfIgnoreCase")))
        }
        _ => fail(
            at,
            format!(
                "'{name}' is not a function here; the functions are {}",
                ROOT_FUNCTIONS.join(", ")
            ),
        ),
    }
}

fn one_of(v: &str, allowed: &[Value], ignore_case: bool) -> bool {
    let v = v.trim();
    allowed.iter().any(|a| {
        let a = a.to_text();
        if ignore_case {
            a.trim().eq_ignore_ascii_case(v)
        } else {
            a.trim() == v
        }
    })
}

fn regex_of(pattern: &str, at: usize) -> Result<regex::Regex> {
    if pattern.chars().count() > 1000 {
        return fail(at, "a pattern may be at most 1000 characters long");
    }
    regex::Regex::new(pattern).map_err(|e| EvalError {
        at,
        message: format!("not a valid regular expression: {e}"),
    })
}

fn method(t: Value, name: &str, args: &[Value], at: usize, on_groups: bool) -> Result<Value> {
    // A getter spelled as a call reads the property: proxy.getUserId() is proxy.userId.
    if args.is_empty()
        && let Some(prop) = getter_property(name)
        && let Value::Object(o) = &t
        && let Some(v) = o.fields.get(&prop)
    {
        return Ok(v.clone());
    }
    match t {
        Value::Str(s) => text_method(&s, name, args, at),
        Value::List(items) => list_method(&items, name, args, at, on_groups),
        Value::Map(m) => map_method(&m, name, args, at),
        Value::Object(o) => {
            let text_arg = |i: usize| args.get(i).map(Value::to_text);
            match (o.kind, name, args.len()) {
                (Kind::Proxy, "getRuntimeValue" | "getRuntimeValueOrNull", 1)
                | (Kind::Proxy, "getRuntimeValueOrDefault", 2) => {
                    let key = text_arg(0).unwrap_or_default();
                    let found = runtime_values(&o.fields).and_then(|m| m.get(&key)).cloned();
                    match (found, name) {
                        (Some(v), _) => Ok(v),
                        (None, "getRuntimeValueOrNull") => Ok(Value::Null),
                        (None, "getRuntimeValueOrDefault") => Ok(args[1].clone()),
                        (None, _) => fail(at, format!("the runtime value '{key}' is not set")),
                    }
                }
                (Kind::Proxy, "getRuntimeObject", 1) => {
                    let key = text_arg(0).unwrap_or_default();
                    match o.fields.get("runtimeObjects") {
                        Some(Value::Map(m)) if m.contains_key(&key) => Ok(m[&key].clone()),
                        _ => fail(at, format!("the runtime object '{key}' is not set")),
                    }
                }
                (Kind::Parameters, "getValue", 1) => {
                    let id = text_arg(0).unwrap_or_default();
                    match o.fields.get("values") {
                        Some(Value::Map(m)) if m.contains_key(&id) => Ok(m[&id].clone()),
                        _ => fail(at, format!("there is no parameter '{id}'")),
                    }
                }
                (Kind::Parameters, "getValueSetName", 0) => {
                    Ok(o.fields.get("valueSetName").cloned().unwrap_or(Value::Null))
                }
                (Kind::OidcUser, "getClaimAsString" | "getClaimAsStringList", 1) => {
                    let claim = text_arg(0).unwrap_or_default();
                    let v = match o.fields.get("attributes") {
                        Some(Value::Map(m)) => m.get(&claim).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    Ok(match (name, v) {
                        (_, Value::Null) => Value::Null,
                        ("getClaimAsString", v) => Value::Str(v.to_text()),
                        (_, Value::List(l)) => Value::List(l),
                        (_, v) => Value::List(vec![v]),
                    })
                }
                (Kind::SamlCredential, "getFirstAttribute" | "getAttribute", 1) => {
                    let attr = text_arg(0).unwrap_or_default();
                    let values = match o.fields.get("attributes") {
                        Some(Value::Map(m)) => m.get(&attr).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    Ok(match (name, values) {
                        ("getFirstAttribute", Value::List(l)) => {
                            l.into_iter().next().unwrap_or(Value::Null)
                        }
                        (_, v) => v,
                    })
                }
                _ => fail(
                    at,
                    format!(
                        "{} has no method '{name}' taking {} values",
                        o.kind.name(),
                        args.len()
                    ),
                ),
            }
        }
        other => fail(at, format!("{} has no method '{name}'", other.type_name())),
    }
}

fn runtime_values(fields: &BTreeMap<String, Value>) -> Option<&BTreeMap<String, Value>> {
    match fields.get("runtimeValues") {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    }
}

/// `getUserId` → `userId`, `isEmpty` is a method, not a getter.
fn getter_property(name: &str) -> Option<String> {
    let rest = name.strip_prefix("get")?;
    let mut chars = rest.chars();
    let first = chars.next()?;
    first
        .is_uppercase()
        .then(|| first.to_lowercase().chain(chars).collect())
}

fn text_method(s: &str, name: &str, args: &[Value], at: usize) -> Result<Value> {
    let arg = |i: usize| -> Result<String> {
        match args.get(i) {
            Some(Value::Null) | None => fail(at, format!("'{name}' needs a value here")),
            Some(v) => Ok(v.to_text()),
        }
    };
    let int_arg = |i: usize| -> Result<usize> {
        match args.get(i) {
            Some(Value::Int(n)) => {
                usize::try_from(*n).map_or_else(|_| fail(at, "a position cannot be negative"), Ok)
            }
            _ => fail(at, format!("'{name}' needs a whole number here")),
        }
    };
    let chars: Vec<char> = s.chars().collect();
    Ok(match (name, args.len()) {
        ("contains", 1) => Value::Bool(s.contains(&arg(0)?)),
        ("startsWith", 1) => Value::Bool(s.starts_with(&arg(0)?)),
        ("endsWith", 1) => Value::Bool(s.ends_with(&arg(0)?)),
        ("equals", 1) => Value::Bool(args[0] == Value::Str(s.to_string())),
        ("equalsIgnoreCase", 1) => Value::Bool(s.to_lowercase() == arg(0)?.to_lowercase()),
        ("toLowerCase", 0) => Value::Str(s.to_lowercase()),
        ("toUpperCase", 0) => Value::Str(s.to_uppercase()),
        ("trim" | "strip", 0) => Value::Str(s.trim().to_string()),
        ("length", 0) => Value::Int(chars.len() as i64),
        ("isEmpty", 0) => Value::Bool(s.is_empty()),
        ("isBlank", 0) => Value::Bool(s.trim().is_empty()),
        ("toString" | "asText", 0) => Value::Str(s.to_string()),
        ("substring", 1 | 2) => {
            let from = int_arg(0)?;
            let to = if args.len() == 2 {
                int_arg(1)?
            } else {
                chars.len()
            };
            if from > to || to > chars.len() {
                return fail(at, format!("substring({from}, {to}) is outside the text"));
            }
            Value::Str(chars[from..to].iter().collect())
        }
        ("indexOf" | "lastIndexOf", 1) => {
            let needle = arg(0)?;
            let found = if name == "indexOf" {
                s.find(&needle)
            } else {
                s.rfind(&needle)
            };
            Value::Int(found.map_or(-1, |b| s[..b].chars().count() as i64))
        }
        ("replace", 2) => Value::Str(s.replace(&arg(0)?, &arg(1)?)),
        ("concat", 1) => Value::Str(format!("{s}{}", arg(0)?)),
        ("split", 1) => {
            // Java drops trailing empty strings.
            let mut parts: Vec<&str> = regex_of(&arg(0)?, at)?.split(s).collect();
            while parts.len() > 1 && parts.last() == Some(&"") {
                parts.pop();
            }
            Value::List(parts.into_iter().map(Value::from).collect())
        }
        ("replaceFirst", 2) => Value::Str(
            regex_of(&arg(0)?, at)?
                .replacen(s, 1, arg(1)?.as_str())
                .into_owned(),
        ),
        ("replaceAll", 2) => Value::Str(
            regex_of(&arg(0)?, at)?
                .replace_all(s, arg(1)?.as_str())
                .into_owned(),
        ),
        ("matches", 1) => {
            let re = compile_pattern(&arg(0)?, at).map_err(|e| EvalError {
                at,
                message: e.message,
            })?;
            Value::Bool(re.is_match(s))
        }
        ("isOneOf" | "isOneOfIgnoreCase", _) => {
            Value::Bool(one_of(s, args, name == "isOneOfIgnoreCase"))
        }
        _ => {
            return fail(
                at,
                format!("text has no method '{name}' taking {} values", args.len()),
            );
        }
    })
}

fn list_method(
    items: &[Value],
    name: &str,
    args: &[Value],
    at: usize,
    on_groups: bool,
) -> Result<Value> {
    let same = |a: &Value, b: &Value| match (a, b) {
        (Value::Str(x), Value::Str(y)) if on_groups => x.trim().eq_ignore_ascii_case(y.trim()),
        _ => a.equals(b),
    };
    Ok(match (name, args) {
        ("contains", [x]) => Value::Bool(items.iter().any(|i| same(i, x))),
        ("size", []) => Value::Int(items.len() as i64),
        ("isEmpty", []) => Value::Bool(items.is_empty()),
        ("get", [i]) => return indexed(Value::List(items.to_vec()), i.clone(), at),
        ("indexOf", [x]) => Value::Int(
            items
                .iter()
                .position(|i| same(i, x))
                .map_or(-1, |p| p as i64),
        ),
        // vestibule's own: any of the list is one of these, ignoring case.
        ("isOneOf" | "isOneOfIgnoreCase", allowed) => Value::Bool(items.iter().any(|i| {
            let Value::Str(s) = i else { return false };
            one_of(s, allowed, true)
        })),
        _ => {
            return fail(
                at,
                format!("a list has no method '{name}' taking {} values", args.len()),
            );
        }
    })
}

fn map_method(m: &BTreeMap<String, Value>, name: &str, args: &[Value], at: usize) -> Result<Value> {
    Ok(match (name, args) {
        ("get", [k]) => m.get(&k.to_text()).cloned().unwrap_or(Value::Null),
        ("containsKey", [k]) => Value::Bool(m.contains_key(&k.to_text())),
        ("size", []) => Value::Int(m.len() as i64),
        ("isEmpty", []) => Value::Bool(m.is_empty()),
        _ => {
            return fail(
                at,
                format!("a map has no method '{name}' taking {} values", args.len()),
            );
        }
    })
}
