//! Reading typed values out of the tree with Spring Boot's leniency: a number may be written as
//! text (`port: "8080"`, or `port: ${PORT}` after substitution), a list of names as one name or
//! a comma-separated string. Each reader reports its own problem and returns `None`, so the
//! caller falls back to the default and goes on looking for more problems.

use super::keys::canonical;
use super::node::{Entry, Node, Value};
use super::report::{Report, child};

/// The keys of one mapping in the file.
pub struct Fields<'a> {
    entries: &'a [Entry],
    pub path: String,
}

impl<'a> Fields<'a> {
    /// A mapping at `path`; null reads as empty, anything else is reported.
    pub fn of(node: Option<&'a Node>, path: &str, report: &mut Report) -> Fields<'a> {
        let entries: &[Entry] = match node.map(|n| (&n.value, n)) {
            Some((Value::Map(entries), _)) => entries,
            Some((Value::Null, _)) | None => &[],
            Some((_, n)) => {
                report.error(
                    &n.at,
                    path,
                    format!(
                        "expected a section of 'key: value' lines, found {}",
                        n.describe()
                    ),
                );
                &[]
            }
        };
        Fields {
            entries,
            path: path.to_string(),
        }
    }

    /// The value of a key (matched as Spring does), with its dotted path; `None` when the key is
    /// absent or empty. When a key is given twice the key check has reported it; the last wins.
    pub fn get(&self, name: &str) -> Option<(&'a Node, String)> {
        #[cfg(test)]
        reads::record(&self.path, name);
        let c = canonical(name);
        self.entries
            .iter()
            .rev()
            .find(|e| canonical(&e.key) == c)
            .filter(|e| !e.value.is_null())
            .map(|e| (&e.value, child(&self.path, &e.key)))
    }

    pub fn text(&self, name: &str, report: &mut Report) -> Option<String> {
        let (node, path) = self.get(name)?;
        text(node, &path, report)
    }

    /// A value with `#{...}` expressions, evaluated at `phase`; a refused expression is an
    /// error at its key, naming the character.
    pub fn expression(
        &self,
        name: &str,
        phase: crate::spel::Phase,
        report: &mut Report,
    ) -> Option<crate::spel::Template> {
        let (node, path) = self.get(name)?;
        expression(node, &path, phase, report)
    }

    pub fn int(&self, name: &str, what: &str, report: &mut Report) -> Option<i64> {
        let (node, path) = self.get(name)?;
        int(node, &path, what, report)
    }

    pub fn boolean(&self, name: &str, report: &mut Report) -> Option<bool> {
        let (node, path) = self.get(name)?;
        boolean(node, &path, report)
    }

    pub fn text_list(&self, name: &str, report: &mut Report) -> Option<Vec<String>> {
        let (node, path) = self.get(name)?;
        text_list(node, &path, report)
    }
}

pub fn text(node: &Node, path: &str, report: &mut Report) -> Option<String> {
    match node.scalar_text() {
        Some(t) => Some(t),
        None if node.is_null() => None,
        None => {
            report.error(
                &node.at,
                path,
                format!("expected a single value, found {}", node.describe()),
            );
            None
        }
    }
}

pub fn expression(
    node: &Node,
    path: &str,
    phase: crate::spel::Phase,
    report: &mut Report,
) -> Option<crate::spel::Template> {
    let source = text(node, path, report)?;
    let parsed = crate::spel::Template::parse(&source).and_then(|t| t.check(phase).map(|()| t));
    match parsed {
        Ok(t) => Some(t),
        Err(e) => {
            report.error(&node.at, path, expression_error(&e));
            None
        }
    }
}

/// An expression's refusal, with the character it is at (the value may be long).
pub fn expression_error(e: &crate::spel::ParseError) -> String {
    format!(
        "{} (at character {} of the expression)",
        e.message,
        e.at + 1
    )
}

/// A whole number; `what` says what it measures, for the message ("milliseconds").
pub fn int(node: &Node, path: &str, what: &str, report: &mut Report) -> Option<i64> {
    let parsed = match &node.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) if s.trim().is_empty() => return None,
        Value::Str(s) => parse_int(s.trim()),
        _ => None,
    };
    if parsed.is_none() {
        report.error(
            &node.at,
            path,
            format!(
                "expected a whole number ({what}), found {}",
                node.describe()
            ),
        );
    }
    parsed
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    s.replace('_', "").parse().ok()
}

