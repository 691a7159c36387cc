//! An app's expression rules: `access-expression` and `access-strict-expression` (ShinyProxy's
//! SpEL forms) and vestibule's `access-cel` and `access-strict-cel`. Each is compiled here, so
//! a rule vestibule cannot evaluate is an error at `check` time: ignoring it would let in
//! people the file keeps out.

use super::convert::{self, Fields};
use super::report::Report;
use crate::config::access::{self, AccessExpressions};

pub fn check_access(f: &Fields, report: &mut Report) -> AccessExpressions {
    let mut rules = AccessExpressions::default();
    for (key, strict, cel) in [
        ("access-expression", false, false),
        ("access-strict-expression", true, false),
        ("access-cel", false, true),
        ("access-strict-cel", true, true),
    ] {
        let Some((node, path)) = f.get(key) else {
            continue;
        };
        let Some(text) = convert::text(node, &path, report) else {
            continue;
        };
        let compiled = if cel {
            access::compile_cel(&text).map_err(|e| format!("this CEL rule cannot be used: {e}"))
        } else {
            access::compile_spel(&text).map_err(|e| convert::expression_error(&e))
        };
        match compiled {
            Ok(rule) if strict => rules.all.push(rule),
            Ok(rule) => rules.any.push(rule),
            Err(message) => report.error(&node.at, &path, message),
        }
    }
    rules
}
