//! The part of Spring's expression language (SpEL) that ShinyProxy access rules use, parsed
//! into typed rules when the config is checked, so anything else is an error at `check` time
//! rather than a surprise at login.
//!
//! Understood, inside `#{...}`:
//! - `userId` (also `proxy.userId`) and `groups` (the user's groups);
//! - `groups.contains('x')` (ignoring case, as `access-groups` does), `groups.isEmpty()`,
//!   `groups.isOneOf('a', 'b')` (any of the user's groups is one of these);
//! - on text: `== != equals equalsIgnoreCase startsWith endsWith contains toLowerCase
//!   toUpperCase`, and `matches '<regex>'` (the whole text must match, as in Java);
//! - `isOneOf(userId, 'a', 'b')` and `isOneOfIgnoreCase(...)` (ShinyProxy's helpers);
//! - `&& || !` and `and or not`, parentheses, `true`, `false`, 'single' or "double" quotes.

use regex::Regex;

/// A checked boolean rule.
#[derive(Debug, Clone)]
pub enum Rule {
    Const(bool),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
    Compare(Text, TextTest, Text),
    Matches(Text, Regex),
    InGroups(Text),
    /// Any of the user's groups is one of these (ignoring case).
    AnyGroupOf(Vec<Text>),
    NoGroups,
    OneOf {
        value: Text,
        allowed: Vec<Text>,
        ignore_case: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum TextTest {
    Equal,
    NotEqual,
    EqualIgnoreCase,
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone)]
pub enum Text {
    UserId,
    Literal(String),
    Lower(Box<Text>),
    Upper(Box<Text>),
}

/// Who is asking.
pub struct Subject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl Text {
    fn eval(&self, s: &Subject) -> String {
        match self {
            Text::UserId => s.user.to_string(),
            Text::Literal(t) => t.clone(),
            Text::Lower(t) => t.eval(s).to_lowercase(),
            Text::Upper(t) => t.eval(s).to_uppercase(),
        }
    }
}

impl Rule {
    pub fn eval(&self, s: &Subject) -> bool {
        match self {
            Rule::Const(b) => *b,
            Rule::Not(r) => !r.eval(s),
            Rule::And(a, b) => a.eval(s) && b.eval(s),
            Rule::Or(a, b) => a.eval(s) || b.eval(s),
            Rule::Compare(a, test, b) => {
                let (a, b) = (a.eval(s), b.eval(s));
                match test {
                    TextTest::Equal => a == b,
                    TextTest::NotEqual => a != b,
                    TextTest::EqualIgnoreCase => a.to_lowercase() == b.to_lowercase(),
                    TextTest::StartsWith => a.starts_with(&b),
                    TextTest::EndsWith => a.ends_with(&b),
                    TextTest::Contains => a.contains(&b),
                }
            }
            Rule::Matches(t, re) => re.is_match(&t.eval(s)),
            Rule::InGroups(t) => {
                let wanted = t.eval(s);
                s.groups.iter().any(|g| g.eq_ignore_ascii_case(&wanted))
            }
            Rule::AnyGroupOf(names) => names.iter().any(|n| {
                let n = n.eval(s);
                s.groups
                    .iter()
                    .any(|g| g.trim().eq_ignore_ascii_case(n.trim()))
            }),
            Rule::NoGroups => s.groups.is_empty(),
            Rule::OneOf {
                value,
                allowed,
                ignore_case,
            } => {
                let v = value.eval(s);
                let v = v.trim();
                allowed.iter().any(|a| {
                    let a = a.eval(s);
                    if *ignore_case {
                        a.trim().eq_ignore_ascii_case(v)
                    } else {
                        a.trim() == v
                    }
                })
            }
        }
    }
}

/// Why an expression was refused; `at` counts characters from the start of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpelError {
    pub at: usize,
    pub message: String,
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, SpelError> {
    Err(SpelError {
        at,
        message: message.into(),
    })
}

/// Parses a whole `#{...}` value.
pub fn parse(written: &str) -> Result<Rule, SpelError> {
    let trimmed = written.trim();
    let lead = written.len() - written.trim_start().len();
    let Some(inner) = trimmed.strip_prefix("#{").and_then(|r| r.strip_suffix('}')) else {
        return err(
            0,
            "an access expression is written as #{...}, e.g. #{groups.contains('analysts')}",
        );
    };
    let tokens = lex(inner, lead + 2)?;
    let mut p = Parser { tokens, pos: 0 };
    let rule = p.or()?;
    match p.peek() {
        None => Ok(rule),
        Some((at, t)) => err(*at, format!("unexpected {}", t.describe())),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Dot,
    EqEq,
    NotEq,
    AndAnd,
    OrOr,
    Bang,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(i) => format!("'{i}'"),
            Tok::Str(s) => format!("text '{s}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Dot => "'.'".into(),
            Tok::EqEq => "'=='".into(),
            Tok::NotEq => "'!='".into(),
            Tok::AndAnd => "'&&'".into(),
            Tok::OrOr => "'||'".into(),
            Tok::Bang => "'!'".into(),
        }
    }
}

fn lex(src: &str, offset: usize) -> Result<Vec<(usize, Tok)>, SpelError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = offset + i;
        let two = |next: char| chars.get(i + 1) == Some(&next);
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | ',' | '.' => {
                out.push((
                    at,
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        ',' => Tok::Comma,
                        _ => Tok::Dot,
                    },
                ));
                i += 1;
            }
            '=' if two('=') => {
                out.push((at, Tok::EqEq));
                i += 2;
            }
            '!' if two('=') => {
                out.push((at, Tok::NotEq));
                i += 2;
            }
            '!' => {
                out.push((at, Tok::Bang));
                i += 1;
            }
            '&' if two('&') => {
                out.push((at, Tok::AndAnd));
                i += 2;
            }
            '|' if two('|') => {
                out.push((at, Tok::OrOr));
                i += 2;
            }
            '\'' | '"' => {
                // SpEL escapes a quote by doubling it.
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return err(at, "this text is not closed by a quote"),
                        Some(&q) if q == c && chars.get(j + 1) == Some(&c) => {
                            text.push(c);
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            text.push(other);
                            j += 1;
                        }
                    }
                }
                out.push((at, Tok::Str(text)));
                i = j + 1;
            }
            c if c.is_alphabetic() || c == '_' || c == '#' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push((at, Tok::Ident(word)));
            }
            other => {
                return err(
                    at,
                    format!("'{other}' is not supported in vestibule's access expressions"),
                );
            }
        }
    }
    Ok(out)
}

