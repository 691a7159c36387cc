//! `container-backend: kubernetes`: one pod per instance in `proxy.kubernetes.namespace` (or the
//! namespace the app's pod patches set), reached at its IP (`internal-networking: true`) or
//! through a Service of its own.
//!
//! Every API call made here is listed in [`api_calls`], which the shipped Role is checked against.

pub mod api_calls;
mod crash;
mod exit_watch;
mod log_follow;
mod manifests;
pub mod naming;
mod pod;
mod pod_metrics;
mod shinyproxy;
pub mod waiting;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

use super::{
    Backend, BackendError, Exit, Health, LaunchRequest, LogBuffer, Recovered, ResourceUsage,
    Started,
};
use crate::config::{AppSpec, KubernetesSettings, ServiceType};
use manifests::ObjectRef;
use naming::{
    INSTANCE_LABEL, OWNED_ANNOTATION, PORT_ANNOTATION, SPEC_HASH_ANNOTATION, SPEC_LABEL,
    USER_ANNOTATION,
};
use waiting::{Patience, Watched};

/// What a stopped pod gets to shut down cleanly before it is killed.
pub const STOP_GRACE_SECONDS: u32 = 10;
/// The lines of an instance's live log kept in memory (as the other backends keep).
const LOG_LINES_KEPT: usize = 1000;

pub struct KubernetesBackend {
    client: Client,
    settings: KubernetesSettings,
    patience: Patience,
    /// Where to look for pods after a restart: the configured namespace and those the apps'
    /// pod patches name.
    namespaces: BTreeSet<String>,
    shared: Arc<Shared>,
    exits: broadcast::Sender<Exit>,
    /// The pod watches behind [`Backend::exits`] run once someone listens.
    watching: std::sync::Once,
    /// Whether recovery also takes over the pods a ShinyProxy started (see [`shinyproxy`]);
    /// only with `recover-running-proxies`, as a ShinyProxy's pods are not vestibule's to
    /// remove when nobody adopts them.
    adopt_shinyproxy: bool,
    /// Whether a missing metrics API was logged already.
    metrics_quiet: pod_metrics::Quiet,
}

/// What the backend and its pod watches both know of the instances.
#[derive(Default)]
pub(crate) struct Shared {
    instances: Mutex<HashMap<String, Instance>>,
}

struct Instance {
    namespace: String,
    /// Additional (not persistent) manifests, deleted with the instance.
    owned: Vec<ObjectRef>,
    /// What the app printed before it failed to start or crashed, read from the API server
    /// then: the run that crashed, which the live log may have followed only in part.
    kept: Vec<String>,
    /// The app container's output as it is printed, once its pod runs (see [`log_follow`]).
    live: Arc<LogBuffer>,
    /// Dropped with the instance, which ends the follow of its log.
    following: Option<tokio_util::sync::DropGuard>,
    /// The pod's memory limit, for the admin console (its containers' limits, summed).
    memory_limit: Option<u64>,
    /// Set while the app serves: its container's restart count then, so a later restart is
    /// seen as the crash it is.
    serving_restarts: Option<i32>,
    /// The names ShinyProxy gave the pod and its Service; vestibule's own derive from the
    /// instance id.
    pod_name: Option<String>,
    service_name: Option<String>,
}

impl Default for Instance {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            owned: Vec::new(),
            kept: Vec::new(),
            live: Arc::new(LogBuffer::new(LOG_LINES_KEPT)),
            following: None,
            memory_limit: None,
            serving_restarts: None,
            pod_name: None,
            service_name: None,
        }
    }
}

impl Shared {
    fn serving_restarts(&self, id: &str) -> Option<i32> {
        self.instances.lock().get(id)?.serving_restarts
    }

