//! Reading and writing vestibule's cookies: HttpOnly always, SameSite as configured, Secure under
//! TLS (or when the load balancer says the client used https).

use cookie::{Cookie, SameSite as CookieSameSite};
use http::header::{COOKIE, HeaderMap, HeaderValue};

use crate::config::SameSite;

pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

pub fn set(name: &str, value: &str, secure: bool, same_site: SameSite) -> Option<HeaderValue> {
    let c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(secure || same_site == SameSite::None)
        .same_site(match same_site {
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::None => CookieSameSite::None,
        })
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

pub fn clear(name: &str, secure: bool, same_site: SameSite) -> Option<HeaderValue> {
    let c = Cookie::build((name, ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(match same_site {
            SameSite::Strict => CookieSameSite::Strict,
            _ => CookieSameSite::Lax,
        })
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

/// Whether the client reached us over TLS, as far as we can tell behind a load balancer.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("https")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_flags() {
        let v = set("s", "abc", false, SameSite::Lax).expect("cookie");
        let s = v.to_str().expect("ascii");
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && !s.contains("Secure"));
        let v = set("s", "abc", true, SameSite::Lax).expect("cookie");
        assert!(v.to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; vestibule_session=xyz"),
        );
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(read(&h, "vestibule_session").as_deref(), Some("xyz"));
        assert_eq!(read(&h, "b").as_deref(), Some("2"));
        assert_eq!(read(&h, "c"), None);
    }
}
