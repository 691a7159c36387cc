//! From an app spec and a launch request to Docker's container description.

use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, PortBinding};
use std::collections::{BTreeMap, HashMap};

use crate::backend::LaunchRequest;
use crate::config::DockerSettings;

/// Everything needed to create one container.
pub struct ContainerPlan {
    pub body: ContainerCreateBody,
    /// Networks to connect after creation (`container-network-connections`).
    pub extra_networks: Vec<String>,
    pub network: Option<String>,
}

pub fn plan(
    req: &LaunchRequest,
    settings: &DockerSettings,
    host_port: Option<u16>,
) -> Result<ContainerPlan, String> {
    let spec = &req.spec;
    let image = spec
        .container_image
        .clone()
        .ok_or_else(|| format!("app '{}' has no container-image", spec.id))?;
    let user = req.owner.clone();

    let env = environment(req)?;

    let binds = spec
        .container_volumes
        .iter()
        .map(|v| super::volumes::resolve(v, &user, &req.env))
        .collect::<Result<Vec<_>, _>>()?;

    let port_key = format!("{}/tcp", spec.port);
    let port_bindings = host_port.map(|p| {
        HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(p.to_string()),
            }]),
        )])
    });
    let network = spec
        .docker
        .network
        .clone()
        .or_else(|| settings.default_container_network.clone());
    let c = &spec.container;
    let host_config = HostConfig {
        binds: Some(binds),
        port_bindings,
        network_mode: network.clone(),
        memory: c.memory_limit.as_ref().map(|m| m.bytes as i64),
        memory_reservation: c.memory_request.as_ref().map(|m| m.bytes as i64),
        nano_cpus: c.cpu_limit.as_ref().map(|q| q.millicpus as i64 * 1_000_000),
        // Docker's relative weight: 1024 is one CPU's worth.
        cpu_shares: c
            .cpu_request
            .as_ref()
            .map(|q| q.millicpus as i64 * 1024 / 1000),
        privileged: Some(c.privileged),
        device_requests: device_requests(req),
        // A tiny init forwards SIGTERM to the app, which as PID 1 would ignore it.
        init: Some(true),
        dns: (!spec.docker.dns.is_empty()).then(|| spec.docker.dns.clone()),
        runtime: spec.docker.runtime.clone(),
        ipc_mode: spec.docker.ipc.clone(),
        group_add: (!spec.docker.group_add.is_empty()).then(|| spec.docker.group_add.clone()),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: (!spec.container_cmd.is_empty()).then(|| spec.container_cmd.clone()),
        env: Some(env),
        user: spec.docker.user.clone(),
        labels: Some(super::labels::for_instance(req, &settings.realm_id)),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        ..Default::default()
    };
    Ok(ContainerPlan {
        body,
        extra_networks: spec.docker.network_connections.clone(),
        network,
    })
}

/// `container-env-file`, then the request's environment (identity and `container-env`), as
/// `NAME=value` items.
pub(crate) fn environment(req: &LaunchRequest) -> Result<Vec<String>, String> {
    let mut env = match &req.spec.docker.env_file {
        Some(path) => read_env_file(path)?,
        None => BTreeMap::new(),
    };
    env.extend(req.env.clone());
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn device_requests(req: &LaunchRequest) -> Option<Vec<DeviceRequest>> {
    let requests = &req.spec.docker.device_requests;
    (!requests.is_empty()).then(|| {
        requests
            .iter()
            .map(|d| DeviceRequest {
                driver: d.driver.clone(),
                count: d.count,
                device_ids: (!d.device_ids.is_empty()).then(|| d.device_ids.clone()),
                capabilities: (!d.capabilities.is_empty()).then(|| vec![d.capabilities.clone()]),
                options: None,
            })
            .collect()
    })
}

/// `container-env-file`, read as `docker run --env-file` does: `NAME=value` lines, `#` comments.
fn read_env_file(path: &std::path::Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read container-env-file {}: {e}", path.display()))?;
    Ok(parse_env_lines(&text))
}

fn parse_env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let env = parse_env_lines("# comment\nA=1\n\nB = two=2\nnot a pair\n");
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some(" two=2"));
        assert_eq!(env.len(), 2);
    }
}
