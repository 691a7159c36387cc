//! From an app spec and a launch request to a Swarm service with one replica.

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, Limit, Mount, MountType,
    NetworkAttachmentConfig, ResourceObject, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use crate::backend::LaunchRequest;
use crate::backend::docker::{labels, spec::environment, volumes};
use crate::config::DockerSettings;

/// A secret by name, with the id Swarm knows it by.
pub struct ResolvedSecret<'a> {
    pub id: String,
    pub secret: &'a crate::config::SwarmSecret,
}

pub fn plan(
    req: &LaunchRequest,
    settings: &DockerSettings,
    published_port: Option<u16>,
    secrets: &[ResolvedSecret<'_>],
) -> Result<ServiceSpec, String> {
    let spec = &req.spec;
    let image = spec
        .container_image
        .clone()
        .ok_or_else(|| format!("app '{}' has no container-image", spec.id))?;
    let user = req.owner.clone();
    let mounts = spec
        .container_volumes
        .iter()
        .map(|v| volumes::resolve(v, &user, &req.env).map(|bind| mount(&bind)))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = labels::for_instance(req, &settings.realm_id);
    let c = &spec.container;
    let mut networks: Vec<String> = spec
        .docker
        .network
        .clone()
        .or_else(|| settings.default_container_network.clone())
        .into_iter()
        .collect();
    networks.extend(spec.docker.network_connections.iter().cloned());

    let container = TaskSpecContainerSpec {
        image: Some(image),
        labels: Some(labels.clone()),
        args: (!spec.container_cmd.is_empty()).then(|| spec.container_cmd.clone()),
        env: Some(environment(req)?),
        user: spec.docker.user.clone(),
        mounts: Some(mounts),
        init: Some(true),
        // Swarm has no per-service runtime or IPC mode; DNS and groups it has.
        dns_config: (!spec.docker.dns.is_empty()).then(|| TaskSpecContainerSpecDnsConfig {
            nameservers: Some(spec.docker.dns.clone()),
            ..Default::default()
        }),
        groups: (!spec.docker.group_add.is_empty()).then(|| spec.docker.group_add.clone()),
        secrets: Some(
            secrets
                .iter()
                .map(|s| TaskSpecContainerSpecSecrets {
                    secret_id: Some(s.id.clone()),
                    secret_name: Some(s.secret.name.clone()),
                    file: Some(TaskSpecContainerSpecFile {
                        name: Some(s.secret.target.clone().unwrap_or(s.secret.name.clone())),
                        uid: Some(s.secret.uid.clone().unwrap_or_else(|| "0".into())),
                        gid: Some(s.secret.gid.clone().unwrap_or_else(|| "0".into())),
                        mode: Some(s.secret.mode.unwrap_or(0o444)),
                    }),
                })
                .collect(),
        ),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(TaskSpecResources {
            limits: Some(Limit {
                nano_cpus: c.cpu_limit.as_ref().map(|q| q.millicpus as i64 * 1_000_000),
                memory_bytes: c.memory_limit.as_ref().map(|m| m.bytes as i64),
                pids: None,
            }),
            reservations: Some(ResourceObject {
                nano_cpus: c
                    .cpu_request
                    .as_ref()
                    .map(|q| q.millicpus as i64 * 1_000_000),
                memory_bytes: c.memory_request.as_ref().map(|m| m.bytes as i64),
                generic_resources: None,
            }),
            ..Default::default()
        }),
        // A crashed app is reported to its user, not restarted behind their back.
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        }),
        placement: (!spec.docker.swarm_constraints.is_empty()).then(|| TaskSpecPlacement {
            constraints: Some(spec.docker.swarm_constraints.clone()),
            ..Default::default()
        }),
        networks: (!networks.is_empty()).then(|| {
            networks
                .into_iter()
                .map(|n| NetworkAttachmentConfig {
                    target: Some(n),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    };
    Ok(ServiceSpec {
        name: Some(format!("vestibule-{}-{}", spec.id, req.instance_id)),
        labels: Some(labels),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: published_port.map(|p| EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(i64::from(spec.port)),
                published_port: Some(i64::from(p)),
                // Host mode: the port opens on the node that runs the task. The ingress routing
                // mesh would reach it from any node, but needs overlay networking that many
                // hosts (and this project's CI) do not route to loopback.
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `host:container[:ro]` as a Swarm bind mount, or a named volume when `host` is no path.
fn mount(bind: &str) -> Mount {
    let mut parts = bind.splitn(3, ':');
    let source = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let read_only = parts
        .next()
        .is_some_and(|o| o.split(',').any(|x| x == "ro"));
    Mount {
        typ: Some(if source.starts_with('/') {
            MountType::BIND
        } else {
            MountType::VOLUME
        }),
        source: Some(source),
        target: Some(target),
        read_only: Some(read_only),
        ..Default::default()
    }
}
