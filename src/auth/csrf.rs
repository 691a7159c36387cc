//! CSRF protection. A session's token must come back with every state-changing form (field
//! `_csrf`) or API call made with the session cookie (header `X-CSRF-Token`). The login form,
//! which has no session yet, uses a double-submit cookie instead.

use subtle::ConstantTimeEq;

pub const FORM_FIELD: &str = "_csrf";
pub const HEADER: &str = "x-csrf-token";
pub const LOGIN_COOKIE: &str = "vestibule_login_csrf";

pub fn matches(expected: &str, given: Option<&str>) -> bool {
    match given {
        Some(given) if !expected.is_empty() => expected.as_bytes().ct_eq(given.as_bytes()).into(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(matches("abc", Some("abc")));
        assert!(!matches("abc", Some("abd")));
        assert!(!matches("abc", None));
        assert!(!matches("", Some("")));
    }
}
