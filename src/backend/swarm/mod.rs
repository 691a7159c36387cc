//! `container-backend: docker-swarm`: each instance is a Swarm service with one replica,
//! published through the ingress routing mesh on 127.0.0.1 or, with `internal-networking`,
//! reached at its task's address. Labels, volumes and logs work as for plain Docker.

mod service;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{Task, TaskState};
use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::docker::{connect, describe, labels, logs, ports::PortAllocator};
use super::{Backend, BackendError, Health, LaunchRequest, LogBuffer, Recovered, Started};
use crate::config::DockerSettings;

const LOG_LINES_KEPT: usize = 1000;
const POLL: Duration = Duration::from_millis(200);

pub struct SwarmBackend {
    docker: Docker,
    settings: DockerSettings,
    ports: PortAllocator,
    instances: Mutex<HashMap<String, Arc<Instance>>>,
}

struct Instance {
    service_id: String,
    host_port: Option<u16>,
    log: Arc<LogBuffer>,
    log_done: watch::Receiver<bool>,
}

impl SwarmBackend {
    pub async fn connect(settings: DockerSettings) -> Result<Self, String> {
        let docker = connect::connect(settings.url.as_deref()).await?;
        let info = docker.info().await.map_err(|e| describe(&e))?;
        let active = info
            .swarm
            .and_then(|s| s.local_node_state)
            .is_some_and(|s| s == bollard::models::LocalNodeState::ACTIVE);
        if !active {
            return Err(
                "container-backend is docker-swarm, but this Docker engine is not part of an \
                 active swarm (run `docker swarm init`)"
                    .into(),
            );
        }
        Ok(Self {
            ports: PortAllocator::new(settings.port_range_start, settings.port_range_max),
            docker,
            settings,
            instances: Mutex::new(HashMap::new()),
        })
    }

    fn get(&self, id: &str) -> Option<Arc<Instance>> {
        self.instances.lock().get(id).cloned()
    }

    async fn tasks(&self, service_id: &str) -> Result<Vec<Task>, String> {
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let mut tasks = self
            .docker
            .list_tasks(Some(options))
            .await
            .map_err(|e| describe(&e))?;
        // Newest first.
        tasks.sort_by_key(|t| std::cmp::Reverse(t.version.as_ref().and_then(|v| v.index)));
        Ok(tasks)
    }

