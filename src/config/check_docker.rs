//! Docker-only settings: `proxy.docker.*` and the spec keys only the Docker backend reads
//! (`container-network`, `docker-user`, `docker-device-requests`, `container-env-file`, ...).

use super::convert::{self, Fields};
use super::node::Value;
use super::report::{Report, index};
use std::path::PathBuf;
use std::time::Duration;

/// `proxy.docker.image-pull-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    #[default]
    IfNotPresent,
    Always,
    Never,
}

/// `proxy.docker.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// `url`: a unix socket path, `unix://`, `tcp://` or `http://`; `None` means `DOCKER_HOST`
    /// or the local socket.
    pub url: Option<String>,
    /// true: reach containers by their address on their network (vestibule in a container);
    /// false: publish each container's port on 127.0.0.1.
    pub internal_networking: bool,
    pub port_range_start: u16,
    pub port_range_max: Option<u16>,
    pub image_pull_policy: PullPolicy,
    pub default_container_network: Option<String>,
    /// `proxy.realm-id`: tells this server's containers from those of other servers on the same
    /// Docker host, so recovery and cleanup never touch another server's instances.
    pub realm_id: String,
    /// `service-wait-time`: how long a Swarm service may take to get its task running.
    pub service_wait_time: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            url: None,
            internal_networking: false,
            port_range_start: 20000,
            port_range_max: None,
            image_pull_policy: PullPolicy::IfNotPresent,
            default_container_network: None,
            realm_id: "default".into(),
            service_wait_time: Duration::from_secs(60),
        }
    }
}

/// One `docker-device-requests` item (GPUs), as Docker's `--gpus` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRequest {
    pub driver: Option<String>,
    /// -1 means all devices.
    pub count: Option<i64>,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<String>,
}

/// The spec keys only the Docker backends read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerSpecSettings {
    pub network: Option<String>,
    pub network_connections: Vec<String>,
    pub user: Option<String>,
    pub device_requests: Vec<DeviceRequest>,
    /// Read at each launch, like `docker run --env-file`, so edits apply without a restart.
    pub env_file: Option<PathBuf>,
    /// `docker-swarm-secrets`: Swarm secrets mounted into the service's container.
    pub swarm_secrets: Vec<SwarmSecret>,
    /// `docker-swarm-constraints`: placement constraints, e.g. `node.labels.gpu == true`.
    pub swarm_constraints: Vec<String>,
    /// `container-dns`: DNS servers of the container instead of the engine's.
    pub dns: Vec<String>,
    /// `docker-runtime`: the engine's runtime to run it with (`nvidia`, `runsc`).
    pub runtime: Option<String>,
    /// `docker-ipc`: the IPC namespace mode (`private`, `shareable`, `host`).
    pub ipc: Option<String>,
    /// `docker-group-add`: more groups for the container's user, by name or id.
    pub group_add: Vec<String>,
}

/// One `docker-swarm-secrets` item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwarmSecret {
    pub name: String,
    /// The file name under /run/secrets; the secret's name when unset.
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// File mode, written in octal (`0400`).
    pub mode: Option<u32>,
}

pub fn check_docker_settings(proxy: &Fields, report: &mut Report) -> DockerSettings {
    let f = Fields::of(proxy.get("docker").map(|(n, _)| n), "proxy.docker", report);
    let defaults = DockerSettings::default();
    let image_pull_policy = match f.get("image-pull-policy") {
        Some((n, p)) => {
            match convert::choice(n, &p, &["IfNotPresent", "Always", "Never"], report) {
                Some("Always") => PullPolicy::Always,
                Some("Never") => PullPolicy::Never,
                _ => PullPolicy::IfNotPresent,
            }
        }
        None => PullPolicy::IfNotPresent,
    };
    let settings = DockerSettings {
        url: f.text("url", report).filter(|u| !u.trim().is_empty()),
        internal_networking: f.boolean("internal-networking", report).unwrap_or(false),
        port_range_start: f
            .get("port-range-start")
            .and_then(|(n, p)| convert::port(n, &p, false, report))
            .unwrap_or(defaults.port_range_start),
        port_range_max: f
            .get("port-range-max")
            .and_then(|(n, p)| convert::port(n, &p, false, report)),
        image_pull_policy,
        default_container_network: f.text("default-container-network", report),
        realm_id: proxy
            .text("realm-id", report)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(defaults.realm_id),
        service_wait_time: match f.int("service-wait-time", "milliseconds", report) {
            Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => defaults.service_wait_time,
        },
    };
    if let (Some(max), Some((n, p))) = (settings.port_range_max, f.get("port-range-max"))
        && max < settings.port_range_start
    {
        report.error(
            &n.at,
            &p,
            format!(
                "port-range-max ({max}) is below port-range-start ({}), so no port is left",
                settings.port_range_start
            ),
        );
    }
    settings
}

