//! `${VAR}` and `${VAR:default}` references inside text values, replaced from the environment
//! as Spring Boot does, before any value is given a type (so `port: ${PORT}` is a number).
//!
//! Only environment variables are looked up, not other keys of the file. A value built this way
//! is marked so that no message ever shows it: it may be a secret.

use super::EnvSource;
use super::node::{Node, Origin, Value};
use super::report::{Report, child, index};

pub fn interpolate(node: &mut Node, path: &str, env: &dyn EnvSource, report: &mut Report) {
    match &mut node.value {
        Value::Str(s) if s.contains("${") => match substitute(s, env) {
            Ok(new) => {
                *s = new;
                node.at.origin = Origin::Substituted;
            }
            Err(problems) => {
                for p in problems {
                    report.error(&node.at, path, p);
                }
                // Reported once is enough: later checks should not trip over the '${'.
                node.value = Value::Null;
            }
        },
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &index(path, i), env, report);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                let p = child(path, &e.key);
                interpolate(&mut e.value, &p, env, report);
            }
        }
        _ => {}
    }
}

/// Replaces every reference in `text`, or says what is wrong with each one that cannot be.
pub fn substitute(text: &str, env: &dyn EnvSource) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push("'${' is not closed by '}'".to_string());
            rest = "";
            break;
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(':') {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (reference.trim(), None),
        };
        if name.is_empty() {
            problems.push("'${}' names no environment variable".to_string());
        } else {
            match (env.get(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => problems.push(format!(
                    "environment variable {name} is not set (write ${{{name}:default}} to give \
                     a default)"
                )),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        HashMap::from([("A".to_string(), "1".to_string())])
    }

    #[test]
    fn replaces_and_defaults() {
        assert_eq!(substitute("x${A}y", &env()).unwrap(), "x1y");
        assert_eq!(substitute("${B:two}", &env()).unwrap(), "two");
        assert_eq!(substitute("${B:}", &env()).unwrap(), "");
        assert_eq!(substitute("${A:zz}", &env()).unwrap(), "1");
        assert_eq!(
            substitute("plain $A #{x}", &env()).unwrap(),
            "plain $A #{x}"
        );
    }

    #[test]
    fn reports_each_missing_variable() {
        let problems = substitute("${B}-${C}", &env()).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("B is not set"));
        assert!(problems[1].contains("C is not set"));
        assert!(substitute("${A", &env()).is_err());
    }
}
