//! ShinyProxy's `#{...}` expressions (Spring SpEL) inside app settings: per-user folders in
//! `container-volumes`, `http-headers`, Kubernetes pod patches and manifests. vestibule
//! evaluates the two forms real configs use:
//!
//! - `#{proxy.userId}`: the user's name;
//! - `#{proxy.getRuntimeValue('NAME')}` (or with double quotes): a value the instance is
//!   started with, e.g. `SHINYPROXY_USERNAME`.
//!
//! A text is parsed once into a [`Template`]; the loader warns about every other expression at
//! its position (so nobody finds out from a wrong folder), and each launch fills the template in.

use std::collections::BTreeMap;

use super::node::{Node, Value};
use super::report::{Report, child, index};

/// One `#{...}` expression.
#[derive(Clone, PartialEq, Eq)]
enum Expr {
    UserId,
    RuntimeValue(String),
    /// Kept as written (the text between `#{` and `}`), and left as written when filled.
    Unsupported(String),
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A text with `#{...}` expressions, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl std::fmt::Debug for Template {
    // As the source text, so an app's settings fingerprint (backend::spec_fingerprint) does not
    // change with how the template is held.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl From<&str> for Template {
    fn from(source: &str) -> Self {
        Self::parse(source)
    }
}

impl PartialEq<&str> for Template {
    fn eq(&self, other: &&str) -> bool {
        self.source == *other
    }
}

impl Template {
    pub fn parse(source: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("#{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            parts.push(Part::Expr(Expr::parse(&after[..end])));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Self {
            source: source.to_string(),
            parts,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The expressions vestibule does not evaluate, as written.
    pub fn unsupported(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(Expr::Unsupported(text)) => Some(text.as_str()),
            _ => None,
        })
    }

    /// The text with the supported expressions filled in; others are left as written.
    pub fn fill(&self, user: &str, runtime: &BTreeMap<String, String>) -> String {
        let filled: Result<String, String> = self.fill_with(|expr| {
            Ok(expr
                .value(user, runtime)
                .unwrap_or_else(|| format!("#{{{}}}", expr.source())))
        });
        filled.unwrap_or_else(|_| self.source.clone())
    }

    /// The text as a `HOST:CONTAINER[:mode]` volume: every expression must evaluate, and to a
    /// value that cannot climb out of, or reach across, the folder the config names, nor add a
    /// mount option. A user name becomes part of a host path here.
    pub fn fill_volume(
        &self,
        user: &str,
        runtime: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        self.fill_with(|expr| {
            let value = expr.value(user, runtime).ok_or_else(|| {
                format!(
                    "cannot evaluate #{{{}}} in volume '{}'",
                    expr.source(),
                    self.source
                )
            })?;
            let unsafe_path = value.is_empty()
                || value == "."
                || value.contains("..")
                || value.contains(['/', '\\', ':', '\0']);
            if unsafe_path {
                return Err(format!(
                    "the value of #{{{}}} ({value:?}) cannot be used in a volume path",
                    expr.source()
                ));
            }
            Ok(value)
        })
    }

    fn fill_with(
        &self,
        mut value_of: impl FnMut(&Expr) -> Result<String, String>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr(expr) => out.push_str(&value_of(expr)?),
            }
        }
        Ok(out)
    }
}

impl Expr {
    fn parse(text: &str) -> Self {
        let e = text.trim();
        if e == "proxy.userId" {
            return Expr::UserId;
        }
        let quoted_arg = e
            .strip_prefix("proxy.getRuntimeValue(")
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
            .and_then(|arg| {
                ['\'', '"'].into_iter().find_map(|q| {
                    arg.strip_prefix(q)
                        .and_then(|a| a.strip_suffix(q))
                        .filter(|_| arg.len() >= 2)
                })
            });
        match quoted_arg {
            Some(name) => Expr::RuntimeValue(name.to_string()),
            None => Expr::Unsupported(text.to_string()),
        }
    }

    fn value(&self, user: &str, runtime: &BTreeMap<String, String>) -> Option<String> {
        match self {
            Expr::UserId => Some(user.to_string()),
            Expr::RuntimeValue(name) => runtime.get(name).cloned(),
            Expr::Unsupported(_) => None,
        }
    }

