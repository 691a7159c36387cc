//! Tokens of a SpEL expression, each with the character offset it starts at, so every error
//! can point at its place in the config value.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// `#this`, `#root` and (refused later) `#anything`.
    Hash(String),
    /// `@bean` and `&factory`: refused by the parser with their own message.
    Bean(String),
    Punct(&'static str),
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(i) => format!("'{i}'"),
            Tok::Str(s) => format!("text '{s}'"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Float(n) => format!("number {n}"),
            Tok::Hash(h) => format!("'#{h}'"),
            Tok::Bean(b) => format!("'{b}'"),
            Tok::Punct(p) => format!("'{p}'"),
        }
    }
}

/// Longest first, so `?.` wins over `?` and `<=` over `<`.
const PUNCT: &[&str] = &[
    ".?[", ".![", ".^[", ".$[", "?.", "?:", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "(",
    ")", "[", "]", "{", "}", ",", ".", "?", ":", "<", ">", "+", "-", "*", "/", "%", "!", "=", "^",
];

pub fn lex(src: &str, offset: usize) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = offset + i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let (text, next) = quoted(&chars, i, at)?;
            out.push((at, Tok::Str(text)));
            i = next;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let is_float =
                chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
            if is_float {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().collect();
            // Java's long and double suffixes.
            if matches!(chars.get(i), Some('L' | 'l' | 'd' | 'D' | 'f' | 'F')) {
                i += 1;
            }
            let tok = if is_float {
                text.parse().map(Tok::Float).ok()
            } else {
                text.parse().map(Tok::Int).ok()
            };
            let Some(tok) = tok else {
                return Err(ParseError::new(at, format!("{text} is too large a number")));
            };
            out.push((at, tok));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push((at, Tok::Ident(chars[start..i].iter().collect())));
            continue;
        }
        if c == '#' || c == '@' || c == '&' && chars.get(i + 1) != Some(&'&') {
            let start = i + 1;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            out.push((
                at,
                if c == '#' {
                    Tok::Hash(name)
                } else {
                    Tok::Bean(format!("{c}{name}"))
                },
            ));
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
        match PUNCT.iter().find(|p| rest.starts_with(**p)) {
            Some(p) => {
                out.push((at, Tok::Punct(p)));
                i += p.chars().count();
            }
            None => {
                return Err(ParseError::new(
                    at,
                    format!("'{c}' is not part of the expression language"),
                ));
            }
        }
    }
    Ok(out)
}

/// A quoted text; SpEL escapes a quote by doubling it. Returns the text and the index after it.
fn quoted(chars: &[char], start: usize, at: usize) -> Result<(String, usize), ParseError> {
    let q = chars[start];
    let mut text = String::new();
    let mut j = start + 1;
    loop {
        match chars.get(j) {
            None => return Err(ParseError::new(at, "this text is not closed by a quote")),
            Some(&c) if c == q && chars.get(j + 1) == Some(&q) => {
                text.push(q);
                j += 2;
            }
            Some(&c) if c == q => return Ok((text, j + 1)),
            Some(&c) => {
                text.push(c);
                j += 1;
            }
        }
    }
}
