//! Access rules written as expressions: ShinyProxy's SpEL forms (`access-expression`,
//! `access-strict-expression`) and plain CEL (vestibule's `access-cel`, `access-strict-cel`).
//!
//! Both are compiled when the config is checked; at run time a rule only reads the user's name
//! and groups.

pub mod spel;

use std::sync::Arc;

pub use spel::Subject;

/// One compiled access expression.
#[derive(Debug, Clone)]
pub enum AccessExpr {
    Spel(spel::Rule),
    Cel(Arc<cel::Program>),
}

/// The expression rules of one app. ShinyProxy's semantics: every strict rule must hold; the
/// other rules are alternatives to `access-groups` and `access-users`.
#[derive(Debug, Clone, Default)]
pub struct AccessExpressions {
    pub any: Vec<AccessExpr>,
    pub all: Vec<AccessExpr>,
}

impl AccessExpr {
    pub fn allows(&self, s: &Subject) -> bool {
        match self {
            AccessExpr::Spel(rule) => rule.eval(s),
            AccessExpr::Cel(program) => eval_cel(program, s),
        }
    }
}

/// The variables a CEL rule may read.
pub const CEL_VARIABLES: &[&str] = &["userId", "groups"];

/// Compiles a CEL rule and tries it on a sample user, so that an unknown variable or a rule
/// that gives no true/false is refused when the config is checked, not at login.
pub fn compile_cel(source: &str) -> Result<AccessExpr, String> {
    let program = cel::Program::compile(source).map_err(|e| e.to_string())?;
    let groups = vec!["group".to_string()];
    match program.execute(&cel_context(&Subject {
        user: "user",
        groups: &groups,
    })) {
        Ok(cel::Value::Bool(_)) => Ok(AccessExpr::Cel(Arc::new(program))),
        Ok(other) => Err(format!("the rule gives {other:?}, not true or false")),
        Err(e) => Err(format!(
            "{e} (a CEL access rule can read {})",
            CEL_VARIABLES.join(" and ")
        )),
    }
}

fn cel_context(s: &Subject) -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("userId", s.user.to_string());
    ctx.add_variable_from_value("groups", s.groups.to_vec());
    ctx
}

fn eval_cel(program: &cel::Program, s: &Subject) -> bool {
    match program.execute(&cel_context(s)) {
        Ok(cel::Value::Bool(b)) => b,
        Ok(other) => {
            tracing::warn!(user = s.user, result = ?other, "a CEL access rule gave no true/false; access denied");
            false
        }
        Err(e) => {
            tracing::warn!(user = s.user, error = %e, "a CEL access rule failed; access denied");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cel_rules_read_the_user() {
        let groups = vec!["analysts".to_string()];
        let s = Subject {
            user: "jo",
            groups: &groups,
        };
        let allows = |src: &str| compile_cel(src).expect(src).allows(&s);
        assert!(allows("'analysts' in groups"));
        assert!(allows(
            "userId == 'jo' && groups.exists(g, g.startsWith('ana'))"
        ));
        assert!(!allows("userId.matches('^adm')"));
        assert!(compile_cel("'x'").is_err(), "not a boolean");
        assert!(compile_cel("user == 'x'").is_err());
        assert!(compile_cel("userId ==").is_err());
    }
}
