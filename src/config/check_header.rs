//! `proxy.custom-header`: the headers a trusted login proxy names the user in, and
//! (vestibule's own key) the networks that proxy's requests come from.

use super::auth_model::{CustomHeaderConfig, default_trusted_networks};
use super::convert::Fields;
use super::report::Report;
use ipnet::IpNet;
use std::net::IpAddr;

pub fn check_custom_header(proxy: &Fields, report: &mut Report) -> CustomHeaderConfig {
    let section = Fields::of(
        proxy.get("custom-header").map(|(n, _)| n),
        "proxy.custom-header",
        report,
    );
    let defaults = CustomHeaderConfig::default();
    CustomHeaderConfig {
        username_header: header_name(&section, "username-header-name", report)
            .unwrap_or(defaults.username_header),
        groups_header: header_name(&section, "groups-header-name", report),
        trusted_networks: networks(&section, "trusted-networks", report)
            .unwrap_or_else(default_trusted_networks),
    }
}

fn header_name(f: &Fields, key: &str, report: &mut Report) -> Option<String> {
    let (node, path) = f.get(key)?;
    let name = f.text(key, report)?;
    if http::HeaderName::from_bytes(name.trim().as_bytes()).is_err() {
        report.error(
            &node.at,
            &path,
            format!("'{name}' is not a valid HTTP header name"),
        );
        return None;
    }
    Some(name.trim().to_string())
}

/// CIDR networks (`10.0.0.0/8`) or single addresses, under `key`.
pub fn networks(f: &Fields, key: &str, report: &mut Report) -> Option<Vec<IpNet>> {
    let (node, path) = f.get(key)?;
    let written = f.text_list(key, report)?;
    let mut nets = Vec::new();
    for w in written {
        let parsed = w
            .parse::<IpNet>()
            .or_else(|_| w.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => nets.push(n),
            Err(_) => report.error(
                &node.at,
                &path,
                format!("'{w}' is not a network such as 10.0.0.0/8 or an address such as 10.0.0.5"),
            ),
        }
    }
    Some(nets)
}
