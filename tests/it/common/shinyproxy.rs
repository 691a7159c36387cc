//! The marks ShinyProxy 3.2 (containerproxy 1.2) puts on the containers and pods it starts, with
//! values written the way it writes them, for tests of cutting over from a running ShinyProxy.
//! Keys: containerproxy's `model/runtime/runtimevalues/*Key.java`; which ones Kubernetes keeps as
//! labels rather than annotations: each key's `includeAsLabel`.

/// The keys Kubernetes gets as pod labels; every other mark is an annotation there. On Docker
/// all of them are labels.
pub const POD_LABEL_KEYS: [&str; 2] = [
    "openanalytics.eu/sp-instance",
    "openanalytics.eu/sp-proxied-app",
];

/// ShinyProxy's instance id: the SHA-1 of its config file (any value will do here).
const SP_INSTANCE: &str = "2b1a4cfe0e3c3f8f0f6f6d0bd7c1a6b5b3e0f6a1";

/// Every runtime value ShinyProxy writes on the first container of a proxy of `spec` for `user`;
/// `realm` only when its `proxy.realm-id` is set.
pub fn marks(proxy_id: &str, spec: &str, user: &str, realm: Option<&str>) -> Vec<(String, String)> {
    let created = now_ms().to_string();
    let mut marks = vec![
        ("sp-proxied-app", "true".to_string()),
        ("sp-proxy-id", proxy_id.to_string()),
        ("sp-target-id", proxy_id.to_string()),
        ("sp-instance", SP_INSTANCE.to_string()),
        ("sp-spec-id", spec.to_string()),
        ("sp-display-name", format!("App {spec}")),
        ("sp-user-id", user.to_string()),
        ("sp-user-groups", "scientists".to_string()),
        ("sp-proxy-created-timestamp", created),
        ("sp-cache-headers-mode", "EnforceNoCache".to_string()),
        ("sp-heartbeat-timeout", "60000".to_string()),
        ("sp-max-lifetime", "-1".to_string()),
        ("sp-public-path", format!("/app_proxy/{proxy_id}/")),
        (
            "sp-http-headers",
            format!(r#"{{"X-SP-UserId":"{user}","X-SP-UserGroups":"scientists"}}"#),
        ),
        ("sp-container-index", "0".to_string()),
        (
            "sp-port-mappings",
            r#"[{"name":"default","port":3838,"targetPath":""}]"#.to_string(),
        ),
    ];
    if let Some(realm) = realm {
        marks.push(("sp-realm-id", realm.to_string()));
    }
    marks
        .into_iter()
        .map(|(k, v)| (format!("openanalytics.eu/{k}"), v))
        .collect()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