const SPEC_KEYS: [&str; 11] = [
    "container-network",
    "container-network-connections",
    "docker-user",
    "docker-device-requests",
    "container-env-file",
    "docker-swarm-secrets",
    "docker-swarm-constraints",
    "container-dns",
    "docker-runtime",
    "docker-ipc",
    "docker-group-add",
];

pub fn check_docker_spec(f: &Fields, process: bool, report: &mut Report) -> DockerSpecSettings {
    if process {
        for key in SPEC_KEYS {
            if let Some((n, p)) = f.get(key) {
                report.warn(
                    &n.at,
                    &p,
                    format!("{key} does not apply to local processes (container-backend: process) and is ignored"),
                );
            }
        }
        return DockerSpecSettings::default();
    }
    DockerSpecSettings {
        network: f.text("container-network", report),
        network_connections: f
            .get("container-network-connections")
            .and_then(|(n, p)| convert::plain_list(n, &p, report))
            .unwrap_or_default(),
        user: f.text("docker-user", report),
        device_requests: device_requests(f, report),
        env_file: f.text("container-env-file", report).map(PathBuf::from),
        swarm_secrets: swarm_secrets(f, report),
        swarm_constraints: f
            .get("docker-swarm-constraints")
            .and_then(|(n, p)| convert::plain_list(n, &p, report))
            .unwrap_or_default(),
        dns: f
            .get("container-dns")
            .and_then(|(n, p)| convert::plain_list(n, &p, report))
            .unwrap_or_default(),
        runtime: f.text("docker-runtime", report),
        ipc: f.text("docker-ipc", report),
        group_add: f
            .get("docker-group-add")
            .and_then(|(n, p)| convert::plain_list(n, &p, report))
            .unwrap_or_default(),
    }
}

fn device_requests(f: &Fields, report: &mut Report) -> Vec<DeviceRequest> {
    let mut requests = Vec::new();
    for (item, p) in entries(
        f,
        "docker-device-requests",
        "device requests ('- driver: nvidia ...')",
        report,
    ) {
        let d = Fields::of(Some(item), &p, report);
        let mut capabilities = Vec::new();
        if let Some((n, cp)) = d.get("capabilities") {
            // Docker's API nests capability sets ([[gpu]]); configs write one flat list.
            flatten_texts(n, &cp, &mut capabilities, report);
        }
        requests.push(DeviceRequest {
            driver: d.text("driver", report),
            count: d.int("count", "a number of devices (-1 for all)", report),
            device_ids: d
                .get("device-ids")
                .and_then(|(n, p)| convert::plain_list(n, &p, report))
                .unwrap_or_default(),
            capabilities,
        });
    }
    requests
}

/// The items of a list-valued key, each with its path; a value that is not a list is reported.
fn entries<'a>(
    f: &Fields<'a>,
    key: &str,
    what: &str,
    report: &mut Report,
) -> Vec<(&'a super::node::Node, String)> {
    let Some((node, path)) = f.get(key) else {
        return Vec::new();
    };
    let Value::Seq(items) = &node.value else {
        report.error(
            &node.at,
            &path,
            format!("expected a list of {what}, found {}", node.describe()),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (item, index(&path, i)))
        .collect()
}

fn flatten_texts(node: &super::node::Node, path: &str, out: &mut Vec<String>, report: &mut Report) {
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_texts(item, &index(path, i), out, report);
            }
        }
        _ => {
            if let Some(t) = convert::text(node, path, report) {
                out.push(t);
            }
        }
    }
}

fn swarm_secrets(f: &Fields, report: &mut Report) -> Vec<SwarmSecret> {
    let mut secrets = Vec::new();
    for (item, p) in entries(f, "docker-swarm-secrets", "secrets ('- name: ...')", report) {
        // A bare name is the short form.
        if let Value::Str(name) = &item.value {
            secrets.push(SwarmSecret {
                name: name.clone(),
                ..Default::default()
            });
            continue;
        }
        let s = Fields::of(Some(item), &p, report);
        let Some(name) = s.text("name", report) else {
            report.error(&item.at, &p, "a swarm secret needs a 'name'");
            continue;
        };
        let mode = s.get("mode").and_then(|(n, mp)| {
            let text = convert::text(n, &mp, report)?;
            u32::from_str_radix(text.trim(), 8)
                .map_err(|_| {
                    report.error(
                        &n.at,
                        &mp,
                        format!("a file mode is octal, e.g. 0400; found '{text}'"),
                    )
                })
                .ok()
        });
        secrets.push(SwarmSecret {
            name,
            target: s.text("target", report),
            uid: s.text("uid", report),
            gid: s.text("gid", report),
            mode,
        });
    }
    secrets
}
