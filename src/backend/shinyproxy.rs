//! ShinyProxy 3.x's marks on the containers and pods it starts, read so that a vestibule
//! replacing a running ShinyProxy (`recover-running-proxies: true`) adopts its users' apps instead
//! of leaving them orphaned.
//!
//! containerproxy 1.2 writes each of a proxy's runtime values on its containers under
//! `openanalytics.eu/sp-*` keys. Docker has no annotations, so there every key is a label; on
//! Kubernetes only `sp-instance` and `sp-proxied-app` are labels and the rest are annotations.
//! Either way the keys and values are the same, so one map of both is read here.

use std::collections::HashMap;

/// `"true"` on every container ShinyProxy starts for a proxy; what its recovery selects on.
pub const PROXIED_APP: &str = "openanalytics.eu/sp-proxied-app";
/// The proxy's id (a UUID), which ShinyProxy serves at `/app_proxy/<id>/`.
pub const PROXY_ID: &str = "openanalytics.eu/sp-proxy-id";
pub const USER_ID: &str = "openanalytics.eu/sp-user-id";
pub const SPEC_ID: &str = "openanalytics.eu/sp-spec-id";
/// Only set when ShinyProxy has a `proxy.realm-id`.
pub const REALM_ID: &str = "openanalytics.eu/sp-realm-id";
/// Which of the spec's `container-specs` this container runs (0 for the first).
pub const CONTAINER_INDEX: &str = "openanalytics.eu/sp-container-index";
/// Milliseconds since the epoch, written as a string.
pub const CREATED_MS: &str = "openanalytics.eu/sp-proxy-created-timestamp";
/// JSON: `[{"name":"default","port":3838,"targetPath":...}]`.
pub const PORT_MAPPINGS: &str = "openanalytics.eu/sp-port-mappings";

/// The mapping ShinyProxy serves at the proxy's root; others get a sub-path vestibule lacks.
const DEFAULT_MAPPING: &str = "default";
/// ShinyProxy's port when a spec names none.
const DEFAULT_PORT: u16 = 3838;
/// What vestibule's realm is when `proxy.realm-id` is unset, and so what a container without
/// ShinyProxy's realm mark belongs to.
const NO_REALM: &str = "default";

/// A user's app that ShinyProxy started, as its marks describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpApp {
    pub proxy_id: String,
    pub spec_id: String,
    pub user: String,
    pub created_unix_ms: u64,
    /// The container port the app listens on.
    pub port: u16,
}

impl SpApp {
    /// The instance lifecycle adopts: under ShinyProxy's id, for its owner.
    pub fn recovered(self, address: std::net::SocketAddr) -> super::Recovered {
        super::Recovered {
            instance_id: self.proxy_id,
            spec_id: self.spec_id,
            user: self.user,
            address,
            // Never equal to a fingerprint of vestibule's: lifecycle keeps the instance and
            // says so.
            spec_hash: String::new(),
            created_unix_ms: self.created_unix_ms,
        }
    }
}

/// Reads a container's (or pod's) marks. `Err` says why it is not a user's app of this realm
/// that vestibule can take over; such a container is left exactly as it is.
pub fn read(marks: &HashMap<String, String>, realm: &str) -> Result<SpApp, &'static str> {
    if marks.get(PROXIED_APP).map(String::as_str) != Some("true") {
        return Err("not started by ShinyProxy for an app");
    }
    // A seat holds no user's work until ShinyProxy hands it out, and it does not hand it out now.
    if marks.contains_key(crate::backend::SP_DELEGATE_LABEL) {
        return Err("a ShinyProxy seat (pre-initialized container)");
    }
    if marks.get(REALM_ID).map_or(NO_REALM, String::as_str) != realm {
        return Err("of another realm");
    }
    // The first container carries the proxy; the others go when it is stopped.
    if marks.get(CONTAINER_INDEX).map_or("0", String::as_str) != "0" {
        return Err("a further container of a multi-container app");
    }
    let proxy_id = marks
        .get(PROXY_ID)
        .filter(|id| is_route_safe(id))
        .ok_or("no usable ShinyProxy proxy id")?;
    let spec_id = non_empty(marks, SPEC_ID).ok_or("no ShinyProxy spec id")?;
    let user = non_empty(marks, USER_ID).ok_or("no ShinyProxy user id")?;
    Ok(SpApp {
        proxy_id: proxy_id.clone(),
        spec_id,
        user,
        created_unix_ms: marks
            .get(CREATED_MS)
            .and_then(|ms| ms.trim().parse().ok())
            .unwrap_or(0),
        port: marks
            .get(PORT_MAPPINGS)
            .and_then(|json| default_port(json))
            .unwrap_or(DEFAULT_PORT),
    })
}

