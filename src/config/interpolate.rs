//! `${VAR}` and `${VAR:default}` references inside text values, replaced from the environment
//! as Spring Boot does, before any value is given a type (so `port: ${PORT}` is a number).
//!
//! Only environment variables are looked up, not other keys of the file. A value built this way
//! is marked so that no message ever shows it: it may be a secret.
//!
//! HTML that ShinyProxy hands to Thymeleaf or puts on a page as it is ([`TEMPLATE_TEXT`]) is left
//! alone: there `${appName}` is the template's own expression, which Spring Boot leaves in place
//! too when no property of that name exists.

use super::EnvSource;
use super::keys::canonical;
use super::node::{Node, Origin, Value};
use super::report::{Report, child, index};

/// Where text is a Thymeleaf template or raw HTML, as key paths: `[]` stands for any list entry
/// and `*` for any key. Written in kebab-case; matched as Spring Boot matches keys.
pub const TEMPLATE_TEXT: &[&[&str]] = &[
    &["proxy", "notification-message"],
    &["proxy", "template-groups", "[]", "properties", "*"],
    &["proxy", "specs", "[]", "description"],
    &["proxy", "specs", "[]", "template-properties", "*"],
    &["proxy", "specs", "[]", "parameters", "template"],
    &[
        "proxy",
        "specs",
        "[]",
        "parameters",
        "definitions",
        "[]",
        "description",
    ],
];

pub fn interpolate(node: &mut Node, path: &str, env: &dyn EnvSource, report: &mut Report) {
    walk(node, path, &mut Vec::new(), env, report);
}

/// `at` is the path again as canonical keys and `[]`, to match against [`TEMPLATE_TEXT`].
fn walk(
    node: &mut Node,
    path: &str,
    at: &mut Vec<String>,
    env: &dyn EnvSource,
    report: &mut Report,
) {
    match &mut node.value {
        Value::Str(_) if is_template_text(at) => {}
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
                at.push("[]".into());
                walk(item, &index(path, i), at, env, report);
                at.pop();
            }
        }
        Value::Map(entries) => {
            for e in entries {
                let p = child(path, &e.key);
                at.push(canonical(&e.key));
                walk(&mut e.value, &p, at, env, report);
                at.pop();
            }
        }
        _ => {}
    }
}

fn is_template_text(at: &[String]) -> bool {
    TEMPLATE_TEXT.iter().any(|pattern| {
        pattern.len() == at.len()
            && pattern.iter().zip(at).all(|(p, a)| match *p {
                "*" => a != "[]",
                "[]" => a == "[]",
                key => canonical(key) == *a,
            })
    })
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
    fn template_text_is_found_in_any_spelling_and_entry() {
        let at = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(is_template_text(&at(&[
            "proxy",
            "specs",
            "[]",
            "parameters",
            "template"
        ])));
        assert!(is_template_text(&at(&[
            "proxy",
            "templategroups",
            "[]",
            "properties",
            "displayname"
        ])));
        assert!(!is_template_text(&at(&[
            "proxy",
            "specs",
            "[]",
            "parameters"
        ])));
        assert!(!is_template_text(&at(&["proxy", "title"])));
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
