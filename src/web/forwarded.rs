//! Who the client is behind a load balancer. `X-Forwarded-For`, `-Proto` and `-Host` are believed
//! only from the trusted proxies the config names (`config::ServerConfig::trusted_proxies`):
//! anyone else could write those headers themselves.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

use crate::config::{canonical_ip as canonical, is_trusted_proxy as trusts};

/// What the request says about its client, once the trusted hops are peeled off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// `https` or `http`, when a trusted proxy said so.
    pub proto: Option<String>,
    /// The host the client asked for, when a trusted proxy said so.
    pub host: Option<String>,
    /// The `X-Forwarded-For` chain to pass on to the app when a trusted proxy sent one: its
    /// chain and then the peer. `None` when the client's own copy proves nothing, so the app
    /// gets the peer's address alone (built only for proxied requests).
    pub forwarded_for: Option<String>,
}

/// The client of a request that arrived from `peer`.
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
    let peer = canonical(peer);
    if !trusts(trusted, peer) {
        return Client {
            ip: peer,
            proto: None,
            host: None,
            forwarded_for: None,
        };
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    // From the nearest hop outwards, the first address not of a trusted proxy is the client.
    // Anything left of it was written by the client and proves nothing.
    let mut ip = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(addr) if trusts(trusted, addr) => ip = addr,
            Some(addr) => {
                ip = addr;
                break;
            }
            None => break,
        }
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Client {
        ip,
        proto: first("x-forwarded-proto").map(|p| p.to_ascii_lowercase()),
        host: first("x-forwarded-host"),
        forwarded_for: Some(
            hops.iter()
                .map(|h| h.to_string())
                .chain(std::iter::once(peer.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    hop.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = client(ip("203.0.113.9"), &h, &crate::config::private_ranges());
        assert_eq!(c.ip, ip("203.0.113.9"));
        assert_eq!(c.proto, None);
        assert_eq!(c.forwarded_for, None, "the client's own chain is dropped");
        let nobody = client(ip("10.0.0.5"), &h, &[]);
        assert_eq!(
            nobody.ip,
            ip("10.0.0.5"),
            "no trusted proxies: headers ignored"
        );
    }

    #[test]
    fn behind_a_balancer_the_client_is_the_first_untrusted_hop_from_the_right() {
        // The client forged a first entry; the balancer appended the real address.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.3.4"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "apps.example.org"),
        ]);
        let c = client(ip("10.0.1.2"), &h, &crate::config::private_ranges());
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(c.proto.as_deref(), Some("https"));
        assert_eq!(c.host.as_deref(), Some("apps.example.org"));
        assert_eq!(
            c.forwarded_for.as_deref(),
            Some("6.6.6.6, 198.51.100.7, 10.0.3.4, 10.0.1.2")
        );
    }

    #[test]
    fn an_explicit_list_replaces_the_private_ranges() {
        let only_lb = ["192.0.2.10/32".parse().expect("net")];
        let h = headers(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(client(ip("192.0.2.10"), &h, &only_lb).ip, ip("10.9.9.9"));
        assert_eq!(client(ip("10.0.0.1"), &h, &only_lb).ip, ip("10.0.0.1"));
    }

    #[test]
    fn ports_brackets_mapped_addresses_and_garbage() {
        let t = crate::config::private_ranges();
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(client(ip("::ffff:10.0.0.1"), &h, &t).ip, ip("2001:db8::1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7:5000")]);
        assert_eq!(client(ip("127.0.0.1"), &h, &t).ip, ip("198.51.100.7"));
        // An entry that is no address stops the walk at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "unknown, 10.0.0.8")]);
        assert_eq!(client(ip("127.0.0.1"), &h, &t).ip, ip("10.0.0.8"));
    }
}
