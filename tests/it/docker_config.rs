//! The Docker keys of `application.yml`: what vestibule takes from them, and what it says when
//! they are wrong.

use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{BackendKind, ConfigError, Loaded, PullPolicy, Severity, load_str};

fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    load_str(
        Path::new("app.yml"),
        yaml,
        &HashMap::<String, String>::new(),
    )
}

#[test]
fn docker_keys_are_read() {
    let loaded = load(
        "proxy:
  container-backend: docker
  realm-id: shiny-prod
  recover-running-proxies: true
  docker:
    url: unix:///var/run/docker.sock
    internal-networking: true
    port-range-start: 30000
    image-pull-policy: Never
    default-container-network: sp-net
  specs:
    - id: app
      container-image: openanalytics/app
      container-network: app-net
      container-network-connections: [extra-net]
      docker-user: '1000:1000'
      container-env-file: /etc/app.env
      docker-device-requests:
        - driver: nvidia
          count: -1
          capabilities: [gpu]
      container-dns: [10.0.0.53, 10.0.1.53]
      docker-runtime: nvidia
      docker-ipc: host
      docker-group-add: video
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &loaded.config.proxy;
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| w.severity != Severity::Error),
        "{:?}",
        loaded.warnings
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(p.container_backend, BackendKind::Docker);
    assert!(p.recover_running_proxies);
    assert_eq!(p.docker.realm_id, "shiny-prod");
    assert_eq!(p.docker.url.as_deref(), Some("unix:///var/run/docker.sock"));
    assert!(p.docker.internal_networking);
    assert_eq!(p.docker.port_range_start, 30000);
    assert_eq!(p.docker.image_pull_policy, PullPolicy::Never);
    assert_eq!(
        p.docker.default_container_network.as_deref(),
        Some("sp-net")
    );
    let d = &p.specs[0].docker;
    assert_eq!(d.network.as_deref(), Some("app-net"));
    assert_eq!(d.network_connections, ["extra-net"]);
    assert_eq!(d.user.as_deref(), Some("1000:1000"));
    assert_eq!(d.env_file.as_deref(), Some(Path::new("/etc/app.env")));
    assert_eq!(d.device_requests[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(d.device_requests[0].count, Some(-1));
    assert_eq!(d.device_requests[0].capabilities, ["gpu"]);
    assert_eq!(d.dns, ["10.0.0.53", "10.0.1.53"]);
    assert_eq!(d.runtime.as_deref(), Some("nvidia"));
    assert_eq!(d.ipc.as_deref(), Some("host"));
    assert_eq!(d.group_add, ["video"]);
}

#[test]
fn a_wrong_pull_policy_is_an_error_at_its_line() {
    let err = load(
        "proxy:
  docker:
    image-pull-policy: Sometimes
  specs:
    - id: app
      container-image: x
",
    )
    .expect_err("an error");
    let d = &err.diagnostics[0];
    assert_eq!(
        (d.line, d.key.as_str()),
        (3, "proxy.docker.image-pull-policy")
    );
    assert!(d.message.contains("IfNotPresent"), "{d}");
}

#[test]
fn docker_keys_are_warned_about_with_local_processes() {
    let loaded = load(
        "proxy:
  container-backend: process
  specs:
    - id: app
      container-cmd: [python3, app.py]
      container-network: app-net
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w = &loaded.warnings[0];
    assert_eq!(
        (w.line, w.key.as_str()),
        (6, "proxy.specs[0].container-network")
    );
    assert!(
        w.message.contains("does not apply to local processes"),
        "{w}"
    );
    assert!(loaded.config.proxy.specs[0].docker.network.is_none());
}
