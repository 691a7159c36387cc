//! SpEL's grammar, read-only: what ShinyProxy configs write, and nothing that reaches past
//! the values vestibule hands in (no types, beans, constructors, variables or assignment).
//! Refusals carry the position, so `check` can point at them.

use regex::Regex;

use super::ParseError;
use super::lexer::{Tok, lex};
use super::value::Value;

#[derive(Debug, Clone)]
pub enum Expr {
    Lit(Value),
    /// A name at the root: `userId`, `groups`, `proxy`, …
    Name {
        name: String,
        at: usize,
    },
    This,
    Prop {
        target: Box<Expr>,
        name: String,
        safe: bool,
        at: usize,
    },
    /// A method call; without a target it is one of the root helpers (`isOneOf`, …).
    Call {
        target: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
        safe: bool,
        at: usize,
    },
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
        at: usize,
    },
    Not(Box<Expr>, usize),
    Neg(Box<Expr>, usize),
    And(Box<Expr>, Box<Expr>, usize),
    Or(Box<Expr>, Box<Expr>, usize),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        at: usize,
    },
    Matches {
        text: Box<Expr>,
        pattern: Pattern,
        at: usize,
    },
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>, usize),
    Elvis(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Map(Vec<(String, Expr)>),
}

#[derive(Debug, Clone)]
pub enum Pattern {
    /// A literal pattern, compiled when the config is read.
    Fixed(Regex),
    Computed(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

/// Spring's own limit on an expression's length.
const MAX_LEN: usize = 10_000;
/// Deep nesting is refused rather than overflowing the stack.
const MAX_DEPTH: usize = 64;

/// Parses one expression (the text between `#{` and `}`); `offset` is where it starts in the
/// whole value, so positions in errors count from there.
pub fn parse(src: &str, offset: usize) -> Result<Expr, ParseError> {
    if src.chars().count() > MAX_LEN {
        return Err(ParseError::new(
            offset,
            format!("an expression may be at most {MAX_LEN} characters long"),
        ));
    }
    let tokens = lex(src, offset)?;
    if tokens.is_empty() {
        return Err(ParseError::new(offset, "the expression is empty"));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: offset + src.chars().count(),
    };
    let e = p.expr()?;
    match p.peek() {
        None => Ok(e),
        Some((at, t)) => Err(ParseError::new(*at, format!("unexpected {}", t.describe()))),
    }
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.pos)
    }

