//! A YAML document as a tree of values that remember where they were written.
//!
//! The loader works on this tree rather than on serde-derived structs because a derived
//! `Deserialize` stops at the first problem, while a person fixing a config wants every problem
//! at once; the tree also lets `${VAR}` references and environment overrides be applied before
//! any value is given a type.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Options, Spanned};
use std::fmt;

/// Where a value came from, so diagnostics can point at it and know whether its text may be
/// shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Written in the file as it stands.
    File,
    /// Written in the file but built from `${VAR}` references: its text may hold a secret.
    Substituted,
    /// Set by this environment variable (`VESTIBULE_...`); it has no line in the file.
    Override(String),
}

/// A position in the file: 1-based line and column, or 0/0 when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub column: usize,
    pub origin: Origin,
}

impl At {
    pub fn file(line: usize, column: usize) -> Self {
        Self {
            line,
            column,
            origin: Origin::File,
        }
    }

    pub fn override_var(var: &str) -> Self {
        Self {
            line: 0,
            column: 0,
            origin: Origin::Override(var.to_string()),
        }
    }

    /// Whether the value's text may appear in a message.
    pub fn shows_text(&self) -> bool {
        self.origin == Origin::File
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub at: At,
    /// The source text of a scalar that YAML read as a number or boolean, so a text field keeps
    /// what was written (`title: Yes` stays "Yes", `id: 1.10` stays "1.10").
    pub raw: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// The key as written.
    pub key: String,
    pub key_at: At,
    pub value: Node,
}

impl Node {
    pub fn new(value: Value, at: At) -> Self {
        Self {
            value,
            at,
            raw: None,
        }
    }

    pub fn empty_map() -> Self {
        Self::new(Value::Map(Vec::new()), At::file(0, 0))
    }

    /// The text of a scalar as a person wrote it; `None` for null, lists and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        if let Some(raw) = &self.raw {
            return Some(raw.clone());
        }
        match &self.value {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A short description of the value for "expected X, found Y" messages. The text itself is
    /// left out when it came from the environment, since it may be a secret.
    pub fn describe(&self) -> String {
        let kind = match &self.value {
            Value::Null => return "nothing".into(),
            Value::Seq(_) => return "a list".into(),
            Value::Map(_) => return "a mapping (key: value lines)".into(),
            Value::Bool(_) => "the value",
            Value::Int(_) | Value::Float(_) => "the number",
            Value::Str(_) => "the text",
        };
        if !self.at.shows_text() {
            return match &self.at.origin {
                Origin::Override(var) => format!("the value of {var}"),
                _ => "the value built from ${...} references".into(),
            };
        }
        let text = self.scalar_text().unwrap_or_default();
        let shown: String = text.chars().take(60).collect();
        let ellipsis = if shown.len() < text.len() { "..." } else { "" };
        format!("{kind} '{shown}{ellipsis}'")
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// A YAML syntax problem: the document could not be read at all.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads YAML text into a tree. An empty document reads as null.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = Options::default();
    // Duplicates are reported by the key check with both positions, alongside other problems.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // `id: 007` is an identifier, not the number 7.
    options.leading_zero_numbers_as_strings = true;
    options.with_snippet = false;
    if text.trim().is_empty() {
        return Ok(Node::new(Value::Null, At::file(1, 1)));
    }
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(root) => Ok(to_node(root, text)),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((0, 0));
            let message = e.without_snippet().to_string();
            // The position is reported on its own; saying it twice reads badly.
            let message = match message.rsplit_once(" at line ") {
                Some((head, _)) if line > 0 => head.to_string(),
                _ => message,
            };
            Err(SyntaxError {
                line,
                column,
                message,
            })
        }
    }
}

/// The tree as serde hands it over, before positions are flattened into [`At`].
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn to_node(sp: Spanned<Raw>, text: &str) -> Node {
    let at = At::file(
        sp.referenced.line() as usize,
        sp.referenced.column() as usize,
    );
    let value = match sp.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| to_node(i, text)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = to_node(k, text);
                    Entry {
                        key: key
                            .scalar_text()
                            .unwrap_or_else(|| "<not a plain key>".into()),
                        key_at: key.at,
                        value: to_node(v, text),
                    }
                })
                .collect(),
        ),
    };
    let raw = match value {
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => source_text(&sp.referenced, text),
        _ => None,
    };
    Node { value, at, raw }
}

fn source_text(loc: &serde_saphyr::Location, text: &str) -> Option<String> {
    let span = loc.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let slice = text.get(start..start.checked_add(len)?)?.trim();
    // An alias or a tagged scalar spans more than the value itself; keep only plain scalars.
    if slice.is_empty() || slice.contains(['*', '!', '"', '\'', '\n']) {
        return None;
    }
    Some(slice.to_string())
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        // Beyond i64 nothing in a config makes sense as a number; keep the digits as text.
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[Entry] {
        match &node.value {
            Value::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_of_keys_and_values() {
        let root = parse("proxy:\n  port: 8080\n  title: Yes\n  id: 007\n").unwrap();
        let proxy = &map(&root)[0];
        assert_eq!((proxy.key_at.line, proxy.key_at.column), (1, 1));
        let port = &map(&proxy.value)[0];
        assert_eq!((port.key_at.line, port.key_at.column), (2, 3));
        assert_eq!((port.value.at.line, port.value.at.column), (2, 9));
        assert!(matches!(port.value.value, Value::Int(8080)));
        let title = &map(&proxy.value)[1];
        assert_eq!(title.value.scalar_text().as_deref(), Some("Yes"));
        let id = &map(&proxy.value)[2];
        assert_eq!(id.value.scalar_text().as_deref(), Some("007"));
    }

    #[test]
    fn duplicates_pass_through() {
        let root = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(map(&root).len(), 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line > 0, "{err:?}");
    }

    #[test]
    fn seed_parses() {
        let text = include_str!("../../tests/fixtures/seed-application.yml");
        let root = parse(text).unwrap();
        assert_eq!(map(&root).len(), 3);
    }
}
