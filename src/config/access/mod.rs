//! Access rules written as expressions: ShinyProxy's SpEL forms (`access-expression`,
//! `access-strict-expression`, evaluated by [`crate::spel`]) and plain CEL (vestibule's
//! `access-cel`, `access-strict-cel`).
//!
//! Both are compiled when the config is checked; at run time a rule reads the user's name and
//! groups and the host name the request came through (ShinyProxy's `serverName`).

use std::sync::Arc;

use crate::spel;

/// Who is asking, and through which host.
pub struct Subject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// The request's host without the port; `None` outside a request.
    pub server_name: Option<&'a str>,
}

/// One compiled access expression.
#[derive(Debug, Clone)]
pub enum AccessExpr {
    Spel(spel::Template),
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
    /// A rule that fails to evaluate denies (and says why in the log): ShinyProxy answers 500
    /// there, and letting the user in would be worse.
    pub fn allows(&self, s: &Subject) -> bool {
        match self {
            AccessExpr::Spel(rule) => match rule.eval(&spel_context(s)).map(|v| v.to_bool()) {
                Ok(Ok(b)) => b,
                Ok(Err(why)) => {
                    tracing::warn!(
                        user = s.user,
                        rule = rule.source(),
                        why,
                        "an access rule gave no true/false; access denied"
                    );
                    false
                }
                Err(e) => {
                    tracing::warn!(
                        user = s.user,
                        rule = rule.source(),
                        error = e.message,
                        "an access rule failed; access denied"
                    );
                    false
                }
            },
            AccessExpr::Cel(program) => eval_cel(program, s),
        }
    }
}

/// ShinyProxy's rules for an app (and a parameter value set): every strict expression must
/// hold; then any match of groups, users or expressions grants access; with none set,
/// everyone may.
pub fn rules_allow(
    groups: &[String],
    users: &[String],
    rules: &AccessExpressions,
    s: &Subject,
) -> bool {
    if !rules.all.iter().all(|r| r.allows(s)) {
        return false;
    }
    if groups.is_empty() && users.is_empty() && rules.any.is_empty() {
        return true;
    }
    users.iter().any(|u| u == s.user)
        || groups
            .iter()
            .any(|g| s.groups.iter().any(|ug| ug.eq_ignore_ascii_case(g)))
        || rules.any.iter().any(|r| r.allows(s))
}

/// An access rule as ShinyProxy reads it: `#{...}` is evaluated; without one the value is a
/// literal, which must then be true or false.
pub fn compile_spel(source: &str) -> Result<AccessExpr, spel::ParseError> {
    let rule = spel::Template::parse(source)?;
    if !rule.has_expressions() && spel::Value::from(source).to_bool().is_err() {
        return Err(spel::ParseError {
            at: 0,
            message: "an access expression is written as #{...}, e.g. \
                      #{groups.contains('ANALYSTS')}; without #{} it is taken literally"
                .into(),
        });
    }
    rule.check(spel::Phase::Access)?;
    Ok(AccessExpr::Spel(rule))
}

fn spel_context(s: &Subject) -> spel::Context {
    spel::user_context(Some(s.user), s.groups).with("serverName", s.server_name)
}

/// The variables a CEL rule may read.
pub const CEL_VARIABLES: &[&str] = &["userId", "groups", "serverName"];

/// Compiles a CEL rule and tries it on a sample user, so that an unknown variable or a rule
/// that gives no true/false is refused when the config is checked, not at login.
pub fn compile_cel(source: &str) -> Result<AccessExpr, String> {
    let program = cel::Program::compile(source).map_err(|e| e.to_string())?;
    let groups = vec!["group".to_string()];
    match program.execute(&cel_context(&Subject {
        user: "user",
        groups: &groups,
        server_name: Some("localhost"),
    })) {
        Ok(cel::Value::Bool(_)) => Ok(AccessExpr::Cel(Arc::new(program))),
        Ok(other) => Err(format!("the rule gives {other:?}, not true or false")),
        Err(e) => Err(format!(
            "{e} (a CEL access rule can read {})",
            CEL_VARIABLES.join(", ")
        )),
    }
}

fn cel_context(s: &Subject) -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("userId", s.user.to_string());
    ctx.add_variable_from_value("groups", s.groups.to_vec());
    ctx.add_variable_from_value("serverName", s.server_name.unwrap_or_default().to_string());
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

    fn subject<'a>(user: &'a str, groups: &'a [String], host: Option<&'a str>) -> Subject<'a> {
        Subject {
            user,
            groups,
            server_name: host,
        }
    }

    #[test]
    fn cel_rules_read_the_user() {
        let groups = vec!["analysts".to_string()];
        let s = subject("jo", &groups, Some("a.example"));
        let allows = |src: &str| compile_cel(src).expect(src).allows(&s);
        assert!(allows("'analysts' in groups"));
        assert!(allows(
            "userId == 'jo' && groups.exists(g, g.startsWith('ana'))"
        ));
        assert!(allows("serverName == 'a.example'"));
        assert!(!allows("userId.matches('^adm')"));
        assert!(compile_cel("'x'").is_err(), "not a boolean");
        assert!(compile_cel("user == 'x'").is_err());
        assert!(compile_cel("userId ==").is_err());
    }

    #[test]
    fn spel_rules_read_the_user_and_the_host() {
        let groups = vec!["analysts".to_string(), "ROLE_dev".to_string()];
        let allows = |src: &str, host: Option<&str>| {
            compile_spel(src)
                .unwrap_or_else(|e| panic!("{src}: {e}"))
                .allows(&subject("jo", &groups, host))
        };
        assert!(allows("#{groups.contains('analysts')}", None));
        assert!(allows("#{groups.contains('DEV')}", None), "ROLE_ dropped");
        assert!(!allows("#{groups.contains('contractors')}", None));
        assert!(allows("#{serverName == 'a.local'}", Some("a.local")));
        assert!(!allows("#{serverName == 'a.local'}", Some("b.local")));
        assert!(!allows("#{serverName == 'a.local'}", None));
        assert!(allows("true", None), "a literal true");
        assert!(!allows("#{userId.length() > 'x'}", None), "an error denies");
        assert!(!allows("#{null}", None), "null denies");
        for refused in [
            "groups.contains('x')",
            "#{T(java.lang.Runtime).getRuntime()}",
            "#{proxy.userId == 'a'}",
            "#{user == 'a'}",
        ] {
            assert!(compile_spel(refused).is_err(), "{refused}");
        }
    }
}
