//! `authentication: customHeader` (also `header`): a proxy in front of vestibule (oauth2-proxy,
//! an ALB with OIDC, a corporate SSO gateway) has logged the user in and names them in a
//! request header. Anyone who can reach vestibule directly could send that header too, so it
//! is believed only from the configured networks, and every other request is refused.

use http::HeaderMap;
use std::net::IpAddr;

use super::Identity;
use crate::config::{Config, CustomHeaderConfig};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// From an address outside `trusted-networks`: maybe someone spoofing the header.
    #[error(
        "vestibule only accepts requests through its login proxy; {0} is not a trusted address"
    )]
    Untrusted(IpAddr),
    /// From the login proxy, but without a user.
    #[error("the login proxy sent no user name (header {0})")]
    NoUser(String),
}

/// Who the trusted proxy says is asking.
pub fn identity(
    config: &Config,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Identity, HeaderRefusal> {
    let settings: &CustomHeaderConfig = &config.proxy.custom_header;
    if !trusted(settings, client) {
        return Err(HeaderRefusal::Untrusted(client));
    }
    let user = headers
        .get(settings.username_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| HeaderRefusal::NoUser(settings.username_header.clone()))?;
    let groups: Vec<String> = match &settings.groups_header {
        Some(name) => headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
        None => Vec::new(),
    };
    Ok(Identity {
        is_admin: config.proxy.is_admin(user, &groups),
        user: user.to_string(),
        groups,
    })
}

fn trusted(settings: &CustomHeaderConfig, client: IpAddr) -> bool {
    // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
        v4 => v4,
    };
    settings
        .trusted_networks
        .iter()
        .any(|net| net.contains(&client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::embedded_default;

    fn config() -> Config {
        let mut c = embedded_default(std::path::Path::new("x"), String::new());
        c.proxy.custom_header.username_header = "X-User".into();
        c.proxy.custom_header.groups_header = Some("X-Groups".into());
        c
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn identity_only_from_trusted_networks() {
        let c = config();
        let h = headers(&[
            ("x-user", "alice"),
            ("x-groups", "a, b"),
            ("x-groups", "admins"),
        ]);
        let id = identity(&c, &h, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, ["a", "b", "admins"]);
        assert!(id.is_admin);
        assert!(identity(&c, &h, "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(
            identity(&c, &h, "10.1.2.3".parse().unwrap()),
            Err(HeaderRefusal::Untrusted("10.1.2.3".parse().unwrap()))
        );
        assert!(matches!(
            identity(&c, &headers(&[("x-user", " ")]), "::1".parse().unwrap()),
            Err(HeaderRefusal::NoUser(_))
        ));
    }
}