    fn serving_in(&self, namespace: &str) -> Vec<String> {
        self.instances
            .lock()
            .iter()
            .filter(|(_, i)| i.serving_restarts.is_some() && i.namespace == namespace)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn keep_output(&self, id: &str, output: Option<String>) {
        if let (Some(i), Some(text)) = (self.instances.lock().get_mut(id), output) {
            i.kept = text.lines().map(str::to_string).collect();
        }
    }

    /// Marks the instance as no longer serving; whether it was.
    fn stop_serving(&self, id: &str) -> bool {
        self.instances
            .lock()
            .get_mut(id)
            .and_then(|i| i.serving_restarts.take())
            .is_some()
    }
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
    if let Some(dir) = &settings.cert_path {
        // kube reads the files itself when the client is built.
        let [ca, cert, key] = crate::config::CERT_FILES.map(|f| dir.join(f));
        config.root_cert_file = Some(ca);
        config.auth_info.client_certificate = Some(cert.display().to_string());
        config.auth_info.client_key = Some(key.display().to_string());
    }
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
            namespaces: BTreeSet::from([settings.namespace.clone()]),
            settings,
            shared: Arc::new(Shared::default()),
            exits: broadcast::channel(256).0,
            watching: std::sync::Once::new(),
            adopt_shinyproxy: false,
            metrics_quiet: pod_metrics::Quiet::default(),
        }
    }

    /// With `recover-running-proxies`: recovery adopts ShinyProxy's pods too.
    pub fn adopting_shinyproxy(mut self, adopt: bool) -> Self {
        self.adopt_shinyproxy = adopt;
        self
    }

    /// The instance's pod: ShinyProxy's name for one adopted from it.
    fn pod_name_of(&self, instance_id: &str) -> String {
        self.shared
            .instances
            .lock()
            .get(instance_id)
            .and_then(|i| i.pod_name.clone())
            .unwrap_or_else(|| naming::pod_name(instance_id))
    }

    /// Also looks after a restart in the namespaces these apps' pod patches put their pods in.
    /// (A namespace templated per user cannot be known in advance, so is not searched.)
    pub fn with_apps(mut self, specs: &[AppSpec]) -> Self {
        self.namespaces
            .extend(specs.iter().filter_map(pod::fixed_namespace));
        self
    }

    /// How often the pod is looked at while it starts (tests use a short interval).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.patience.poll = poll;
        self
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn services(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The namespace an instance's pod is in (the configured one for an instance not known).
    fn namespace_of(&self, instance_id: &str) -> String {
        self.shared
            .instances
            .lock()
            .get(instance_id)
            .map(|i| i.namespace.clone())
            .unwrap_or_else(|| self.settings.namespace.clone())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Started, String> {
        let id = &req.instance_id;
        let user = req.owner.clone();
        let mut pod = pod::build_pod(req, &self.settings)?;
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| self.settings.namespace.clone());
        self.shared.instances.lock().insert(
            id.clone(),
            Instance {
                namespace: namespace.clone(),
                memory_limit: memory_limit(&pod),
                ..Instance::default()
            },
        );

        let additional = req.spec.kubernetes.additional_manifests.iter();
        let persistent = req.spec.kubernetes.persistent_manifests.iter();
        let mut owned = Vec::new();
        for (manifest, keep) in additional
            .map(|m| (m, false))
            .chain(persistent.map(|m| (m, true)))
        {
            let mut manifest = manifest.clone();
            crate::config::template::fill_json(&mut manifest, &user, &req.env)?;
            let made = manifests::apply(&self.client, &manifest, &namespace).await?;
            if let (Some(at), false) = (made, keep) {
                owned.push(at.clone());
                if let Some(i) = self.shared.instances.lock().get_mut(id) {
                    i.owned.push(at);
                }
            }
        }
        if !owned.is_empty() {
            let record = serde_json::to_string(&owned).map_err(|e| e.to_string())?;
            pod.metadata
                .annotations
                .get_or_insert_default()
                .insert(OWNED_ANNOTATION.into(), record);
        }

        let name = naming::pod_name(id);
        let pods = self.pods(&namespace);
        req.progress.stage(super::Stage::Creating("pod"));
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("could not create pod {name}: {e}"))?;
        let image = req.spec.container_image.clone().unwrap_or_default();
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let watched = Watched {
            pods: &pods,
            events: &events,
            name: &name,
            image: &image,
        };
        let ready = waiting::until_ready(watched, self.patience, |stage| {
            if let Some(shown) = stage.shown(&image) {
                req.progress.stage(shown);
            }
        })
        .await?;
        if let Some(i) = self.shared.instances.lock().get_mut(id) {
            i.serving_restarts = Some(crash::restarts(&ready));
        }
        self.follow_log(id, &ready);

        if self.settings.internal_networking {
            let ip = ready
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .ok_or_else(|| format!("pod {name} is ready but has no IP"))?;
            return address(ip, req.spec.port);
        }
        let service = pod::build_service(req, &self.settings, &namespace)?;
        let made = self
            .services(&namespace)
            .create(&PostParams::default(), &service)
            .await
            .map_err(|e| format!("could not create the app's Service: {e}"))?;
        self.service_address(&ready, &made, req.spec.port)
    }

    /// Where the instance's Service is reached: the pod's node at the node port, or the
    /// Service's cluster IP.
    fn service_address(&self, pod: &Pod, service: &Service, port: u16) -> Result<Started, String> {
        let spec = service.spec.as_ref();
        match self.settings.service_type {
            ServiceType::NodePort => {
                let node = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.host_ip.as_deref())
                    .ok_or("the app's pod has no node IP")?;
                let node_port = spec
                    .and_then(|s| s.ports.as_ref())
                    .and_then(|p| p.first())
                    .and_then(|p| p.node_port)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or("the app's Service got no node port")?;
                address(node, node_port)
            }
            ServiceType::ClusterIp => {
                let ip = spec
                    .and_then(|s| s.cluster_ip.as_deref())
                    .ok_or("the app's Service got no cluster IP")?;
                address(ip, port)
            }
        }
    }

    /// Removes the pod, its Service and its non-persistent manifests.
    async fn remove(&self, instance_id: &str) -> Result<(), String> {
        let Instance {
            namespace,
            owned,
            pod_name,
            service_name,
            ..
        } = self
            .shared
            .instances
            .lock()
            .remove(instance_id)
            .unwrap_or_else(|| Instance {
                namespace: self.settings.namespace.clone(),
                ..Instance::default()
            });
        let grace = DeleteParams {
            grace_period_seconds: Some(STOP_GRACE_SECONDS),
            ..DeleteParams::default()
        };
        let mut problems = Vec::new();
        if let Err(e) = gone_is_fine(
            self.pods(&namespace)
                .delete(
                    &pod_name.unwrap_or_else(|| naming::pod_name(instance_id)),
                    &grace,
                )
                .await,
        ) {
            problems.push(format!("pod: {e}"));
        }
        if !self.settings.internal_networking
            && let Err(e) = gone_is_fine(
                self.services(&namespace)
                    .delete(
                        &service_name.unwrap_or_else(|| naming::service_name(instance_id)),
                        &DeleteParams::default(),
                    )
                    .await,
            )
        {
            problems.push(format!("service: {e}"));
        }
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

    /// This realm's pods in every namespace it uses, with the instance each belongs to; pods
    /// being deleted (Terminating) are on their way out and belong to nobody.
    async fn labelled_pods(&self) -> Vec<(String, Pod)> {
        let lp = ListParams::default().labels(&naming::selector(&self.settings.realm_id));
        let mut found = Vec::new();
        for namespace in &self.namespaces {
            match self.pods(namespace).list(&lp).await {
                Ok(list) => found.extend(list.items.into_iter().filter_map(|pod| {
                    if pod.metadata.deletion_timestamp.is_some() {
                        return None;
                    }
                    let id = pod.metadata.labels.as_ref()?.get(INSTANCE_LABEL)?.clone();
                    Some((id, pod))
                })),
                Err(e) => {
                    tracing::warn!(namespace, error = %e, "could not list the app pods")
                }
            }
        }
        found
    }

    /// Remembers a pod found after a restart, so stopping it removes what it owns.
    fn remember(&self, instance_id: &str, pod: &Pod) {
        let owned = annotation(pod, OWNED_ANNOTATION)
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        self.shared.instances.lock().insert(
            instance_id.to_string(),
            Instance {
                namespace: pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.settings.namespace.clone()),
                owned,
                memory_limit: memory_limit(pod),
                ..Instance::default()
            },
        );
    }

    /// Follows the running pod's app container (its first) into the instance's live log, until
    /// the instance is forgotten.
    fn follow_log(&self, instance_id: &str, pod: &Pod) {
        let (Some(name), Some(namespace)) = (&pod.metadata.name, &pod.metadata.namespace) else {
            return;
        };
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone());
        let mut instances = self.shared.instances.lock();
        let Some(instance) = instances.get_mut(instance_id) else {
            return;
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let target = log_follow::Followed {
            pods: self.pods(namespace),
            pod: name.clone(),
            container,
        };
        tokio::spawn(log_follow::follow(
            target,
            instance.live.clone(),
            LOG_LINES_KEPT,
            stop.clone(),
        ));
        // A follow already running (the instance adopted twice) ends here.
        instance.following = Some(stop.drop_guard());
    }

    /// Where an adopted pod is reached, when it runs and can be.
    async fn address_of(&self, id: &str, pod: &Pod) -> Option<SocketAddr> {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running {
            return None;
        }
        let port: u16 = annotation(pod, PORT_ANNOTATION)
            .and_then(|p| p.parse().ok())
            .unwrap_or(3838);
        if self.settings.internal_networking {
            let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
            return address(ip, port).ok().map(|s| s.address);
        }
        let namespace = pod.metadata.namespace.as_deref()?;
        let service = self
            .services(namespace)
            .get(&naming::service_name(id))
            .await
            .ok()?;
        self.service_address(pod, &service, port)
            .ok()
            .map(|s| s.address)
    }
}

