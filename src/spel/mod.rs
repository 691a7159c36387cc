//! Spring's expression language (SpEL) as ShinyProxy configs write it, in `#{...}`: one
//! evaluator for access rules, page titles, app settings filled in at launch and login
//! settings. It is read-only and reaches nothing but the values handed in: type references,
//! beans, constructors, variables and assignment are refused when the config is read, with
//! the position.
//!
//! Understood: property chains and getters (`proxy.userId`, `proxy.getUserId()`), safe
//! navigation `?.`, indexing `[0]` and `['key']`, method calls on text, lists and maps, the
//! ternary and Elvis operators, `== != < <= > >=` (and `eq ne lt le gt ge`), `+ - * / %`,
//! `and or not` (and `&& || !`), `matches`, and list `{a, b}` and map `{k: v}` literals.
//! Root helpers: `toList`, `toLowerCaseList`, `isOneOf`, `isOneOfIgnoreCase`.

mod check;
mod eval;
mod lexer;
mod parser;
mod template;
mod value;

#[cfg(test)]
mod tests;

pub use check::{ALL_NAMES, PROXY_FIELDS, Phase, RUNTIME_KEYS};
pub use eval::{Context, EvalError};
pub use template::Template;
pub use value::{Kind, Object, Value};

/// Why an expression was refused; `at` counts characters from the start of the config value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(at: usize, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

/// The names every moment with a user offers: `userId`, and `groups` in ShinyProxy's form.
pub fn user_context(user: Option<&str>, groups: &[String]) -> Context {
    Context::new()
        .with("userId", user)
        .with("groups", expression_groups(groups))
}

/// ShinyProxy's form of the user's groups in expressions: upper case, without `ROLE_`.
pub fn expression_groups(groups: &[String]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            let g = g.trim().to_uppercase();
            g.strip_prefix("ROLE_").map(str::to_string).unwrap_or(g)
        })
        .collect()
}
