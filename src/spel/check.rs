//! What `check` knows before anything runs: the names an expression reads must exist at the
//! moment its field is evaluated, and every method and runtime value must be one vestibule
//! evaluates, so a typo is an error at load rather than a failed launch at 9 am.

use super::ParseError;
use super::eval::{METHODS, ROOT_FUNCTIONS};
use super::parser::{Expr, Pattern};
use super::template::Template;
use super::value::Value;

/// Every name ShinyProxy offers somewhere.
pub const ALL_NAMES: &[&str] = &[
    "userId",
    "groups",
    "serverName",
    "proxy",
    "proxySpec",
    "containerSpec",
    "oidcUser",
    "ldapUser",
    "samlCredential",
    "webServiceUser",
    "json",
];

/// What `proxy` offers when an app starts.
pub const PROXY_FIELDS: &[&str] = &["id", "userId", "specId", "displayName", "runtimeValues"];

/// When a field is evaluated, which decides the names it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Access rules: the user, their login, and the host the request came through.
    Access,
    /// Title and logo: as access, on every page.
    Page,
    /// App settings filled in when an instance starts.
    Launch,
    /// `proxy.openid.logout-url`.
    Logout,
    /// `proxy.webservice.groups-expression`: the login service's answer.
    WebServiceGroups,
}

/// ShinyProxy's names the evaluator understands but vestibule does not hand in yet.
const NOT_YET: &[&str] = &[
    "oidcUser",
    "ldapUser",
    "samlCredential",
    "webServiceUser",
    "proxySpec",
    "containerSpec",
];

impl Phase {
    fn allows(self, name: &str) -> bool {
        match self {
            Phase::Access | Phase::Page => matches!(name, "userId" | "groups" | "serverName"),
            Phase::Launch => matches!(name, "userId" | "groups" | "proxy"),
            Phase::Logout => name == "oidcUser",
            Phase::WebServiceGroups => name == "json",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Phase::Access => "in an access rule",
            Phase::Page => "in a page setting",
            Phase::Launch => "when an app starts",
            Phase::Logout => "at logout",
            Phase::WebServiceGroups => "in groups-expression",
        }
    }
}

/// Runtime values vestibule sets on every instance (ShinyProxy's names, and its own).
pub const RUNTIME_KEYS: &[&str] = &[
    "SHINYPROXY_USERNAME",
    "SHINYPROXY_USERGROUPS",
    "SHINYPROXY_PROXY_ID",
    "SHINYPROXY_SPEC_ID",
    "SHINYPROXY_DISPLAY_NAME",
    "SHINYPROXY_INSTANCE",
    "SHINYPROXY_APP_INSTANCE",
    "SHINYPROXY_PUBLIC_PATH",
    "SHINYPROXY_CREATED_TIMESTAMP",
    "SHINYPROXY_REALM_ID",
    "SHINYPROXY_PARAMETERS",
    "SHINYPROXY_PARAMETER_NAMES",
    "SHINYPROXY_OIDC_ACCESS_TOKEN",
    "SHINYPROXY_OIDC_ID_TOKEN",
    "SHINYPROXY_OIDC_REFRESH_TOKEN",
    "SHINYPROXY_USER_TIMEZONE",
    "SHINYPROXY_HEARTBEAT_TIMEOUT",
    "SHINYPROXY_MAX_LIFETIME",
    "VESTIBULE_USERNAME",
    "VESTIBULE_USERGROUPS",
    "VESTIBULE_PUBLIC_PATH",
    "VESTIBULE_PROXY_ID",
];

impl Template {
    /// Refuses names the phase does not provide, unknown methods and unknown runtime values.
    pub fn check(&self, phase: Phase) -> Result<(), ParseError> {
        self.expressions().try_for_each(|e| check_expr(e, phase))
    }
}