/// A value while parsing, before it is known to be used as a rule.
enum Val {
    Bool(Rule),
    Text(Text),
    Groups,
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.pos)
    }

    fn here(&self) -> usize {
        self.peek()
            .map(|(a, _)| *a)
            .or_else(|| self.tokens.last().map(|(a, _)| a + 1))
            .unwrap_or(0)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Ident(i))) if i.eq_ignore_ascii_case(w))
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek().map(|(_, x)| x) == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok) -> Result<(), SpelError> {
        if self.eat(&t) {
            return Ok(());
        }
        let found = match self.peek() {
            Some((_, x)) => x.describe(),
            None => "the end".into(),
        };
        err(
            self.here(),
            format!("expected {} but found {found}", t.describe()),
        )
    }

    fn or(&mut self) -> Result<Rule, SpelError> {
        let mut left = self.and()?;
        while self.eat(&Tok::OrOr) || (self.is_word("or") && self.bump()) {
            let right = self.and()?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, SpelError> {
        let mut left = self.unary()?;
        while self.eat(&Tok::AndAnd) || (self.is_word("and") && self.bump()) {
            let right = self.unary()?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn bump(&mut self) -> bool {
        self.pos += 1;
        true
    }

    fn unary(&mut self) -> Result<Rule, SpelError> {
        if self.eat(&Tok::Bang) || (self.is_word("not") && self.bump()) {
            return Ok(Rule::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Rule, SpelError> {
        let at = self.here();
        let left = self.value()?;
        let test = if self.eat(&Tok::EqEq) || (self.is_word("eq") && self.bump()) {
            Some(TextTest::Equal)
        } else if self.eat(&Tok::NotEq) || (self.is_word("ne") && self.bump()) {
            Some(TextTest::NotEqual)
        } else {
            None
        };
        if let Some(test) = test {
            let right_at = self.here();
            let right = self.value()?;
            return Ok(Rule::Compare(
                as_text(left, at)?,
                test,
                as_text(right, right_at)?,
            ));
        }
        if self.is_word("matches") {
            self.pos += 1;
            let re_at = self.here();
            let Some((_, Tok::Str(pattern))) = self.peek().cloned() else {
                return err(re_at, "matches takes a quoted regular expression");
            };
            self.pos += 1;
            // Java's String.matches needs the whole text to match.
            let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| SpelError {
                at: re_at,
                message: format!("not a valid regular expression: {e}"),
            })?;
            return Ok(Rule::Matches(as_text(left, at)?, re));
        }
        as_rule(left, at)
    }

    fn value(&mut self) -> Result<Val, SpelError> {
        let Some((at, tok)) = self.peek().cloned() else {
            return err(self.here(), "the expression ends too early");
        };
        self.pos += 1;
        let mut v = match tok {
            Tok::LParen => {
                let inner = self.or()?;
                self.expect(Tok::RParen)?;
                Val::Bool(inner)
            }
            Tok::Str(s) => Val::Text(Text::Literal(s)),
            Tok::Ident(word) => self.word(&word, at)?,
            other => return err(at, format!("unexpected {}", other.describe())),
        };
        while self.eat(&Tok::Dot) {
            let at = self.here();
            let Some((_, Tok::Ident(name))) = self.peek().cloned() else {
                return err(at, "expected a method name after '.'");
            };
            self.pos += 1;
            let args = if self.eat(&Tok::LParen) {
                self.args()?
            } else {
                return err(
                    at,
                    format!("'{name}' is not something vestibule can read here; {HELP}"),
                );
            };
            v = method(v, &name, args, at)?;
        }
        Ok(v)
    }

    fn word(&mut self, word: &str, at: usize) -> Result<Val, SpelError> {
        match word {
            "true" => Ok(Val::Bool(Rule::Const(true))),
            "false" => Ok(Val::Bool(Rule::Const(false))),
            "userId" => Ok(Val::Text(Text::UserId)),
            "groups" => Ok(Val::Groups),
            "proxy" | "#proxy" => {
                self.expect(Tok::Dot)?;
                match self.peek().cloned() {
                    Some((_, Tok::Ident(w))) if w == "userId" => {
                        self.pos += 1;
                        Ok(Val::Text(Text::UserId))
                    }
                    _ => err(
                        at,
                        format!("of 'proxy', only proxy.userId is known; {HELP}"),
                    ),
                }
            }
            "isOneOf" | "isOneOfIgnoreCase" => {
                self.expect(Tok::LParen)?;
                let mut args = self.args()?.into_iter();
                let Some((value_at, value)) = args.next() else {
                    return err(at, format!("{word} needs a value and the allowed values"));
                };
                let allowed = args
                    .map(|(a, v)| as_text(v, a))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Val::Bool(Rule::OneOf {
                    value: as_text(value, value_at)?,
                    allowed,
                    ignore_case: word == "isOneOfIgnoreCase",
                }))
            }
            other => err(at, format!("'{other}' is not known; {HELP}")),
        }
    }

    /// Arguments after '(' up to and including ')'.
    fn args(&mut self) -> Result<Vec<(usize, Val)>, SpelError> {
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            let at = self.here();
            args.push((at, self.value()?));
            if self.eat(&Tok::RParen) {
                return Ok(args);
            }
            self.expect(Tok::Comma)?;
        }
    }
}

const HELP: &str = "vestibule understands userId, groups, groups.contains('x'), \
isOneOf(userId, 'a', 'b'), ==, !=, matches '...', text methods (startsWith, endsWith, \
contains, equalsIgnoreCase, toLowerCase), &&, ||, !, and, or, not; or write CEL in access-cel";

fn as_text(v: Val, at: usize) -> Result<Text, SpelError> {
    match v {
        Val::Text(t) => Ok(t),
        Val::Groups => err(
            at,
            "groups is a list; use groups.contains('name') to test for a group",
        ),
        Val::Bool(_) => err(at, "expected text here, found a true/false test"),
    }
}

fn as_rule(v: Val, at: usize) -> Result<Rule, SpelError> {
    match v {
        Val::Bool(r) => Ok(r),
        Val::Text(_) => err(at, "this is text, not a true/false test"),
        Val::Groups => err(
            at,
            "groups is a list, not a true/false test; use groups.contains('name')",
        ),
    }
}

fn method(target: Val, name: &str, args: Vec<(usize, Val)>, at: usize) -> Result<Val, SpelError> {
    let mut texts = Vec::new();
    for (a, v) in args {
        texts.push(as_text(v, a)?);
    }
    let one = |texts: Vec<Text>| -> Result<Text, SpelError> {
        let mut it = texts.into_iter();
        match (it.next(), it.next()) {
            (Some(t), None) => Ok(t),
            _ => err(at, format!("{name} takes one value")),
        }
    };
    match (target, name) {
        (Val::Groups, "contains") => Ok(Val::Bool(Rule::InGroups(one(texts)?))),
        (Val::Groups, "isEmpty") if texts.is_empty() => Ok(Val::Bool(Rule::NoGroups)),
        (Val::Groups, "isOneOf" | "isOneOfIgnoreCase") => Ok(Val::Bool(Rule::AnyGroupOf(texts))),
        (Val::Text(t), "toLowerCase") if texts.is_empty() => {
            Ok(Val::Text(Text::Lower(Box::new(t))))
        }
        (Val::Text(t), "toUpperCase") if texts.is_empty() => {
            Ok(Val::Text(Text::Upper(Box::new(t))))
        }
        (Val::Text(t), "isOneOf" | "isOneOfIgnoreCase") => Ok(Val::Bool(Rule::OneOf {
            value: t,
            allowed: texts,
            ignore_case: name == "isOneOfIgnoreCase",
        })),
        (Val::Text(t), _) => {
            let test = match name {
                "equals" => TextTest::Equal,
                "equalsIgnoreCase" => TextTest::EqualIgnoreCase,
                "startsWith" => TextTest::StartsWith,
                "endsWith" => TextTest::EndsWith,
                "contains" => TextTest::Contains,
                _ => return err(at, format!("'{name}' is not a known text method; {HELP}")),
            };
            Ok(Val::Bool(Rule::Compare(t, test, one(texts)?)))
        }
        _ => err(at, format!("'{name}' cannot be used here; {HELP}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expr: &str, user: &str, groups: &[&str]) -> bool {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e:?}"))
            .eval(&Subject {
                user,
                groups: &groups,
            })
    }

    #[test]
    fn forms_used_in_shinyproxy_configs() {
        assert!(check("#{groups.contains('analysts')}", "a", &["Analysts"]));
        assert!(!check("#{groups.contains('analysts')}", "a", &["finance"]));
        assert!(check("#{userId == 'jack'}", "jack", &[]));
        assert!(!check("#{userId == 'jack'}", "jeff", &[]));
        assert!(check("#{userId != 'jack'}", "jeff", &[]));
        assert!(check("#{isOneOf(userId, 'jack', 'jeff')}", "jeff", &[]));
        assert!(!check("#{isOneOf(userId, 'jack', 'jeff')}", "Jeff", &[]));
        assert!(check(
            "#{isOneOfIgnoreCase(userId, 'jack', 'jeff')}",
            "Jeff",
            &[]
        ));
        assert!(check("#{userId.isOneOf('a', 'b')}", "b", &[]));
        assert!(check(
            "#{groups.contains('a') && !groups.contains('b')}",
            "u",
            &["a"]
        ));
        assert!(!check(
            "#{groups.contains('a') and not groups.contains('b')}",
            "u",
            &["a", "b"]
        ));
        assert!(check(
            "#{(userId == 'x' || groups.contains('a')) and true}",
            "u",
            &["a"]
        ));
        assert!(check("#{userId matches '[a-z]+\\.[a-z]+'}", "jo.doe", &[]));
        assert!(
            !check("#{userId matches '[a-z]+'}", "jo.doe", &[]),
            "whole match"
        );
        assert!(check(
            "#{userId.toLowerCase().endsWith('@example.org')}",
            "Jo@Example.org",
            &[]
        ));
        assert!(check("#{userId == 'it''s'}", "it's", &[]));
        assert!(check("#{proxy.userId.startsWith(\"adm\")}", "admin", &[]));
        assert!(check("#{groups.isEmpty()}", "u", &[]));
        assert!(check("#{groups.isOneOf('a', 'b')}", "u", &["x", "B"]));
        assert!(!check("#{groups.isOneOf('a', 'b')}", "u", &["x"]));
    }

    #[test]
    fn anything_else_is_refused_with_a_position() {
        for (expr, at) in [
            ("#{T(java.lang.Runtime).getRuntime()}", 2),
            ("#{groups.size() > 1}", 16),
            ("#{groups.size() == 'x'}", 9),
            ("#{userId}", 2),
            ("#{groups}", 2),
            ("#{userId == }", 10),
            ("#{userId matches '('}", 17),
            ("#{oidcUser.attributes}", 2),
            ("#{userId == 'a'", 0),
            ("#{'a' + 'b' == 'ab'}", 6),
        ] {
            let e = parse(expr).expect_err(expr);
            assert_eq!(e.at, at, "{expr}: {e:?}");
        }
    }
}