/// The spellings Spring Boot converts to a boolean.
pub fn boolean_text(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub fn boolean(node: &Node, path: &str, report: &mut Report) -> Option<bool> {
    let parsed = match &node.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if s.trim().is_empty() => return None,
        Value::Str(s) => boolean_text(s),
        _ => None,
    };
    if parsed.is_none() {
        report.error(
            &node.at,
            path,
            format!("expected true or false, found {}", node.describe()),
        );
    }
    parsed
}

/// One value, a list, or a comma-separated string (`admins, guest`), as ShinyProxy accepts for
/// groups and users. Empty items are dropped.
pub fn text_list(node: &Node, path: &str, report: &mut Report) -> Option<Vec<String>> {
    let split = |t: &str| -> Vec<String> {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    match &node.value {
        Value::Seq(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.scalar_text() {
                    Some(t) => out.extend(split(&t)),
                    None if item.is_null() => {}
                    None => report.error(
                        &item.at,
                        &super::report::index(path, i),
                        format!("expected a name, found {}", item.describe()),
                    ),
                }
            }
            Some(out)
        }
        Value::Map(_) => {
            report.error(
                &node.at,
                path,
                format!(
                    "expected one name, a list or a comma-separated string, found {}",
                    node.describe()
                ),
            );
            None
        }
        _ => node.scalar_text().map(|t| split(&t)),
    }
}

/// A list of values where each item is kept whole (no comma splitting); one value is a list of
/// one.
pub fn plain_list(node: &Node, path: &str, report: &mut Report) -> Option<Vec<String>> {
    match &node.value {
        Value::Seq(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| text(item, &super::report::index(path, i), report))
                .collect(),
        ),
        _ => text(node, path, report).map(|t| vec![t]),
    }
}

/// A TCP port; 0 is allowed only where `allow_zero` says so (it means "any free port").
pub fn port(node: &Node, path: &str, allow_zero: bool, report: &mut Report) -> Option<u16> {
    let n = int(node, path, "a port number", report)?;
    let min = if allow_zero { 0 } else { 1 };
    match u16::try_from(n) {
        Ok(p) if i64::from(p) >= min => Some(p),
        _ => {
            report.error(
                &node.at,
                path,
                format!(
                    "a port must be between {min} and 65535, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// One of a fixed set of words, compared ignoring case and dashes. An unknown word is reported
/// with the closest allowed one.
pub fn choice<'c>(
    node: &Node,
    path: &str,
    allowed: &[&'c str],
    report: &mut Report,
) -> Option<&'c str> {
    let written = text(node, path, report)?;
    let c = canonical(&written);
    if let Some(found) = allowed.iter().find(|a| canonical(a) == c) {
        return Some(found);
    }
    let hint = super::key_check::closest_of(allowed.iter().copied(), &written)
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default();
    let shown = if node.at.shows_text() {
        format!("'{written}'")
    } else {
        node.describe()
    };
    report.error(
        &node.at,
        path,
        format!(
            "unknown value {shown}{hint} (known values: {})",
            allowed.join(", ")
        ),
    );
    None
}

/// Which keys the checkers ask for, so a test can hold the catalogue (`keys.rs`) to them.
/// The mappings of the list under `key`, with their paths; anything else is an error there.
pub fn list_items<'a>(
    f: &Fields<'a>,
    key: &str,
    report: &mut Report,
) -> Vec<(&'a super::node::Node, String)> {
    let Some((node, path)) = f.get(key) else {
        return Vec::new();
    };
    match &node.value {
        super::node::Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n, super::report::index(&path, i)))
            .collect(),
        _ => {
            report.error(
                &node.at,
                &path,
                format!("expected a list, found {}", node.describe()),
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
pub(crate) mod reads {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    thread_local! {
        static READ: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    }

    /// Records `path.name`, without list indices (`proxy.specs[2]` is `proxy.specs`).
    pub fn record(path: &str, name: &str) {
        let mut plain = String::with_capacity(path.len());
        let mut in_index = false;
        for c in path.chars() {
            match c {
                '[' => in_index = true,
                ']' => in_index = false,
                c if !in_index => plain.push(c),
                _ => {}
            }
        }
        READ.with(|r| r.borrow_mut().insert(super::child(&plain, name)));
    }

    pub fn take() -> BTreeSet<String> {
        READ.with(|r| std::mem::take(&mut *r.borrow_mut()))
    }
}