    fn here(&self) -> usize {
        self.peek().map(|(a, _)| *a).unwrap_or(self.end)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Punct(x))) if *x == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Ident(i))) if i.eq_ignore_ascii_case(w))
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let hit = self.is_punct(p);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let hit = self.is_word(w);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, p: &'static str) -> Result<(), ParseError> {
        if self.eat_punct(p) {
            return Ok(());
        }
        let found = match self.peek() {
            Some((_, t)) => t.describe(),
            None => "the end".into(),
        };
        Err(ParseError::new(
            self.here(),
            format!("expected '{p}' but found {found}"),
        ))
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.here(),
                "the expression is nested too deeply",
            ));
        }
        let at = self.here();
        let cond = self.or()?;
        let e = if self.eat_punct("?") {
            let yes = self.expr()?;
            self.expect(":")?;
            let no = self.expr()?;
            Expr::Ternary(Box::new(cond), Box::new(yes), Box::new(no), at)
        } else if self.eat_punct("?:") {
            Expr::Elvis(Box::new(cond), Box::new(self.expr()?))
        } else {
            cond
        };
        if self.is_punct("=") || self.is_punct("++") || self.is_punct("--") {
            return Err(ParseError::new(
                self.here(),
                "expressions are read-only: assignment is not supported",
            ));
        }
        self.depth -= 1;
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        loop {
            let at = self.here();
            if !(self.eat_punct("||") || self.eat_word("or")) {
                return Ok(left);
            }
            left = Expr::Or(Box::new(left), Box::new(self.and()?), at);
        }
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.relation()?;
        loop {
            let at = self.here();
            if !(self.eat_punct("&&") || self.eat_word("and")) {
                return Ok(left);
            }
            left = Expr::And(Box::new(left), Box::new(self.relation()?), at);
        }
    }

    fn relation(&mut self) -> Result<Expr, ParseError> {
        let left = self.sum()?;
        let at = self.here();
        if self.eat_word("matches") {
            let pat_at = self.here();
            let pattern = match self.sum()? {
                Expr::Lit(Value::Str(p)) => Pattern::Fixed(compile_pattern(&p, pat_at)?),
                other => Pattern::Computed(Box::new(other)),
            };
            return Ok(Expr::Matches {
                text: Box::new(left),
                pattern,
                at,
            });
        }
        if self.is_word("instanceof") || self.is_word("between") {
            return Err(ParseError::new(at, "this operator is not supported"));
        }
        let ops: [(&str, &str, BinOp); 6] = [
            ("==", "eq", BinOp::Eq),
            ("!=", "ne", BinOp::Ne),
            ("<=", "le", BinOp::Le),
            (">=", "ge", BinOp::Ge),
            ("<", "lt", BinOp::Lt),
            (">", "gt", BinOp::Gt),
        ];
        for (sym, word, op) in ops {
            if self.eat_punct(sym) || self.eat_word(word) {
                let right = self.sum()?;
                return Ok(Expr::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                    at,
                });
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.product()?;
        loop {
            let at = self.here();
            let op = if self.eat_punct("+") {
                BinOp::Add
            } else if self.eat_punct("-") {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.product()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
                at,
            };
        }
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let at = self.here();
            let op = if self.eat_punct("*") {
                BinOp::Mul
            } else if self.eat_punct("/") || self.eat_word("div") {
                BinOp::Div
            } else if self.eat_punct("%") || self.eat_word("mod") {
                BinOp::Rem
            } else if self.eat_punct("^") {
                BinOp::Pow
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
                at,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let at = self.here();
        if self.eat_punct("!") || self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.unary()?), at));
        }
        if self.eat_punct("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?), at));
        }
        if self.eat_punct("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        loop {
            let at = self.here();
            if self.is_punct(".?[")
                || self.is_punct(".![")
                || self.is_punct(".^[")
                || self.is_punct(".$[")
            {
                return Err(ParseError::new(
                    at,
                    "selection and projection (.?[ ], .![ ]) are not supported",
                ));
            }
            let safe = if self.eat_punct("?.") {
                true
            } else if self.eat_punct(".") {
                false
            } else if self.eat_punct("[") {
                let index = self.expr()?;
                self.expect("]")?;
                e = Expr::Index {
                    target: Box::new(e),
                    index: Box::new(index),
                    at,
                };
                continue;
            } else {
                return Ok(e);
            };
            let name_at = self.here();
            let Some((_, Tok::Ident(name))) = self.peek().cloned() else {
                return Err(ParseError::new(name_at, "expected a name after '.'"));
            };
            self.pos += 1;
            e = if self.eat_punct("(") {
                Expr::Call {
                    target: Some(Box::new(e)),
                    name,
                    args: self.args()?,
                    safe,
                    at: name_at,
                }
            } else {
                Expr::Prop {
                    target: Box::new(e),
                    name,
                    safe,
                    at: name_at,
                }
            };
        }
    }

    /// Arguments after '(' up to and including ')'.
    fn args(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        if self.eat_punct(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat_punct(")") {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let at = self.here();
        let Some((_, tok)) = self.peek().cloned() else {
            return Err(ParseError::new(at, "the expression ends too early"));
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Expr::Lit(Value::Str(s))),
            Tok::Int(n) => Ok(Expr::Lit(Value::Int(n))),
            Tok::Float(n) => Ok(Expr::Lit(Value::Float(n))),
            Tok::Punct("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("{") => self.inline_collection(),
            Tok::Hash(h) if h == "this" || h == "root" => Ok(Expr::This),
            Tok::Hash(h) => Err(ParseError::new(
                at,
                format!(
                    "variables (#{h}) are not supported; use the names userId, groups, proxy, …"
                ),
            )),
            Tok::Bean(b) => Err(ParseError::new(
                at,
                format!(
                    "bean references ({b}) are not supported; use a ${{...}} placeholder for settings"
                ),
            )),
            Tok::Ident(word) => self.word(word, at),
            other => Err(ParseError::new(
                at,
                format!("unexpected {}", other.describe()),
            )),
        }
    }

    fn word(&mut self, word: String, at: usize) -> Result<Expr, ParseError> {
        match word.to_ascii_lowercase().as_str() {
            "true" => return Ok(Expr::Lit(Value::Bool(true))),
            "false" => return Ok(Expr::Lit(Value::Bool(false))),
            "null" => return Ok(Expr::Lit(Value::Null)),
            "new" => {
                return Err(ParseError::new(
                    at,
                    "constructors (new ...) are not supported",
                ));
            }
            "t" if self.is_punct("(") => {
                return Err(ParseError::new(
                    at,
                    "type references T(...) are not supported; available names: userId, groups, \
                     serverName, proxy, proxySpec, oidcUser, ldapUser, samlCredential",
                ));
            }
            _ => {}
        }
        if self.eat_punct("(") {
            return Ok(Expr::Call {
                target: None,
                name: word,
                args: self.args()?,
                safe: false,
                at,
            });
        }
        Ok(Expr::Name { name: word, at })
    }

    /// `{a, b}` is a list, `{k: v}` a map, `{}` an empty list, `{:}` an empty map.
    fn inline_collection(&mut self) -> Result<Expr, ParseError> {
        if self.eat_punct("}") {
            return Ok(Expr::List(Vec::new()));
        }
        if self.eat_punct(":") {
            self.expect("}")?;
            return Ok(Expr::Map(Vec::new()));
        }
        let first = self.expr()?;
        if self.eat_punct(":") {
            let mut entries = vec![(map_key(first, self.here())?, self.expr()?)];
            while self.eat_punct(",") {
                let key_at = self.here();
                let key = map_key(self.expr()?, key_at)?;
                self.expect(":")?;
                entries.push((key, self.expr()?));
            }
            self.expect("}")?;
            return Ok(Expr::Map(entries));
        }
        let mut items = vec![first];
        while self.eat_punct(",") {
            items.push(self.expr()?);
        }
        self.expect("}")?;
        Ok(Expr::List(items))
    }
}

/// SpEL map keys are bare words or quoted text.
fn map_key(e: Expr, at: usize) -> Result<String, ParseError> {
    match e {
        Expr::Name { name, .. } => Ok(name),
        Expr::Lit(Value::Str(s)) => Ok(s),
        Expr::Lit(Value::Int(n)) => Ok(n.to_string()),
        _ => Err(ParseError::new(at, "a map key is a name or quoted text")),
    }
}

/// Java's `matches` needs the whole text to match; the regex crate is linear-time, so a
/// pattern cannot be made to run for ever (look-around and back-references are refused).
pub fn compile_pattern(pattern: &str, at: usize) -> Result<Regex, ParseError> {
    if pattern.chars().count() > 1000 {
        return Err(ParseError::new(
            at,
            "a 'matches' pattern may be at most 1000 characters long",
        ));
    }
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ParseError::new(at, format!("not a valid regular expression: {e}")))
}
