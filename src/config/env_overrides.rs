//! Settings given as environment variables, applied on top of the file (or of an empty one), so
//! a container image can carry one `application.yml` and each deployment change what differs.
//!
//! # Naming
//!
//! A variable overrides a key when its name starts with `VESTIBULE_` and the rest holds at least
//! one `__`:
//!
//! - `__` (two underscores) separates levels;
//! - a single `_` inside a level stands for `-` (keys are matched ignoring case and dashes, as
//!   Spring Boot matches them);
//! - a level that is a number picks an entry of a list, counting from 0; the number one past
//!   the end adds an entry.
//!
//! | variable | key |
//! |---|---|
//! | `VESTIBULE_PROXY__PORT=9000` | `proxy.port` |
//! | `VESTIBULE_PROXY__SPECS__0__DISPLAY_NAME=Sales` | `proxy.specs[0].display-name` |
//! | `VESTIBULE_PROXY__ADMIN_GROUPS=admins,ops` | `proxy.admin-groups` |
//! | `VESTIBULE_MANAGEMENT__SERVER__PORT=9090` | `management.server.port` |
//! | `VESTIBULE_PROXY__SPECS__1__CONTAINER_ENV__API_URL=http://api` | `proxy.specs[1].container-env.API_URL` |
//!
//! Inside `container-env` the last level is taken as written, since it names a variable of the
//! app. Values are read as YAML scalars: `true`/`false`, numbers, `null` or `~` or nothing (the
//! key falls back to its default), anything else is text. Variables without `__`, such as
//! `VESTIBULE_CONFIG`, are not overrides and are left to the command line. Problems found in an
//! override are reported with the variable's name and no line; its value is never shown.

use super::EnvSource;
use super::keys::{Level, Shape, canonical};
use super::node::{At, Entry, Node, Value};
use super::report::{Report, child, index};

const PREFIX: &str = "VESTIBULE_";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Index(usize),
    /// As written in the variable's name.
    Key(String),
}

/// Where a walk stands in the key catalogue, to know how to name keys it creates.
#[derive(Clone, Copy)]
enum Cursor {
    Level(&'static Level),
    ListOf(&'static Level),
    Free,
    Unknown,
}

pub(crate) fn apply(root: &mut Node, env: &dyn EnvSource, report: &mut Report) {
    let mut overrides: Vec<(Vec<Segment>, String, String)> = env
        .vars()
        .into_iter()
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix(PREFIX)?;
            rest.contains("__")
                .then(|| (segments(rest), var.clone(), value))
        })
        .collect();
    // A stable order, with list indexes in numeric order so that entries 2 and 3 can both be
    // added to a list of 2.
    overrides.sort();
    for (segs, var, value) in overrides {
        if segs
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k.is_empty()))
        {
            report.warn(
                &At::override_var(&var),
                "",
                "not a valid override name: levels are separated by exactly two underscores",
            );
            continue;
        }
        let value = scalar(&value, &var);
        if let Err((path, message)) = set(
            root,
            &segs,
            value,
            Cursor::Level(&super::keys::ROOT),
            "",
            &var,
        ) {
            report.error(&At::override_var(&var), &path, message);
        }
    }
}

fn segments(rest: &str) -> Vec<Segment> {
    rest.split("__")
        .map(|s| match s.parse::<usize>() {
            Ok(i) => Segment::Index(i),
            Err(_) => Segment::Key(s.to_string()),
        })
        .collect()
}

fn set(
    node: &mut Node,
    segs: &[Segment],
    value: Node,
    cursor: Cursor,
    path: &str,
    var: &str,
) -> Result<(), (String, String)> {
    let Some((seg, rest)) = segs.split_first() else {
        *node = value;
        return Ok(());
    };
    if node.is_null() {
        node.value = match seg {
            Segment::Index(_) => Value::Seq(Vec::new()),
            Segment::Key(_) => Value::Map(Vec::new()),
        };
    }
    match (seg, &mut node.value) {
        (Segment::Index(i), Value::Seq(items)) => {
            let len = items.len();
            if *i > len {
                let has = match len {
                    0 => "no entries yet".to_string(),
                    1 => "1 entry".to_string(),
                    n => format!("{n} entries"),
                };
                return Err((
                    path.to_string(),
                    format!(
                        "the list has {has}; an override can change an entry (counting from 0) \
                         or add one at index {len}, not at index {i}"
                    ),
                ));
            }
            if *i == len {
                items.push(Node::new(Value::Null, At::override_var(var)));
            }
            let next = match cursor {
                Cursor::ListOf(level) => Cursor::Level(level),
                _ => Cursor::Unknown,
            };
            let item = items
                .get_mut(*i)
                .ok_or_else(|| (path.to_string(), format!("the list has no entry {i}")))?;
            set(item, rest, value, next, &index(path, *i), var)
        }
        (Segment::Key(written), Value::Map(entries)) => {
            let (key, next) = name_key(written, cursor);
            let free = matches!(cursor, Cursor::Free);
            let c = canonical(&key);
            let pos = entries.iter().rposition(|e| {
                if free {
                    e.key == key
                } else {
                    canonical(&e.key) == c
                }
            });
            let pos = match pos {
                Some(p) => p,
                None => {
                    entries.push(Entry {
                        key: key.clone(),
                        key_at: At::override_var(var),
                        value: Node::new(Value::Null, At::override_var(var)),
                    });
                    entries.len() - 1
                }
            };
            let entry = entries
                .get_mut(pos)
                .ok_or_else(|| (path.to_string(), format!("the key {key} went missing")))?;
            let p = child(path, &entry.key);
            set(&mut entry.value, rest, value, next, &p, var)
        }
        (Segment::Index(i), _) => Err((
            path.to_string(),
            format!("this is not a list, so it has no entry {i}"),
        )),
        (Segment::Key(k), _) => Err((
            path.to_string(),
            format!(
                "this is a single value, so it has no key '{}'",
                k.to_ascii_lowercase().replace('_', "-")
            ),
        )),
    }
}