fn non_empty(marks: &HashMap<String, String>, key: &str) -> Option<String> {
    marks.get(key).filter(|v| !v.trim().is_empty()).cloned()
}

/// The proxy id becomes the instance id, which sits in URL paths, store keys and log lines:
/// ShinyProxy's are UUIDs, anything else on a shared engine is not trusted there.
fn is_route_safe(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[derive(serde::Deserialize)]
struct PortMappingEntry {
    name: Option<String>,
    port: Option<u16>,
}

/// The port of the `default` mapping, else of the first one.
fn default_port(json: &str) -> Option<u16> {
    let entries: Vec<PortMappingEntry> = serde_json::from_str(json).ok()?;
    let is_default = |e: &&PortMappingEntry| {
        e.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(DEFAULT_MAPPING))
    };
    let entry = entries
        .iter()
        .find(is_default)
        .or_else(|| entries.first())?;
    entry.port
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels ShinyProxy 3.2 puts on a Docker container (values as it writes them).
    fn shinyproxy_labels() -> HashMap<String, String> {
        [
            (PROXIED_APP, "true"),
            (PROXY_ID, "0b3c8f4e-6a7d-4a43-9c55-1f0e2d3c4b5a"),
            (USER_ID, "alice"),
            (SPEC_ID, "01_hello"),
            (CONTAINER_INDEX, "0"),
            (CREATED_MS, "1718000000123"),
            (
                PORT_MAPPINGS,
                r#"[{"name":"default","port":8080,"targetPath":null}]"#,
            ),
            ("openanalytics.eu/sp-instance", "f00d"),
            ("openanalytics.eu/sp-user-groups", "scientists"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_users_app_is_read_with_its_owner_spec_port_and_age() {
        let app = read(&shinyproxy_labels(), "default").expect("adoptable");
        assert_eq!(app.proxy_id, "0b3c8f4e-6a7d-4a43-9c55-1f0e2d3c4b5a");
        assert_eq!(app.user, "alice");
        assert_eq!(app.spec_id, "01_hello");
        assert_eq!(app.port, 8080);
        assert_eq!(app.created_unix_ms, 1_718_000_000_123);
    }

    #[test]
    fn the_realm_mark_must_match_and_its_absence_is_the_default_realm() {
        let mut labels = shinyproxy_labels();
        assert!(read(&labels, "team-a").is_err());
        labels.insert(REALM_ID.into(), "team-a".into());
        assert!(read(&labels, "team-a").is_ok());
        assert!(read(&labels, "default").is_err());
    }

    #[test]
    fn seats_further_containers_and_odd_ids_are_left_alone() {
        let mut seat = shinyproxy_labels();
        seat.insert(crate::backend::SP_DELEGATE_LABEL.into(), "true".into());
        assert!(read(&seat, "default").is_err());
        let mut second = shinyproxy_labels();
        second.insert(CONTAINER_INDEX.into(), "1".into());
        assert!(read(&second, "default").is_err());
        let mut odd = shinyproxy_labels();
        odd.insert(PROXY_ID.into(), "../admin".into());
        assert!(read(&odd, "default").is_err());
        let mut nobody = shinyproxy_labels();
        nobody.remove(USER_ID);
        assert!(read(&nobody, "default").is_err());
    }

    #[test]
    fn without_port_mappings_the_port_is_shinyproxys_default() {
        let mut labels = shinyproxy_labels();
        labels.remove(PORT_MAPPINGS);
        assert_eq!(read(&labels, "default").map(|a| a.port), Ok(3838));
        labels.insert(
            PORT_MAPPINGS.into(),
            r#"[{"name":"other","port":9000},{"name":"Default","port":7000}]"#.into(),
        );
        assert_eq!(read(&labels, "default").map(|a| a.port), Ok(7000));
    }
}