/// The pod's memory limit: its containers' limits summed, when every container has one.
fn memory_limit(pod: &Pod) -> Option<u64> {
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .map(|c| {
            let quantity = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
            super::resources::kube_memory_bytes(&quantity.0)
        })
        .sum()
}

fn annotation(pod: &Pod, key: &str) -> Option<String> {
    pod.metadata.annotations.as_ref()?.get(key).cloned()
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
                let kept: Vec<String> = why.lines().skip(1).map(str::to_string).collect();
                let namespace = self.namespace_of(&req.instance_id);
                // The same live log stays, so whoever follows it (the log files) keeps it.
                let live = self
                    .shared
                    .instances
                    .lock()
                    .get(&req.instance_id)
                    .map(|i| i.live.clone());
                if let Err(e) = self.remove(&req.instance_id).await {
                    tracing::warn!(instance = %req.instance_id, error = %e, "cleanup after a failed start was incomplete");
                }
                // Kept for the failure page; a later stop looks in the same namespace.
                self.shared.instances.lock().insert(
                    req.instance_id.clone(),
                    Instance {
                        namespace,
                        kept,
                        live: live.unwrap_or_else(|| Arc::new(LogBuffer::new(LOG_LINES_KEPT))),
                        ..Instance::default()
                    },
                );
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
        self.labelled_pods()
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    async fn health(&self, instance_id: &str) -> Health {
        let pods = self.pods(&self.namespace_of(instance_id));
        let name = self.pod_name_of(instance_id);
        let pod = match pods.get(&name).await {
            Ok(pod) => pod,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.shared.stop_serving(instance_id);
                return Health::Exited("was stopped: its pod is gone".into());
            }
            Err(_) => return Health::Unknown,
        };
        // An instance not known here (adopted by another replica) is measured from now.
        let baseline = self
            .shared
            .serving_restarts(instance_id)
            .unwrap_or_else(|| crash::restarts(&pod));
        match crash::crash_of(&pod, baseline) {
            None => Health::Running,
            Some(crash::Crash { how, previous_run }) => {
                let output = waiting::last_output(&pods, &name, previous_run).await;
                self.shared.keep_output(instance_id, output);
                self.shared.stop_serving(instance_id);
                Health::Exited(how)
            }
        }
    }

    fn exits(&self) -> Option<broadcast::Receiver<Exit>> {
        let receiver = self.exits.subscribe();
        self.watching.call_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            for namespace in &self.namespaces {
                runtime.spawn(exit_watch::follow(
                    Arc::downgrade(&self.shared),
                    self.pods(namespace),
                    namespace.clone(),
                    self.settings.realm_id.clone(),
                    self.exits.clone(),
                ));
            }
        });
        Some(receiver)
    }

    /// The output of a run that crashed or failed to start, else the live log's last lines
    /// (an app that runs but never answered, say).
    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        let instances = self.shared.instances.lock();
        let Some(instance) = instances.get(instance_id) else {
            return Vec::new();
        };
        if instance.kept.is_empty() {
            return instance.live.last(n);
        }
        let kept = &instance.kept;
        kept[kept.len().saturating_sub(n)..].to_vec()
    }

    fn log(&self, instance_id: &str) -> Option<Arc<LogBuffer>> {
        Some(self.shared.instances.lock().get(instance_id)?.live.clone())
    }

    /// From the metrics API; `None` without metrics-server or for an instance not run here.
    async fn usage(&self, instance_id: &str) -> Option<ResourceUsage> {
        let (namespace, limit) = {
            let instances = self.shared.instances.lock();
            let i = instances.get(instance_id)?;
            (i.namespace.clone(), i.memory_limit)
        };
        let pod = self.pod_name_of(instance_id);
        let usage = pod_metrics::read(&self.client, &namespace, &pod, &self.metrics_quiet).await?;
        Some(ResourceUsage {
            memory_limit_bytes: limit,
            ..usage
        })
    }

    /// The running pods of this realm are adopted; the rest (failed, or never ready) removed.
    fn outlives_server(&self) -> bool {
        true
    }

    async fn recover(&self) -> Vec<Recovered> {
        let mut found = Vec::new();
        for (id, pod) in self.labelled_pods().await {
            self.remember(&id, &pod);
            let spec = annotation(&pod, SPEC_LABEL);
            // A pod in CrashLoopBackOff is Running by phase but serves nobody.
            let crashed = crash::crash_of(&pod, crash::restarts(&pod)).is_some();
            let address = match crashed {
                true => None,
                false => self.address_of(&id, &pod).await,
            };
            let (Some(address), Some(spec_id)) = (address, spec) else {
                tracing::info!(instance = %id, "removing a pod an earlier run left unfinished");
                if let Err(e) = self.remove(&id).await {
                    tracing::warn!(instance = %id, error = %e, "cannot remove leftover");
                }
                continue;
            };
            if let Some(i) = self.shared.instances.lock().get_mut(&id) {
                i.serving_restarts = Some(crash::restarts(&pod));
            }
            self.follow_log(&id, &pod);
            found.push(Recovered {
                instance_id: id,
                spec_id,
                user: annotation(&pod, USER_ANNOTATION).unwrap_or_default(),
                address,
                spec_hash: annotation(&pod, SPEC_HASH_ANNOTATION).unwrap_or_default(),
                created_unix_ms: pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| u64::try_from(t.0.as_millisecond()).ok())
                    .unwrap_or(0),
            });
        }
        if self.adopt_shinyproxy {
            found.extend(self.recover_shinyproxy().await);
        }
        found
    }

    async fn remove_leftovers(&self) {
        for (id, pod) in self.labelled_pods().await {
            tracing::info!(instance = %id, "removing a pod left by an earlier run");
            self.remember(&id, &pod);
            if let Err(e) = self.remove(&id).await {
                tracing::warn!(instance = %id, error = %e, "cannot remove leftover");
            }
        }
    }

    fn spec_hash(&self, spec: &AppSpec) -> Option<String> {
        Some(super::spec_fingerprint(spec))
    }
}
