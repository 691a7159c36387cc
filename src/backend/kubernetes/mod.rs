//! `container-backend: kubernetes`: one pod per instance in `proxy.kubernetes.namespace`,
//! reached at its IP (`internal-networking: true`) or through a Service of its own.
//!
//! Every API call made here is listed in [`api_calls`], which the shipped Role is checked against.

pub mod api_calls;
mod manifests;
pub mod naming;
mod pod;
mod templating;
pub mod waiting;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use super::{Backend, BackendError, Health, LaunchRequest, Recovered, Started};
use crate::config::KubernetesSettings;
use manifests::ObjectRef;
use naming::{INSTANCE_LABEL, PORT_ANNOTATION, SPEC_LABEL, USER_ANNOTATION};
use waiting::{Patience, Stage};

/// What a stopped pod gets to shut down cleanly before it is killed.
pub const STOP_GRACE_SECONDS: u32 = 10;

pub struct KubernetesBackend {
    client: Client,
    settings: KubernetesSettings,
    patience: Patience,
    instances: Mutex<HashMap<String, Instance>>,
}

#[derive(Default)]
struct Instance {
    stage: Option<Stage>,
    /// Additional (not persistent) manifests, deleted with the instance.
    owned: Vec<ObjectRef>,
    /// What the app printed before it failed to start.
    log: Vec<String>,
}

/// How to reach the API server, in the order ShinyProxy tries: `proxy.kubernetes.url` (e.g. a
/// `kubectl proxy` sidecar, no credentials), then kubeconfig, then the in-cluster account.
pub async fn connect(settings: &KubernetesSettings) -> Result<Client, BackendError> {
    let unavailable = |e: String| BackendError::Unavailable(format!("Kubernetes: {e}"));
    let mut config = match &settings.url {
        Some(url) => Config::new(
            url.parse()
                .map_err(|e| unavailable(format!("proxy.kubernetes.url '{url}': {e}")))?,
        ),
        None => Config::infer()
            .await
            .map_err(|e| unavailable(format!("no kubeconfig or in-cluster account: {e}")))?,
    };
    config.default_namespace = settings.namespace.clone();
    Client::try_from(config).map_err(|e| unavailable(e.to_string()))
}

impl KubernetesBackend {
    /// `container_wait_time` bounds the wait for readiness once the container runs.
    pub fn new(
        client: Client,
        settings: KubernetesSettings,
        container_wait_time: Duration,
    ) -> Self {
        Self {
            client,
            patience: Patience {
                pod: settings.pod_wait_time,
                container: container_wait_time,
                poll: Duration::from_millis(500),
            },
            settings,
            instances: Mutex::new(HashMap::new()),
        }
    }

    /// How often the pod is looked at while it starts (tests use a short interval).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.patience.poll = poll;
        self
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instance>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Started, String> {
        let id = &req.instance_id;
        let user = pod::user_of(req);
        for (manifest, persistent) in req
            .spec
            .kubernetes
            .additional_manifests
            .iter()
            .map(|m| (m, false))
            .chain(
                req.spec
                    .kubernetes
                    .persistent_manifests
                    .iter()
                    .map(|m| (m, true)),
            )
        {
            let mut manifest = manifest.clone();
            templating::fill(&mut manifest, &user, &req.env);
            let made = manifests::apply(&self.client, &manifest, &self.settings.namespace).await?;
            if let (Some(at), false) = (made, persistent) {
                self.lock().entry(id.clone()).or_default().owned.push(at);
            }
        }

        let pod = pod::build_pod(req, &self.settings)?;
        let name = naming::pod_name(id);
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("could not create pod {name}: {e}"))?;
        let image = req.spec.container_image.clone().unwrap_or_default();
        let ready = waiting::until_ready(&self.pods(), &name, &image, self.patience, |stage| {
            self.lock().entry(id.clone()).or_default().stage = Some(stage);
        })
        .await?;

