//! ShinyProxy's `#{...}` expressions (Spring SpEL) inside app settings, most often per-user
//! folders in `container-volumes`. vestibule evaluates only the two forms real configs use:
//!
//! - `#{proxy.userId}`: the user's name;
//! - `#{proxy.getRuntimeValue('NAME')}` (or with double quotes): a value the instance is
//!   started with, e.g. `SHINYPROXY_USERNAME`.
//!
//! Any other expression is not evaluated; the loader warns about each one at its position so
//! nobody finds out from a wrong folder.

use super::node::{Node, Value};
use super::report::{Report, child, index};

/// Whether vestibule evaluates this expression (the text between `#{` and `}`).
pub fn is_supported(expr: &str) -> bool {
    let e = expr.trim();
    if e == "proxy.userId" {
        return true;
    }
    e.strip_prefix("proxy.getRuntimeValue(")
        .and_then(|rest| rest.strip_suffix(')'))
        .map(str::trim)
        .is_some_and(|arg| {
            let quoted = |q: char| arg.len() >= 2 && arg.starts_with(q) && arg.ends_with(q);
            quoted('\'') || quoted('"')
        })
}

/// Warns about every unsupported expression in the text values below `node`.
pub(crate) fn check(node: &Node, path: &str, report: &mut Report) {
    match &node.value {
        Value::Str(s) => {
            for expr in expressions(s) {
                if !is_supported(expr) {
                    report.warn(
                        &node.at,
                        path,
                        format!(
                            "the expression #{{{expr}}} is not evaluated by vestibule (it \
                             evaluates #{{proxy.userId}} and \
                             #{{proxy.getRuntimeValue('NAME')}} only)"
                        ),
                    );
                }
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

fn expressions(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        found.push(&after[..end]);
        rest = &after[end + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_forms() {
        assert!(is_supported("proxy.userId"));
        assert!(is_supported("proxy.getRuntimeValue('SHINYPROXY_USERNAME')"));
        assert!(is_supported("proxy.getRuntimeValue(\"X\")"));
        assert!(!is_supported("proxy.userGroups"));
        assert!(!is_supported("proxy.getRuntimeValue(X)"));
        assert_eq!(
            expressions("/data/#{proxy.userId}:/home/#{a.b}"),
            ["proxy.userId", "a.b"]
        );
    }
}
