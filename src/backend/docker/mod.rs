//! `container-backend: docker`: each instance is one container on a Docker engine, reached on a
//! port published on 127.0.0.1 or, with `internal-networking`, at its address on its network.
//!
//! Every container carries labels (see [`labels`]) so a restarted server can adopt or remove what
//! an earlier run left behind.

pub(crate) mod connect;
mod image;
pub mod labels;
pub(crate) mod logs;
pub(crate) mod ports;
mod shinyproxy;
pub(crate) mod spec;
mod stats;
pub(crate) mod volumes;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, NetworkConnectRequest};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;

use super::{Backend, BackendError, Health, LaunchRequest, LogBuffer, Recovered, Started};
use crate::config::DockerSettings;
use ports::PortAllocator;

const LOG_LINES_KEPT: usize = 1000;
/// Seconds a container gets to exit after SIGTERM before it is killed.
const STOP_GRACE_SECS: i32 = 5;

pub struct DockerBackend {
    docker: Docker,
    settings: DockerSettings,
    ports: PortAllocator,
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    exits: tokio::sync::broadcast::Sender<super::Exit>,
    /// Whether recovery also takes over the containers a ShinyProxy started (see
    /// [`shinyproxy`]); only with `recover-running-proxies`, since without it whatever recovery
    /// finds unclaimed is removed, and a ShinyProxy's containers are not vestibule's to remove.
    adopt_shinyproxy: bool,
}

struct Instance {
    container_id: String,
    host_port: Option<u16>,
    log: Arc<LogBuffer>,
    log_done: watch::Receiver<bool>,
    /// Started by ShinyProxy: its further containers (same proxy id) go with it.
    from_shinyproxy: bool,
}

