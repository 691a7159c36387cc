//! Header hygiene between the browser and an app.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Identity;
use crate::auth::csrf::LOGIN_COOKIE;
use crate::auth::session::{APP_HOST_COOKIE, COOKIE_NAME};

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones proxies still see). They describe
/// one connection and must not be forwarded to the next.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the request asks to switch protocols (a WebSocket handshake).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the hop-by-hop headers and every header that `Connection` names (RFC 9110 §7.6.1).
/// For an upgrade, `Connection: upgrade` and `Upgrade` are put back: they are what asks the next
/// hop to switch protocols.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !headers.contains_key(header::CONNECTION) && !headers.contains_key(header::UPGRADE) {
        // The common case: only the fixed list can be present, and usually none of it is.
        for name in HOP_BY_HOP.iter() {
            if headers.contains_key(name) {
                headers.remove(name);
            }
        }
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if keep_upgrade && let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// What a route adds to every request for its app: the identity headers (unless the app's
/// `add-default-http-headers` is false) and its `http-headers`, filled in for the instance's user.
#[derive(Debug, Clone, Default)]
pub struct AppHeaders {
    pub identity: bool,
    pub extra: Vec<(HeaderName, HeaderValue)>,
}

impl AppHeaders {
    /// Adds headers the backend gives an instance; one with a name already set replaces it,
    /// as a client's copy is replaced.
    pub fn add(&mut self, headers: Vec<(String, String)>) {
        for (name, value) in headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(n), Ok(v)) => {
                    self.extra.retain(|(old, _)| *old != n);
                    self.extra.push((n, v));
                }
                _ => {
                    tracing::warn!(header = %name, "an instance header is not a valid header; not sent")
                }
            }
        }
    }

    pub fn for_instance(
        spec: &crate::config::AppSpec,
        user: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let extra = spec
            .http_headers
            .iter()
            .filter_map(|(name, value)| {
                let value = match crate::config::template::fill(value, user, env) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(app = %spec.id, header = %name, error = %e, "http-headers value could not be filled in; not sent");
                        return None;
                    }
                };
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    (Ok(n), Ok(v)) => Some((n, v)),
                    _ => {
                        tracing::warn!(app = %spec.id, header = %name, "http-headers value is not a valid header once filled in; not sent");
                        None
                    }
                }
            })
            .collect();
        Self {
            identity: spec.add_default_http_headers,
            extra,
        }
    }

    /// Whether a header the client sent could be read by the app as one this route sets.
    /// CGI-style servers (R's httpuv, PHP, WSGI) map `-` and `_` alike, so `X_SP_UserId`
    /// lands where `X-SP-UserId` does; header names are already lower case in `HeaderMap`.
    pub fn shadows(&self, name: &HeaderName) -> bool {
        let dashed = cgi_dashed(name.as_str());
        dashed.starts_with("x-sp-")
            || self
                .extra
                .iter()
                .any(|(ours, _)| cgi_dashed(ours.as_str()) == dashed)
    }

    /// The first client header spelled with an underscore that an app would read as one of
    /// ours. Such a request is a forgery attempt, not a mistake, so it is refused outright
    /// rather than quietly cleaned.
    pub fn forged<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderName> {
        headers
            .keys()
            .find(|k| k.as_str().contains('_') && self.shadows(k))
    }

    /// Sets the headers on a request to the app. Copies of the identity headers the client sent,
    /// in any spelling an app would read as ours, are removed first, so a user cannot claim to be
    /// someone else; the app's own headers replace any the client sent under the same name.
    pub fn apply(&self, headers: &mut HeaderMap, who: &Identity) {
        if headers.keys().any(|k| self.shadows(k)) {
            let spoofed: Vec<HeaderName> = headers
                .keys()
                .filter(|k| self.shadows(k))
                .cloned()
                .collect();
            for name in spoofed {
                headers.remove(name);
            }
        }
        if self.identity {
            if let Ok(v) = HeaderValue::from_str(&who.user) {
                headers.insert(HeaderName::from_static("x-sp-userid"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&who.groups.join(",")) {
                headers.insert(HeaderName::from_static("x-sp-usergroups"), v);
            }
        }
        for (name, value) in &self.extra {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A header name as a CGI-style server sees it, `_` and `-` alike (the name is lower case).
fn cgi_dashed(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        std::borrow::Cow::Owned(name.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// X-Forwarded-For, -Proto and -Host. `trusted_chain` is what web::forwarded kept of the
/// client's chain (the trusted hops and the peer); without one the client's own copy, which
/// anyone can write, is replaced by its address.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    trusted_chain: Option<&str>,
    client_ip: std::net::IpAddr,
    scheme: &str,
) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let value = match trusted_chain {
        Some(chain) => HeaderValue::from_str(chain),
        None => HeaderValue::from_str(&client_ip.to_string()),
    };
    match value {
        Ok(v) => {
            headers.insert(xff, v);
        }
        Err(_) => {
            headers.remove(xff);
        }
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
}

/// vestibule's own cookies are none of the app's business: an app that could read the session
/// cookie could act as its user elsewhere on the portal.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let ours = |v: &HeaderValue| {
        v.as_bytes()
            .windows(b"vestibule_".len())
            .any(|w| w == b"vestibule_")
    };
    if !headers.get_all(header::COOKIE).iter().any(ours) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    let mut kept = Vec::new();
    for v in &values {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            let name = pair.split('=').next().unwrap_or("").trim();
            let ours = name == COOKIE_NAME
                || name == APP_HOST_COOKIE
                || name == LOGIN_COOKIE
                || name.starts_with(super::pool::AFFINITY_COOKIE_PREFIX);
            if !name.is_empty() && !ours {
                kept.push(pair.trim().to_string());
            }
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// An app may not set vestibule's cookies: a `Set-Cookie: vestibule_session=…` from app code
/// would log the browser in as whoever the app's owner chose (session fixation), or log it out.
pub fn strip_own_set_cookies(headers: &mut HeaderMap) {
    let ours = |v: &HeaderValue| {
        let name = v
            .as_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        name == COOKIE_NAME.as_bytes()
            || name == APP_HOST_COOKIE.as_bytes()
            || name == LOGIN_COOKIE.as_bytes()
    };
    if !headers.get_all(header::SET_COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn headers_named_in_connection_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("accept", "a"),
            ("accept", "b"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h.get_all("accept").iter().count(), 2, "multi-valued kept");
    }

    #[test]
    fn upgrade_survives_for_websockets() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn spoofed_identity_is_replaced() {
        let mut h = map(&[("X-SP-UserId", "admin"), ("x-sp-usergroups", "admins")]);
        let who = Identity {
            user: "bob".into(),
            groups: vec!["g1".into(), "g2".into()],
            is_admin: false,
        };
        let defaults = AppHeaders {
            identity: true,
            extra: Vec::new(),
        };
        defaults.apply(&mut h, &who);
        assert_eq!(h.get_all("x-sp-userid").iter().count(), 1);
        assert_eq!(h["x-sp-userid"], "bob");
        assert_eq!(h["x-sp-usergroups"], "g1,g2");

        // Without the defaults, a client's copies are still removed, not passed on.
        let mut h = map(&[("X-SP-UserId", "admin")]);
        AppHeaders::default().apply(&mut h, &who);
        assert!(h.get("x-sp-userid").is_none());
    }

    #[test]
    fn underscore_spellings_of_our_headers_are_caught() {
        let route = AppHeaders {
            identity: true,
            extra: vec![(
                HeaderName::from_static("x-remote-user"),
                HeaderValue::from_static("bob"),
            )],
        };
        for forged in [
            "X_SP_UserId",
            "x_sp-usergroups",
            "X-SP_Anything",
            "x_remote_user",
        ] {
            let h = map(&[(forged, "carol")]);
            assert!(route.forged(&h).is_some(), "{forged} is refused");
            let mut h = map(&[(forged, "carol")]);
            let who = Identity {
                user: "bob".into(),
                groups: Vec::new(),
                is_admin: false,
            };
            route.apply(&mut h, &who);
            assert!(
                h.keys().all(|k| !k.as_str().contains('_')),
                "{forged} never reaches the app"
            );
        }
        let h = map(&[("x_other", "1"), ("x-sp-userid", "carol")]);
        assert!(
            route.forged(&h).is_none(),
            "dashed copies are replaced, not refused"
        );
    }

    #[test]
    fn session_cookie_is_not_forwarded() {
        let mut h = map(&[("cookie", "vestibule_session=abc; _xsrf=1; st=2")]);
        strip_own_cookies(&mut h);
        assert_eq!(h["cookie"], "_xsrf=1; st=2");
        let mut h = map(&[("cookie", "vestibule_session=abc")]);
        strip_own_cookies(&mut h);
        assert!(h.get("cookie").is_none());
    }

    #[test]
    fn apps_cannot_set_our_cookies() {
        let mut h = map(&[
            ("set-cookie", "vestibule_session=planted; Path=/"),
            ("set-cookie", "_xsrf=1; Path=/"),
            ("set-cookie", " vestibule_session =x"),
            ("set-cookie", "st=2"),
        ]);
        strip_own_set_cookies(&mut h);
        let left: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(left, ["_xsrf=1; Path=/", "st=2"]);
    }

    #[test]
    fn forwarded_for_is_the_resolved_chain() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("host", "example.org:8080")]);
        let ip = "127.0.0.1".parse().expect("ip");
        set_forwarded(&mut h, Some("10.0.0.1, 127.0.0.1"), ip, "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        set_forwarded(&mut h, None, ip, "http");
        assert_eq!(
            h["x-forwarded-for"], "127.0.0.1",
            "an untrusted chain is replaced"
        );
        assert_eq!(h["x-forwarded-host"], "example.org:8080");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
}