/// The key a segment names, and where the walk stands below it.
fn name_key(written: &str, cursor: Cursor) -> (String, Cursor) {
    match cursor {
        Cursor::Free => (written.to_string(), Cursor::Free),
        Cursor::Level(level) => {
            let key = written.to_ascii_lowercase().replace('_', "-");
            let next = match level.find(&key).map(|k| k.shape) {
                Some(Shape::Map(l)) => Cursor::Level(l),
                Some(Shape::List(l)) => Cursor::ListOf(l),
                // One mapping or a list: an index says which.
                Some(Shape::MapOrList(l)) => Cursor::ListOf(l),
                Some(Shape::Free) => Cursor::Free,
                Some(Shape::Leaf) | None => Cursor::Unknown,
            };
            (key, next)
        }
        Cursor::ListOf(_) | Cursor::Unknown => (
            written.to_ascii_lowercase().replace('_', "-"),
            Cursor::Unknown,
        ),
    }
}

/// A value as YAML would read it when written alone on a line (the core schema).
fn scalar(text: &str, var: &str) -> Node {
    let at = At::override_var(var);
    let t = text.trim();
    let value = match t {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => match (t.parse::<i64>(), t.parse::<f64>()) {
            (Ok(i), _) => Value::Int(i),
            (_, Ok(f)) if t.chars().any(|c| c.is_ascii_digit()) => Value::Float(f),
            _ => Value::Str(text.to_string()),
        },
    };
    let raw = match value {
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(t.to_string()),
        _ => None,
    };
    Node { value, at, raw }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse;
    use std::collections::HashMap;
    use std::path::Path;

    fn run(yaml: &str, vars: &[(&str, &str)]) -> (Node, Report) {
        let mut root = parse(yaml).unwrap();
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut report = Report::new(Path::new("t.yml"));
        apply(&mut root, &env, &mut report);
        (root, report)
    }

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        match &node.value {
            Value::Map(e) => &e.iter().find(|e| e.key == key).unwrap().value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sets_nested_keys_and_list_entries() {
        let (root, report) = run(
            "proxy:\n  port: 8080\n  specs:\n  - id: a\n",
            &[
                ("VESTIBULE_PROXY__PORT", "9000"),
                ("VESTIBULE_PROXY__SPECS__0__DISPLAY_NAME", "X"),
                ("VESTIBULE_PROXY__SPECS__1__ID", "b"),
                ("VESTIBULE_PROXY__SPECS__0__CONTAINER_ENV__MY_VAR", "v"),
                ("VESTIBULE_CONFIG", "/etc/x.yml"),
            ],
        );
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        let proxy = get(&root, "proxy");
        assert!(matches!(get(proxy, "port").value, Value::Int(9000)));
        let Value::Seq(specs) = &get(proxy, "specs").value else {
            panic!()
        };
        assert_eq!(specs.len(), 2);
        assert_eq!(get(&specs[0], "display-name").scalar_text().unwrap(), "X");
        assert_eq!(
            get(get(&specs[0], "container-env"), "MY_VAR")
                .scalar_text()
                .unwrap(),
            "v"
        );
        assert!(get(&root, "proxy").at.origin == crate::config::node::Origin::File);
    }

    #[test]
    fn index_past_the_end_is_an_error_naming_the_variable() {
        let (_, report) = run("", &[("VESTIBULE_PROXY__SPECS__3__ID", "x")]);
        assert_eq!(report.diagnostics.len(), 1);
        let msg = report.diagnostics[0].to_string();
        assert!(msg.contains("VESTIBULE_PROXY__SPECS__3__ID"), "{msg}");
        assert_eq!(report.diagnostics[0].line, 0);
    }
}