/// A Docker error as a person should read it: the engine's own message when it sent one.
pub(crate) fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl DockerBackend {
    pub async fn connect(settings: DockerSettings) -> Result<Self, String> {
        let docker = connect::connect(settings.url.as_deref()).await?;
        Ok(Self {
            ports: PortAllocator::new(settings.port_range_start, settings.port_range_max),
            docker,
            settings,
            instances: Mutex::new(HashMap::new()),
            exits: tokio::sync::broadcast::channel(256).0,
            adopt_shinyproxy: false,
        })
    }

    /// With `recover-running-proxies`: recovery adopts ShinyProxy's containers too.
    pub fn adopting_shinyproxy(mut self, adopt: bool) -> Self {
        self.adopt_shinyproxy = adopt;
        self
    }

    fn get(&self, id: &str) -> Option<Arc<Instance>> {
        self.instances.lock().get(id).cloned()
    }

    async fn create_and_start(
        &self,
        req: &LaunchRequest,
        host_port: Option<u16>,
    ) -> Result<(String, Started), String> {
        let image = req.spec.container_image.as_deref().unwrap_or_default();
        image::ensure(
            &self.docker,
            image,
            self.settings.image_pull_policy,
            &req.progress,
        )
        .await?;
        req.progress.stage(super::Stage::Creating("container"));
        let plan = spec::plan(req, &self.settings, host_port)?;
        let name = format!("vestibule-{}-{}", req.spec.id, req.instance_id);
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), plan.body)
            .await
            .map_err(|e| format!("cannot create a container from '{image}': {}", describe(&e)))?;
        let id = created.id;
        let log = Arc::new(LogBuffer::new(LOG_LINES_KEPT));
        let mut instance = Instance {
            container_id: id.clone(),
            host_port,
            log: log.clone(),
            log_done: watch::channel(true).1,
            from_shinyproxy: false,
        };
        // Registered before anything else can fail, so stop() removes the container.
        let result = async {
            for net in &plan.extra_networks {
                let request = NetworkConnectRequest {
                    container: id.clone(),
                    ..Default::default()
                };
                self.docker
                    .connect_network(net, request)
                    .await
                    .map_err(|e| format!("cannot connect to network '{net}': {}", describe(&e)))?;
            }
            req.progress
                .stage(super::Stage::StartingInstance("container"));
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| format!("cannot start the container: {}", describe(&e)))?;
            instance.log_done = logs::follow(self.docker.clone(), id.clone(), log.clone());
            self.report_exit(&req.instance_id, &id, instance.log_done.clone());
            let address = match host_port {
                Some(p) => SocketAddr::from((Ipv4Addr::LOCALHOST, p)),
                None => {
                    let info = self
                        .docker
                        .inspect_container(&id, None)
                        .await
                        .map_err(|e| describe(&e))?;
                    let ip = network_ip(&info, plan.network.as_deref())
                        .ok_or_else(|| "the container has no address on its network".to_string())?;
                    SocketAddr::new(ip, req.spec.port)
                }
            };
            Ok::<_, String>(address)
        }
        .await;
        self.instances
            .lock()
            .insert(req.instance_id.clone(), Arc::new(instance));
        result.map(|address| (id, Started { address }))
    }

    async fn remove(&self, container: &str) -> Result<(), String> {
        let stop = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECS)
            .build();
        let _ = self.docker.stop_container(container, Some(stop)).await;
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// This realm's containers, running or not.
    async fn stop_by_label(&self, instance_id: &str) -> Result<(), BackendError> {
        let failed = |reason: String| BackendError::Stop {
            id: instance_id.to_string(),
            reason,
        };
        let containers = self.labelled().await.map_err(failed)?;
        let theirs = containers.into_iter().filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(labels::INSTANCE_ID))
                .is_some_and(|id| id == instance_id)
        });
        for container in theirs.filter_map(|c| c.id) {
            self.remove(&container).await.map_err(failed)?;
        }
        if self.adopt_shinyproxy {
            // Adopted from ShinyProxy by another replica: found by ShinyProxy's label.
            self.remove_shinyproxy_containers(instance_id)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Follows an adopted container's log and exit, and stops it like one started here.
    fn track(
        &self,
        instance_id: &str,
        container_id: String,
        host_port: Option<u16>,
        from_shinyproxy: bool,
    ) {
        if let Some(p) = host_port {
            self.ports.claim(p);
        }
        let log = Arc::new(LogBuffer::new(LOG_LINES_KEPT));
        let log_done = logs::follow(self.docker.clone(), container_id.clone(), log.clone());
        self.report_exit(instance_id, &container_id, log_done.clone());
        self.instances.lock().insert(
            instance_id.to_string(),
            Arc::new(Instance {
                container_id,
                host_port,
                log,
                log_done,
                from_shinyproxy,
            }),
        );
    }

    /// A container's log stream ends when the container does: then, and only then, ask the
    /// engine how it ended, and tell lifecycle. No container is inspected while it runs.
    fn report_exit(
        &self,
        instance_id: &str,
        container_id: &str,
        mut log_done: watch::Receiver<bool>,
    ) {
        let (docker, exits) = (self.docker.clone(), self.exits.clone());
        let (instance_id, container_id) = (instance_id.to_string(), container_id.to_string());
        tokio::spawn(async move {
            if log_done.wait_for(|done| *done).await.is_err() {
                return;
            }
            let how = match docker.inspect_container(&container_id, None).await {
                Ok(info) => match info.state {
                    Some(state) if state.running != Some(true) => exit_reason(&state),
                    // Still running: the stream ended for another reason, and the periodic
                    // health check stays the safety net.
                    _ => return,
                },
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => "was removed from Docker".into(),
                Err(_) => return,
            };
            let _ = exits.send(super::Exit { instance_id, how });
        });
    }

    async fn labelled(&self) -> Result<Vec<bollard::models::ContainerSummary>, String> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&labels::realm_filter(&self.settings.realm_id))
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| describe(&e))
    }
}

/// How a stopped container ended, for a person.
fn exit_reason(state: &bollard::models::ContainerState) -> String {
    match (state.oom_killed, state.exit_code) {
        (Some(true), _) => "was killed for using more memory than its limit".to_string(),
        (_, Some(code)) => format!("exited with code {code}"),
        _ => "stopped".to_string(),
    }
}

/// The container's address on `network` (or on its only network).
fn network_ip(info: &ContainerInspectResponse, network: Option<&str>) -> Option<IpAddr> {
    let networks = info.network_settings.as_ref()?.networks.as_ref()?;
    let pick = |n: &bollard::models::EndpointSettings| {
        n.ip_address
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .and_then(|ip| ip.parse().ok())
    };
    if let Some(ip) = network.and_then(|n| networks.get(n)).and_then(pick) {
        return Some(ip);
    }
    networks.values().find_map(pick)
}

#[async_trait]
impl Backend for DockerBackend {
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError> {
        let host_port = if self.settings.internal_networking {
            None
        } else {
            Some(self.ports.allocate().map_err(BackendError::Start)?)
        };
        match self.create_and_start(req, host_port).await {
            Ok((_, started)) => Ok(started),
            Err(e) => {
                if self.get(&req.instance_id).is_none()
                    && let Some(p) = host_port
                {
                    self.ports.release(p);
                }
                Err(BackendError::Start(e))
            }
        }
    }

