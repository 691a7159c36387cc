//! Reading the `Authorization` header (RFC 9110 §11.6.2). The scheme is case-insensitive
//! (RFC 9110 §11.1): `bearer`, `BEARER` and `Bearer` are one scheme, and a check that only knows
//! one spelling lets the others through.

use base64::Engine;
use http::HeaderValue;

/// The credentials after the scheme, when the header uses `scheme`.
pub fn credentials<'v>(value: &'v HeaderValue, scheme: &str) -> Option<&'v str> {
    let text = value.to_str().ok()?.trim_start();
    let (given, rest) = text.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then_some(rest.trim())
        .filter(|r| !r.is_empty())
}

pub fn credentials_of<'v>(value: Option<&'v HeaderValue>, scheme: &str) -> Option<&'v str> {
    credentials(value?, scheme)
}

pub fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    credentials(value?, "Bearer")
}

/// User name and password of HTTP Basic (RFC 7617).
pub fn basic(value: Option<&HeaderValue>) -> Option<(String, String)> {
    let encoded = credentials(value?, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_case_of_the_scheme() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", " BeArEr abc"] {
            assert_eq!(
                bearer(Some(&HeaderValue::from_static(v))),
                Some("abc"),
                "{v}"
            );
        }
        assert_eq!(bearer(Some(&HeaderValue::from_static("Bearerabc"))), None);
        assert_eq!(bearer(Some(&HeaderValue::from_static("Bearer "))), None);
        let b = HeaderValue::from_static("bAsIc YWxpY2U6cHc6eA==");
        assert_eq!(basic(Some(&b)), Some(("alice".into(), "pw:x".into())));
    }
}
