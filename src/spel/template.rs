//! A config value with `#{...}` expressions in it, parsed once when the config is read.
//! As in ShinyProxy: text outside the braces is kept, an expression standing alone keeps its
//! type (true/false, a number, a list), and one inside text is printed into it.

use super::ParseError;
use super::eval::{Context, EvalError, eval};
use super::parser::{Expr, parse};
use super::value::Value;

#[derive(Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl std::fmt::Debug for Template {
    // As the source text, so an app's settings fingerprint does not change with how the
    // template is held.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl PartialEq<&str> for Template {
    fn eq(&self, other: &&str) -> bool {
        self.source == *other
    }
}

impl Template {
    /// Parses every `#{...}` in `source`; `}` inside quotes or nested brackets does not end
    /// an expression, as in Spring.
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        let chars: Vec<char> = source.chars().collect();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '#' && chars.get(i + 1) == Some(&'{') {
                let start = i + 2;
                let end = closing_brace(&chars, start)
                    .ok_or_else(|| ParseError::new(i, "this #{ is not closed by a }"))?;
                let inner: String = chars[start..end].iter().collect();
                if inner.trim().is_empty() {
                    return Err(ParseError::new(i, "#{} holds no expression"));
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Expr(parse(&inner, start)?));
                i = end + 1;
            } else {
                text.push(chars[i]);
                i += 1;
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// A text taken as it is: fields ShinyProxy never evaluates.
    pub fn literal(source: &str) -> Self {
        Self {
            source: source.to_string(),
            parts: vec![Part::Text(source.to_string())],
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn has_expressions(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Expr(_)))
    }

    pub(super) fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Text(_) => None,
        })
    }

    /// The value: typed when one expression stands alone, otherwise the text.
    pub fn eval(&self, ctx: &Context) -> Result<Value, EvalError> {
        if let [Part::Expr(e)] = self.parts.as_slice() {
            return eval(e, ctx);
        }
        self.render_parts(ctx, |_, v| Ok(v.to_text()))
            .map(Value::Str)
    }

    /// The value for a text field: null is empty, anything else its text.
    pub fn render(&self, ctx: &Context) -> Result<String, EvalError> {
        Ok(match self.eval(ctx)? {
            Value::Null => String::new(),
            v @ Value::List(_) if !self.is_single() => v.to_text(),
            v => v.java_string(),
        })
    }

    /// Each expression's value passes `accept` before it is printed into the text, so a caller
    /// can refuse values that would be unsafe there (a user name climbing out of a folder).
    pub fn render_checked(
        &self,
        ctx: &Context,
        accept: impl Fn(&Expr, String) -> Result<String, String>,
    ) -> Result<String, String> {
        self.render_parts(ctx, |e, v| accept(e, v.to_text()))
            .map_err(|e| e.message)
    }

    fn is_single(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Expr(_)])
    }

    fn render_parts(
        &self,
        ctx: &Context,
        mut print: impl FnMut(&Expr, Value) -> Result<String, String>,
    ) -> Result<String, EvalError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => {
                    let v = eval(e, ctx)?;
                    let printed = print(e, v).map_err(|message| EvalError { at: 0, message })?;
                    out.push_str(&printed);
                }
            }
        }
        Ok(out)
    }
}

/// The index of the `}` that closes an expression starting at `from`.
fn closing_brace(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(from) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{' | '(' | '[') => depth += 1,
            (None, '}') if depth == 0 => return Some(i),
            (None, '}' | ')' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}