    async fn stop(&self, instance_id: &str) -> Result<(), BackendError> {
        let Some(inst) = self.get(instance_id) else {
            // Started by another replica (or an earlier run): found by its label.
            return self.stop_by_label(instance_id).await;
        };
        let failed = |reason| BackendError::Stop {
            id: instance_id.to_string(),
            reason,
        };
        self.remove(&inst.container_id).await.map_err(failed)?;
        if inst.from_shinyproxy {
            self.remove_shinyproxy_containers(instance_id)
                .await
                .map_err(failed)?;
        }
        self.instances.lock().remove(instance_id);
        if let Some(p) = inst.host_port {
            self.ports.release(p);
        }
        Ok(())
    }

    async fn list(&self) -> Vec<String> {
        self.instances.lock().keys().cloned().collect()
    }

    async fn health(&self, instance_id: &str) -> Health {
        let Some(inst) = self.get(instance_id) else {
            return Health::Unknown;
        };
        let info = match self
            .docker
            .inspect_container(&inst.container_id, None)
            .await
        {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Health::Exited("was removed from Docker".into()),
            Err(_) => return Health::Unknown,
        };
        let Some(state) = info.state else {
            return Health::Unknown;
        };
        if state.running == Some(true) {
            return Health::Running;
        }
        // Let the log stream deliver the last lines before anyone reads them.
        let mut done = inst.log_done.clone();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), done.wait_for(|d| *d)).await;
        Health::Exited(exit_reason(&state))
    }

    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        self.get(instance_id)
            .map(|i| i.log.last(n))
            .unwrap_or_default()
    }

    fn log(&self, instance_id: &str) -> Option<Arc<LogBuffer>> {
        self.get(instance_id).map(|i| i.log.clone())
    }

    async fn usage(&self, instance_id: &str) -> Option<super::ResourceUsage> {
        let inst = self.get(instance_id)?;
        stats::read(&self.docker, &inst.container_id).await
    }

    fn outlives_server(&self) -> bool {
        true
    }

    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<super::Exit>> {
        Some(self.exits.subscribe())
    }

    async fn recover(&self) -> Vec<Recovered> {
        let containers = match self.labelled().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers to recover");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for c in containers {
            let Some(container_id) = c.id.clone() else {
                continue;
            };
            let labels = c.labels.clone().unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let running = c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
            let info = self
                .docker
                .inspect_container(&container_id, None)
                .await
                .ok();
            let address = info.as_ref().and_then(|i| self.address_of(i));
            let (true, Some(address)) = (running, address) else {
                tracing::info!(container = %container_id, "removing a stopped leftover container");
                let _ = self.remove(&container_id).await;
                continue;
            };
            let instance_id = label(labels::INSTANCE_ID);
            let host_port = (!self.settings.internal_networking).then_some(address.port());
            self.track(&instance_id, container_id, host_port, false);
            found.push(Recovered {
                instance_id,
                spec_id: label(labels::APP_ID),
                user: label(labels::USER),
                address,
                spec_hash: label(labels::SPEC_HASH),
                created_unix_ms: label(labels::CREATED_MS).parse().unwrap_or(0),
            });
        }
        if self.adopt_shinyproxy {
            found.extend(self.recover_shinyproxy().await);
        }
        found
    }

    async fn remove_leftovers(&self) {
        match self.labelled().await {
            Ok(containers) => {
                // All at once: each may take its stop timeout to give up.
                let removals = containers.into_iter().filter_map(|c| c.id).map(|id| async move {
                    tracing::info!(container = %id, "removing a container left by an earlier run");
                    if let Err(e) = self.remove(&id).await {
                        tracing::warn!(container = %id, error = %e, "cannot remove leftover");
                    }
                });
                futures_util::future::join_all(removals).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot list leftover containers"),
        }
    }

    fn spec_hash(&self, spec: &crate::config::AppSpec) -> Option<String> {
        Some(super::spec_fingerprint(spec))
    }
}

impl DockerBackend {
    /// Where an adopted container listens: its published port, or its network address.
    fn address_of(&self, info: &ContainerInspectResponse) -> Option<SocketAddr> {
        if self.settings.internal_networking {
            let port = info
                .config
                .as_ref()?
                .exposed_ports
                .as_ref()?
                .iter()
                .find_map(|p| p.split('/').next()?.parse().ok())?;
            let network = info
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone());
            return Some(SocketAddr::new(network_ip(info, network.as_deref())?, port));
        }
        let bindings = info.host_config.as_ref()?.port_bindings.as_ref()?;
        let port = bindings
            .values()
            .flatten()
            .flatten()
            .find_map(|b| b.host_port.as_deref()?.parse().ok())?;
        Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
}
