//! Walks the tree against the key catalogue: typos, keys not implemented yet, duplicates.
//!
//! Values are not looked at here; the checker that reads them reports wrong types.

use super::keys::{Key, Level, Others, Shape, Status, canonical};
use super::node::{At, Node, Value};
use super::report::{Report, child, index};
use std::collections::HashMap;

pub fn check_keys(root: &Node, report: &mut Report) {
    walk_map(root, &super::keys::ROOT, "", report);
}

fn walk_map(node: &Node, level: &Level, path: &str, report: &mut Report) {
    let Value::Map(entries) = &node.value else {
        return;
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        let key_path = child(path, &entry.key);
        if let Some(first_line) = seen.insert(canonical(&entry.key), entry.key_at.line) {
            let where_first = if first_line > 0 {
                format!(" (first on line {first_line})")
            } else {
                String::new()
            };
            report.error(
                &entry.key_at,
                &key_path,
                format!("this key is given twice{where_first}; keep only one"),
            );
        }
        match level.find(&entry.key) {
            Some(key) => walk_known(key, &entry.value, &key_path, report, &entry.key_at),
            None => unknown(level, &entry.key, &key_path, report, &entry.key_at),
        }
    }
}

fn walk_known(key: &Key, value: &Node, path: &str, report: &mut Report, at: &At) {
    let nested = match key.shape {
        Shape::Map(level) => matches!(value.value, Value::Map(_)).then_some((level, false)),
        Shape::List(level) => matches!(value.value, Value::Seq(_)).then_some((level, true)),
        Shape::MapOrList(level) => match value.value {
            Value::Seq(_) => Some((level, true)),
            Value::Map(_) => Some((level, false)),
            _ => None,
        },
        Shape::Leaf | Shape::Free => None,
    };
    match nested {
        Some((level, true)) => walk_list(value, level, path, report),
        Some((level, false)) => walk_map(value, level, path, report),
        // A leaf, or a section written as something else: its own status decides. (A section
        // vestibule reads reports the wrong shape when it reads it.)
        None if value.is_null() && !matches!(key.shape, Shape::Leaf | Shape::Free) => {}
        None => match key.status {
            Status::NotImplemented => report.warn(
                at,
                path,
                "this ShinyProxy setting is not implemented in vestibule yet and is ignored",
            ),
            Status::Ignored(why) => report.warn(at, path, why),
            Status::Used | Status::Accepted => {}
        },
    }
}

fn walk_list(node: &Node, level: &Level, path: &str, report: &mut Report) {
    if let Value::Seq(items) = &node.value {
        for (i, item) in items.iter().enumerate() {
            walk_map(item, level, &index(path, i), report);
        }
    }
}

fn unknown(level: &Level, written: &str, path: &str, report: &mut Report, at: &At) {
    let suggestion = closest(level, written).map(|k| format!("did you mean '{k}'?"));
    let message = match (level.others, suggestion) {
        (Others::Unknown, Some(s)) => format!("unknown key; {s}"),
        (Others::Unknown, None) => "unknown key; vestibule does not know it and ignores it".into(),
        (Others::Ignored(why), Some(s)) => format!("{why} ({s})"),
        (Others::Ignored(why), None) => why.to_string(),
    };
    report.warn(at, path, message);
}

/// The known key at this level closest to what was written, if any is close enough to be a
/// plausible typo.
pub fn closest(level: &Level, written: &str) -> Option<&'static str> {
    let names = level.keys.iter().map(|k| k.name);
    closest_of(names, written)
}

pub fn closest_of<'a>(names: impl Iterator<Item = &'a str>, written: &str) -> Option<&'a str> {
    let w = canonical(written);
    names
        .map(|name| (strsim::damerau_levenshtein(&canonical(name), &w), name))
        .filter(|(d, name)| *d <= (canonical(name).chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::PROXY;

    fn warnings(yaml: &str) -> Vec<String> {
        let root = crate::config::node::parse(yaml).unwrap();
        let mut report = Report::new(std::path::Path::new("t.yml"));
        check_keys(&root, &mut report);
        report.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_section_not_implemented_is_named_whatever_its_shape() {
        assert_eq!(
            warnings("proxy:\n  ecs: yes\n  webservice:\n"),
            [
                "t.yml:2:3: warning: proxy.ecs: this ShinyProxy setting is not implemented \
              in vestibule yet and is ignored"
            ]
        );
        assert_eq!(
            warnings("proxy:\n  kubernetes:\n    namspace: x\n"),
            [
                "t.yml:3:5: warning: proxy.kubernetes.namspace: unknown key; did you mean \
              'namespace'?"
            ]
        );
    }

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(
            closest(&PROXY, "heartbeat-timout"),
            Some("heartbeat-timeout")
        );
        assert_eq!(closest(&PROXY, "autentication"), Some("authentication"));
        assert_eq!(closest(&PROXY, "zebra"), None);
    }
}