    /// Waits until the service's task runs, or says in words why it will not.
    async fn wait_for_task(
        &self,
        service_id: &str,
        image: &str,
        progress: &crate::backend::Progress,
    ) -> Result<Task, String> {
        let deadline = tokio::time::Instant::now() + self.settings.service_wait_time;
        let mut last = String::from("no task was created");
        while tokio::time::Instant::now() < deadline {
            let tasks = self.tasks(service_id).await?;
            if let Some(task) = tasks.first() {
                let status = task.status.clone().unwrap_or_default();
                let err = status.err.clone().unwrap_or_default();
                match status.state {
                    Some(TaskState::RUNNING) => return Ok(task.clone()),
                    Some(
                        TaskState::FAILED
                        | TaskState::REJECTED
                        | TaskState::COMPLETE
                        | TaskState::SHUTDOWN
                        | TaskState::ORPHANED,
                    ) => return Err(task_failure(task, image)),
                    _ if err.contains("no suitable node") => {
                        return Err(format!("no node can run it: {err}"));
                    }
                    state => {
                        if let Some(s) = state {
                            progress.stage(super::Stage::Orchestrator(s.to_string()));
                        }
                        last = format!(
                            "its task is {}{}",
                            state.map(|s| s.to_string()).unwrap_or_default(),
                            if err.is_empty() {
                                String::new()
                            } else {
                                format!(" ({err})")
                            }
                        );
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!(
            "the service did not start within {} s: {last}",
            self.settings.service_wait_time.as_secs()
        ))
    }

    async fn address(
        &self,
        task: &Task,
        req: &LaunchRequest,
        host_port: Option<u16>,
    ) -> Result<SocketAddr, String> {
        if let Some(p) = host_port {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
        }
        let container = task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone())
            .ok_or("the task has no container on this node")?;
        let info = self
            .docker
            .inspect_container(&container, None)
            .await
            .map_err(|e| describe(&e))?;
        let network = req
            .spec
            .docker
            .network
            .clone()
            .or_else(|| self.settings.default_container_network.clone());
        let ip = info
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|nets| {
                network
                    .as_deref()
                    .and_then(|n| nets.get(n))
                    .or_else(|| nets.values().next())
                    .and_then(|e| e.ip_address.as_deref()?.parse().ok())
            })
            .ok_or("the task has no address on its network")?;
        Ok(SocketAddr::new(ip, req.spec.port))
    }

    async fn launch(
        &self,
        req: &LaunchRequest,
        host_port: Option<u16>,
    ) -> Result<SocketAddr, String> {
        let mut secrets = Vec::new();
        for s in &req.spec.docker.swarm_secrets {
            let found = self.docker.inspect_secret(&s.name).await.map_err(|e| {
                format!("swarm secret '{}' cannot be used: {}", s.name, describe(&e))
            })?;
            secrets.push(service::ResolvedSecret {
                id: found.id.unwrap_or_default(),
                secret: s,
            });
        }
        let spec = service::plan(req, &self.settings, host_port, &secrets)?;
        let image = req.spec.container_image.clone().unwrap_or_default();
        req.progress.stage(super::Stage::Creating("service"));
        let created = self
            .docker
            .create_service(spec, None)
            .await
            .map_err(|e| format!("cannot create a service from '{image}': {}", describe(&e)))?;
        let service_id = created.id.unwrap_or_default();
        let log = Arc::new(LogBuffer::new(LOG_LINES_KEPT));
        let log_done = logs::follow_service(self.docker.clone(), service_id.clone(), log.clone());
        self.instances.lock().insert(
            req.instance_id.clone(),
            Arc::new(Instance {
                service_id: service_id.clone(),
                host_port,
                log,
                log_done,
            }),
        );
        let task = self
            .wait_for_task(&service_id, &image, &req.progress)
            .await?;
        self.address(&task, req, host_port).await
    }

    async fn labelled(&self) -> Result<Vec<bollard::models::Service>, String> {
        let options = ListServicesOptionsBuilder::default()
            .filters(&labels::realm_filter(&self.settings.realm_id))
            .build();
        self.docker
            .list_services(Some(options))
            .await
            .map_err(|e| describe(&e))
    }
}

/// Why a task ended, for a person: a missing image, or how the app exited.
fn task_failure(task: &Task, image: &str) -> String {
    let status = task.status.clone().unwrap_or_default();
    let err = status.err.unwrap_or_default();
    let code = status.container_status.and_then(|c| c.exit_code);
    if err.contains("No such image") || err.contains("pull access denied") {
        return format!(
            "the image '{image}' is not on the swarm's nodes and could not be pulled ({err})"
        );
    }
    match code {
        Some(code) if code != 0 || err.is_empty() => format!("exited with code {code}"),
        _ if !err.is_empty() => format!("its task failed: {err}"),
        _ => format!(
            "its task ended ({})",
            status.state.map(|s| s.to_string()).unwrap_or_default()
        ),
    }
}

#[async_trait]
impl Backend for SwarmBackend {
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError> {
        let host_port = if self.settings.internal_networking {
            None
        } else {
            Some(self.ports.allocate().map_err(BackendError::Start)?)
        };
        match self.launch(req, host_port).await {
            Ok(address) => Ok(Started { address }),
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
            return Ok(());
        };
        match self.docker.delete_service(&inst.service_id).await {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                return Err(BackendError::Stop {
                    id: instance_id.to_string(),
                    reason: describe(&e),
                });
            }
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
        let Ok(tasks) = self.tasks(&inst.service_id).await else {
            return Health::Unknown;
        };
        let Some(task) = tasks.first() else {
            return Health::Unknown;
        };
        let state = task.status.as_ref().and_then(|s| s.state);
        match state {
            Some(
                TaskState::FAILED
                | TaskState::COMPLETE
                | TaskState::REJECTED
                | TaskState::SHUTDOWN
                | TaskState::ORPHANED,
            ) => {
                let mut done = inst.log_done.clone();
                // Service logs follow until the service goes; give them a moment to catch up.
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), done.wait_for(|d| *d)).await;
                Health::Exited(task_failure(task, ""))
            }
            _ => Health::Running,
        }
    }

    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        self.get(instance_id)
            .map(|i| i.log.last(n))
            .unwrap_or_default()
    }

    fn log(&self, instance_id: &str) -> Option<Arc<LogBuffer>> {
        self.get(instance_id).map(|i| i.log.clone())
    }

    fn outlives_server(&self) -> bool {
        true
    }

    async fn recover(&self) -> Vec<Recovered> {
        let services = match self.labelled().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list services to recover");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for s in services {
            let Some(service_id) = s.id.clone() else {
                continue;
            };
            let labels = s
                .spec
                .as_ref()
                .and_then(|sp| sp.labels.clone())
                .unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            // Host-mode ports appear in the spec, not in the routing mesh's endpoint.
            let published = s
                .spec
                .as_ref()
                .and_then(|sp| sp.endpoint_spec.as_ref())
                .and_then(|e| e.ports.as_ref())
                .and_then(|p| p.iter().find_map(|p| p.published_port))
                .and_then(|p| u16::try_from(p).ok());
            let running = matches!(
                self.tasks(&service_id).await.ok().and_then(|t| t
                    .first()
                    .and_then(|t| t.status.as_ref().and_then(|s| s.state))),
                Some(TaskState::RUNNING)
            );
            // Internal networking needs the task's address; only published services are adopted.
            let (true, Some(port), false) = (running, published, self.settings.internal_networking)
            else {
                tracing::info!(service = %service_id, "removing a leftover service");
                let _ = self.docker.delete_service(&service_id).await;
                continue;
            };
            self.ports.claim(port);
            let instance_id = label(labels::INSTANCE_ID);
            let log = Arc::new(LogBuffer::new(LOG_LINES_KEPT));
            let log_done =
                logs::follow_service(self.docker.clone(), service_id.clone(), log.clone());
            self.instances.lock().insert(
                instance_id.clone(),
                Arc::new(Instance {
                    service_id,
                    host_port: Some(port),
                    log,
                    log_done,
                }),
            );
            found.push(Recovered {
                instance_id,
                spec_id: label(labels::APP_ID),
                user: label(labels::USER),
                address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                spec_hash: label(labels::SPEC_HASH),
                created_unix_ms: label(labels::CREATED_MS).parse().unwrap_or(0),
            });
        }
        found
    }

    async fn remove_leftovers(&self) {
        match self.labelled().await {
            Ok(services) => {
                for id in services.into_iter().filter_map(|s| s.id) {
                    tracing::info!(service = %id, "removing a service left by an earlier run");
                    let _ = self.docker.delete_service(&id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list leftover services"),
        }
    }

    fn spec_hash(&self, spec: &crate::config::AppSpec) -> Option<String> {
        Some(super::spec_fingerprint(spec))
    }
}