fn check_expr(e: &Expr, phase: Phase) -> Result<(), ParseError> {
    let check = |e: &Expr| check_expr(e, phase);
    match e {
        Expr::Lit(_) | Expr::This => Ok(()),
        Expr::Name { name, at } => {
            if phase.allows(name) {
                return Ok(());
            }
            if NOT_YET.contains(&name.as_str()) {
                return Err(ParseError::new(
                    *at,
                    format!(
                        "'{name}' is ShinyProxy's, but vestibule does not offer it to \
                         expressions yet (see docs/expressions.md)"
                    ),
                ));
            }
            if ALL_NAMES.contains(&name.as_str()) {
                let here: Vec<&str> = ALL_NAMES
                    .iter()
                    .copied()
                    .filter(|n| phase.allows(n))
                    .collect();
                return Err(ParseError::new(
                    *at,
                    format!(
                        "'{name}' is not available {}; available: {}",
                        phase.describe(),
                        here.join(", ")
                    ),
                ));
            }
            let here: Vec<&str> = ALL_NAMES
                .iter()
                .copied()
                .filter(|n| phase.allows(n))
                .collect();
            Err(ParseError::new(
                *at,
                format!("unknown name '{name}'{}", suggest(name, &here)),
            ))
        }
        Expr::Prop {
            target, name, at, ..
        } => {
            let on_proxy = matches!(&**target, Expr::Name { name, .. } if name == "proxy");
            if on_proxy && !PROXY_FIELDS.contains(&name.as_str()) {
                return Err(ParseError::new(
                    *at,
                    format!(
                        "proxy has no '{name}'{}; it has {}",
                        suggest(name, PROXY_FIELDS),
                        PROXY_FIELDS.join(", ")
                    ),
                ));
            }
            check(target)
        }
        Expr::Call {
            target,
            name,
            args,
            at,
            ..
        } => {
            match target {
                None if !ROOT_FUNCTIONS.contains(&name.as_str()) => {
                    return Err(ParseError::new(
                        *at,
                        format!("unknown function '{name}'{}", suggest(name, ROOT_FUNCTIONS)),
                    ));
                }
                Some(_) if !is_known_method(name) => {
                    return Err(ParseError::new(
                        *at,
                        format!("unknown method '{name}'{}", suggest(name, METHODS)),
                    ));
                }
                _ => {}
            }
            if name.starts_with("getRuntimeValue")
                && let Some(Expr::Lit(Value::Str(key))) = args.first()
                && !RUNTIME_KEYS.contains(&key.as_str())
            {
                return Err(ParseError::new(
                    *at,
                    format!(
                        "'{key}' is not a runtime value{}; known: {}",
                        suggest(key, RUNTIME_KEYS),
                        RUNTIME_KEYS.join(", ")
                    ),
                ));
            }
            if let Some(t) = target {
                check(t)?;
            }
            args.iter().try_for_each(check)
        }
        Expr::Index { target, index, .. } => {
            check(target)?;
            check(index)
        }
        Expr::Not(a, _) | Expr::Neg(a, _) => check(a),
        Expr::And(a, b, _) | Expr::Or(a, b, _) | Expr::Elvis(a, b) => {
            check(a)?;
            check(b)
        }
        Expr::Binary { left, right, .. } => {
            check(left)?;
            check(right)
        }
        Expr::Matches { text, pattern, .. } => {
            check(text)?;
            match pattern {
                Pattern::Fixed(_) => Ok(()),
                Pattern::Computed(p) => check(p),
            }
        }
        Expr::Ternary(c, a, b, _) => {
            check(c)?;
            check(a)?;
            check(b)
        }
        Expr::List(items) => items.iter().try_for_each(check),
        Expr::Map(entries) => entries.iter().try_for_each(|(_, v)| check(v)),
    }
}

/// Getters (`getUserId`) read properties, so any `getX` is fine; other names must be listed.
fn is_known_method(name: &str) -> bool {
    METHODS.contains(&name)
        || name
            .strip_prefix("get")
            .and_then(|r| r.chars().next())
            .is_some_and(char::is_uppercase)
}

fn suggest(written: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(written, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}