        if self.settings.internal_networking {
            let ip = ready
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .ok_or_else(|| format!("pod {name} is ready but has no IP"))?;
            return address(ip, req.spec.port);
        }
        let service = pod::build_service(req, &self.settings)?;
        let made = self
            .services()
            .create(&PostParams::default(), &service)
            .await
            .map_err(|e| format!("could not create the app's Service: {e}"))?;
        let ip = made
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_deref())
            .ok_or("the app's Service got no cluster IP")?;
        address(ip, req.spec.port)
    }

    /// Removes the pod, its Service and its non-persistent manifests.
    async fn remove(&self, instance_id: &str) -> Result<(), String> {
        let grace = DeleteParams {
            grace_period_seconds: Some(STOP_GRACE_SECONDS),
            ..DeleteParams::default()
        };
        let mut problems = Vec::new();
        if let Err(e) = gone_is_fine(
            self.pods()
                .delete(&naming::pod_name(instance_id), &grace)
                .await,
        ) {
            problems.push(format!("pod: {e}"));
        }
        if !self.settings.internal_networking
            && let Err(e) = gone_is_fine(
                self.services()
                    .delete(&naming::service_name(instance_id), &DeleteParams::default())
                    .await,
            )
        {
            problems.push(format!("service: {e}"));
        }
        let owned = self
            .lock()
            .remove(instance_id)
            .map(|i| i.owned)
            .unwrap_or_default();
        for at in owned {
            if let Err(e) = manifests::delete(&self.client, &at).await {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn address(ip: &str, port: u16) -> Result<Started, String> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IP address"))?;
    Ok(Started {
        address: SocketAddr::new(ip, port),
    })
}

fn gone_is_fine<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Backend for KubernetesBackend {
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError> {
        match self.launch(req).await {
            Ok(started) => Ok(started),
            Err(why) => {
                let log: Vec<String> = why.lines().skip(1).map(str::to_string).collect();
                if let Err(e) = self.remove(&req.instance_id).await {
                    tracing::warn!(instance = %req.instance_id, error = %e, "cleanup after a failed start was incomplete");
                }
                self.lock().entry(req.instance_id.clone()).or_default().log = log;
                Err(BackendError::Start(why))
            }
        }
    }

    async fn stop(&self, instance_id: &str) -> Result<(), BackendError> {
        self.remove(instance_id)
            .await
            .map_err(|reason| BackendError::Stop {
                id: instance_id.to_string(),
                reason,
            })
    }

    async fn list(&self) -> Vec<String> {
        self.recover()
            .await
            .into_iter()
            .map(|r| r.instance_id)
            .collect()
    }

    async fn health(&self, instance_id: &str) -> Health {
        match self.pods().get(&naming::pod_name(instance_id)).await {
            Ok(pod) => match pod.status.and_then(|s| s.phase).as_deref() {
                Some("Failed") => Health::Exited("its pod failed".into()),
                Some("Succeeded") => Health::Exited("its pod exited".into()),
                _ => Health::Running,
            },
            Err(kube::Error::Api(s)) if s.code == 404 => Health::Exited("its pod is gone".into()),
            Err(_) => Health::Unknown,
        }
    }

    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        let instances = self.lock();
        let log = instances
            .get(instance_id)
            .map(|i| i.log.as_slice())
            .unwrap_or_default();
        log[log.len().saturating_sub(n)..].to_vec()
    }

    fn stage(&self, instance_id: &str) -> Option<String> {
        self.lock()
            .get(instance_id)
            .and_then(|i| i.stage)
            .map(|s| s.describe().to_string())
    }

    /// The instances of an earlier run: running pods with vestibule's labels.
    async fn recover(&self) -> Vec<Recovered> {
        let lp = ListParams::default().labels(&naming::selector());
        let pods = match self.pods().list(&lp).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the app pods");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for pod in pods {
            let meta = &pod.metadata;
            let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).cloned();
            let note = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
            let (Some(id), Some(spec)) = (
                label(INSTANCE_LABEL),
                note(SPEC_LABEL).or(label(SPEC_LABEL)),
            ) else {
                continue;
            };
            let port: u16 = note(PORT_ANNOTATION)
                .and_then(|p| p.parse().ok())
                .unwrap_or(3838);
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let ip = if self.settings.internal_networking {
                pod.status.as_ref().and_then(|s| s.pod_ip.clone())
            } else {
                match self.services().get(&naming::service_name(&id)).await {
                    Ok(svc) => svc.spec.and_then(|s| s.cluster_ip),
                    Err(_) => None,
                }
            };
            let Some(Ok(ip)) = ip.map(|ip| ip.parse::<IpAddr>()) else {
                continue;
            };
            if running {
                found.push(Recovered {
                    instance_id: id,
                    spec_id: spec,
                    user: note(USER_ANNOTATION).unwrap_or_default(),
                    address: SocketAddr::new(ip, port),
                    // Pods carry no fingerprint of their app's settings yet.
                    spec_hash: String::new(),
                    created_unix_ms: 0,
                })
            }
        }
        found
    }
}
