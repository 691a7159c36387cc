//! Which pages may use a user's app WebSocket. Browsers send the session cookie with a
//! WebSocket handshake from any page of the same site (SameSite does not tell
//! `apps.example.org` from `evil.example.org`), and WebSockets are not bound by CORS, so the
//! handshake's `Origin` is the only sign of whose page opened it.

use http::{HeaderMap, Uri, header};

use crate::config::normalise_origin;

/// Whether a WebSocket handshake may go on: from a page of this server (its `Origin` names the
/// host the request was sent to), from one of `allowed`, or from a client that is not a browser
/// (no `Origin`; such a client holds the cookie or token itself).
pub fn websocket_allowed(headers: &HeaderMap, uri: &Uri, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // `null` (sandboxed frames, file: pages) and anything unreadable are nobody we know.
    let Some(origin) = origin.to_str().ok().and_then(normalise_origin) else {
        return false;
    };
    if allowed.contains(&origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let Some(host) = host else {
        return false;
    };
    // The scheme is not compared: behind a TLS-terminating balancer vestibule may not know it,
    // and one host and port serve one scheme. The port is, once defaults are dropped.
    let Some((scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    normalise_origin(&format!("{scheme}://{host}"))
        .is_some_and(|own| own.split_once("://").map(|(_, a)| a) == Some(origin_authority))
}

/// Whether a state-changing API call made with the session cookie comes from the portal's own
/// pages: the browser says so in `Sec-Fetch-Site` (`same-origin`, or `none` for one the user
/// typed), and `Origin`, when sent, is ours. A page of a sibling subdomain sends the cookie
/// along, and would otherwise need only the CSRF token, which an app on it may have read.
pub fn api_call_allowed(headers: &HeaderMap, uri: &Uri, allowed: &[String]) -> bool {
    // A listed origin is trusted even though the browser calls it another (same) site.
    let listed = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(normalise_origin)
        .is_some_and(|o| allowed.contains(&o));
    if listed {
        return true;
    }
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|v| matches!(v.as_bytes(), b"same-origin" | b"none"));
    site_ok && websocket_allowed(headers, uri, allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: Option<&str>, host: &str, allowed: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().expect("origin"));
        }
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        websocket_allowed(&h, &Uri::from_static("/app_proxy/x/ws"), &allowed)
    }

    #[test]
    fn api_calls_from_other_sites_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "portal.example.org".parse().expect("host"));
        let uri = Uri::from_static("/api/tokens");
        assert!(api_call_allowed(&h, &uri, &[]), "a script, not a browser");
        h.insert("sec-fetch-site", "same-site".parse().expect("v"));
        assert!(!api_call_allowed(&h, &uri, &[]));
        h.insert("sec-fetch-site", "same-origin".parse().expect("v"));
        assert!(api_call_allowed(&h, &uri, &[]));
        h.insert(header::ORIGIN, "https://x.example.org".parse().expect("v"));
        assert!(!api_call_allowed(&h, &uri, &[]));
        h.insert("sec-fetch-site", "same-site".parse().expect("v"));
        let listed = ["https://x.example.org".to_string()];
        assert!(api_call_allowed(&h, &uri, &listed), "a listed origin");
    }

    #[test]
    fn own_pages_and_listed_origins_only() {
        assert!(check(None, "portal.example.org", &[]), "not a browser");
        assert!(check(
            Some("https://portal.example.org"),
            "portal.example.org",
            &[]
        ));
        assert!(check(
            Some("https://Portal.example.org"),
            "portal.example.org:443",
            &[]
        ));
        assert!(check(Some("http://127.0.0.1:8080"), "127.0.0.1:8080", &[]));
        assert!(!check(Some("http://127.0.0.1:9090"), "127.0.0.1:8080", &[]));
        assert!(!check(
            Some("https://evil.example.org"),
            "portal.example.org",
            &[]
        ));
        assert!(!check(Some("null"), "portal.example.org", &[]));
        assert!(check(
            Some("https://dash.example.org"),
            "portal.example.org",
            &["https://dash.example.org"]
        ));
    }
}
