//! Behind a load balancer: whose `X-Forwarded-For`, `-Proto` and `-Host` are believed. Spring's
//! `server.forward-headers-strategy: native` (or `framework`), which ShinyProxy users already set,
//! trusts loopback and private-range peers; vestibule's `proxy.trusted-proxies` names the
//! networks instead. Without either, nobody's forwarding headers are believed.

use super::check_header::networks;
use super::convert::Fields;
use super::report::Report;
use ipnet::IpNet;

/// Loopback and the private ranges a load balancer in a VPC or a cluster sends from.
pub fn private_ranges() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// An IPv4 address seen as `::ffff:a.b.c.d` on a dual-stack socket is the IPv4 address.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `ip` is in `trusted`.
pub fn is_trusted_proxy(trusted: &[IpNet], ip: std::net::IpAddr) -> bool {
    let ip = canonical_ip(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

pub fn check_trusted_proxies(server: &Fields, proxy: &Fields, report: &mut Report) -> Vec<IpNet> {
    if let Some(nets) = networks(proxy, "trusted-proxies", report) {
        return nets;
    }
    let Some(strategy) = server.text("forward-headers-strategy", report) else {
        return Vec::new();
    };
    match strategy.trim().to_ascii_lowercase().as_str() {
        "native" | "framework" => private_ranges(),
        "none" => Vec::new(),
        _ => {
            if let Some((node, path)) = server.get("forward-headers-strategy") {
                report.error(
                    &node.at,
                    &path,
                    format!("'{strategy}' is not a strategy (native, framework or none)"),
                );
            }
            Vec::new()
        }
    }
}
