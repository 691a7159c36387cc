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