    fn source(&self) -> String {
        match self {
            Expr::UserId => "proxy.userId".to_string(),
            Expr::RuntimeValue(name) => format!("proxy.getRuntimeValue('{name}')"),
            Expr::Unsupported(text) => text.clone(),
        }
    }
}

/// Fills the supported expressions in every string of a JSON value (a pod patch, a manifest).
pub fn fill_json(value: &mut serde_json::Value, user: &str, runtime: &BTreeMap<String, String>) {
    match value {
        serde_json::Value::String(s) if s.contains("#{") => {
            *s = Template::parse(s).fill(user, runtime)
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| fill_json(v, user, runtime))
        }
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(|v| fill_json(v, user, runtime))
        }
        _ => {}
    }
}

/// Warns about every unsupported expression in the text values below `node`.
pub(crate) fn check(node: &Node, path: &str, report: &mut Report) {
    match &node.value {
        Value::Str(s) => {
            for expr in Template::parse(s).unsupported() {
                report.warn(
                    &node.at,
                    path,
                    format!(
                        "the expression #{{{expr}}} is not evaluated by vestibule (it evaluates \
                         #{{proxy.userId}} and #{{proxy.getRuntimeValue('NAME')}} only)"
                    ),
                );
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check(item, &index(path, i), report);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                check(&e.value, &child(path, &e.key), report);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("SHINYPROXY_USERNAME".to_string(), "ann".to_string())])
    }

    #[test]
    fn supported_and_unsupported_forms() {
        let t = Template::parse("/data/#{proxy.userId}:/home/#{a.b}");
        assert_eq!(t.unsupported().collect::<Vec<_>>(), ["a.b"]);
        for supported in [
            "#{proxy.userId}",
            "#{ proxy.getRuntimeValue('SHINYPROXY_USERNAME') }",
            "#{proxy.getRuntimeValue(\"X\")}",
        ] {
            assert_eq!(
                Template::parse(supported).unsupported().count(),
                0,
                "{supported}"
            );
        }
        for unsupported in [
            "#{proxy.userGroups}",
            "#{proxy.getRuntimeValue(X)}",
            "#{proxy.getRuntimeValue('X\")}",
            "#{proxy.getRuntimeValue(')}",
        ] {
            assert_eq!(
                Template::parse(unsupported).unsupported().count(),
                1,
                "{unsupported}"
            );
        }
    }

    #[test]
    fn fills_user_and_runtime_values() {
        let t =
            Template::parse("home-#{proxy.userId}-#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}");
        assert_eq!(t.fill("bob", &env()), "home-bob-ann");
        assert_eq!(Template::parse("#{other}").fill("bob", &env()), "#{other}");
        assert_eq!(
            Template::parse("open #{ end").fill("bob", &env()),
            "open #{ end"
        );
        assert_eq!(Template::parse("").fill("bob", &env()), "");
    }

    #[test]
    fn volumes_take_the_user() {
        let t = Template::parse("/data/#{proxy.userId}:/home/app");
        assert_eq!(
            t.fill_volume("alice", &env()),
            Ok("/data/alice:/home/app".to_string())
        );
        let t = Template::parse("/d/#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}:/w:ro");
        assert_eq!(t.fill_volume("x", &env()), Ok("/d/ann:/w:ro".to_string()));
    }

    #[test]
    fn volumes_refuse_names_that_escape_the_folder() {
        let t = Template::parse("/data/#{proxy.userId}:/w");
        for user in ["..", "a/b", "../etc", "", "a:b", ".", "a\\b"] {
            let r = t.fill_volume(user, &env());
            assert!(r.is_err(), "{user:?} gave {r:?}");
        }
        assert!(
            Template::parse("/data/#{other}:/w")
                .fill_volume("bob", &env())
                .is_err()
        );
    }

    #[test]
    fn json_strings_are_filled_everywhere() {
        let mut v =
            serde_json::json!({"a": ["#{proxy.userId}", 1], "b": {"c": "x-#{proxy.userId}"}});
        fill_json(&mut v, "eve", &env());
        assert_eq!(v, serde_json::json!({"a": ["eve", 1], "b": {"c": "x-eve"}}));
    }

    #[test]
    fn debug_is_the_source_text() {
        assert_eq!(format!("{:?}", Template::parse("a#{b}")), "\"a#{b}\"");
    }
}
