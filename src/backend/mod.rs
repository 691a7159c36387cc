//! Backends run app instances. A backend only creates, inspects, lists and removes instances and
//! says where each listens; it knows nothing about users, sessions or HTTP.

pub mod docker;
pub mod kubernetes;
pub mod listener_owner;
mod log_buffer;
pub mod log_file;
mod proc_stats;
pub mod process;
pub mod resources;
pub mod shinyproxy;
pub mod supervisor;
pub mod swarm;

pub use log_buffer::LogBuffer;
pub use resources::ResourceUsage;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::AppSpec;

/// Everything a backend needs to start one instance.
#[derive(Clone)]
pub struct LaunchRequest {
    pub instance_id: String,
    /// The user the instance is for (recorded on it, so recovery can hand it back).
    pub owner: String,
    pub spec: AppSpec,
    /// Environment for the app: identity variables and the spec's `container-env`.
    pub env: BTreeMap<String, String>,
    /// Where the backend says which stage the launch has reached (shown on the app page).
    pub progress: Progress,
}

/// How far a launch has come: what the user sees on the app page while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Queued,
    /// `percent` once the engine reports the download's size.
    PullingImage {
        image: String,
        percent: Option<u64>,
    },
    /// The container, service or pod is being created.
    Creating(&'static str),
    WaitingForNode,
    Scheduled,
    /// The backend starts the container (or pod's container) and waits for it to run.
    StartingInstance(&'static str),
    /// Lifecycle hands the launch to the backend.
    Starting,
    /// An orchestrator's own state while it starts the instance (a Swarm task's state).
    Orchestrator(String),
    /// Lifecycle's readiness wait: the instance runs, the app has not answered yet.
    WaitingForApp,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Queued => f.write_str("queued"),
            Stage::PullingImage {
                image,
                percent: Some(p),
            } => write!(f, "pulling the image {image}: {p}%"),
            Stage::PullingImage { image, .. } => write!(f, "pulling the image {image}"),
            Stage::Creating(what) => write!(f, "creating the {what}"),
            Stage::WaitingForNode => f.write_str("waiting for a node"),
            Stage::Scheduled => f.write_str("scheduled"),
            Stage::StartingInstance(what) => write!(f, "starting the {what}"),
            Stage::Starting => f.write_str("starting the app"),
            Stage::Orchestrator(state) => write!(f, "waiting for the swarm task ({state})"),
            Stage::WaitingForApp => f.write_str("waiting for the app to answer"),
        }
    }
}

/// Where a backend reports a launch's [`Stage`].
#[derive(Clone)]
pub struct Progress(std::sync::Arc<dyn Fn(Stage) + Send + Sync>);

impl Progress {
    pub fn new(report: impl Fn(Stage) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(report))
    }

    /// A reporter nobody listens to.
    pub fn ignored() -> Self {
        Self::new(|_| {})
    }

    pub fn stage(&self, stage: Stage) {
        (self.0)(stage)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl LaunchRequest {
    /// What a shared instance is part of (`pool` or `seats`), for its labels; `None` for a
    /// user's own instance.
    pub fn shared_as(&self) -> Option<&'static str> {
        if !self.owner.is_empty() {
            return None;
        }
        if self.spec.pool.is_some() {
            Some("pool")
        } else if self.spec.seats.is_some() {
            Some("seats")
        } else {
            None
        }
    }
}

/// ShinyProxy's label on its seat containers, set on ours too so its tooling recognises them.
pub const SP_DELEGATE_LABEL: &str = "openanalytics.eu/sp-delegate-proxy";

impl std::fmt::Debug for LaunchRequest {
    // The environment may hold the user's access token (SHINYPROXY_OIDC_ACCESS_TOKEN) and
    // secrets from container-env: only the names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchRequest")
            .field("instance_id", &self.instance_id)
            .field("owner", &self.owner)
            .field("spec", &self.spec.id)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a started instance listens.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub address: SocketAddr,
}

/// An instance an earlier run of the server left running, found again after a restart.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub instance_id: String,
    pub spec_id: String,
    pub user: String,
    pub address: SocketAddr,
    /// The fingerprint of the app's settings it was started with.
    pub spec_hash: String,
    pub created_unix_ms: u64,
}

/// An instance that ended on its own, as its backend noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub instance_id: String,
    /// How it ended, for a person ("exited with code 3").
    pub how: String,
}

/// What a backend knows of an instance right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Running,
    /// The instance is gone on its own; the text says how (exit code or signal).
    Exited(String),
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("could not start the app: {0}")]
    Start(String),
    #[error("could not stop instance {id}: {reason}")]
    Stop { id: String, reason: String },
    #[error("this backend is not available: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Starts the instance and returns as soon as it has an address; readiness is the caller's
    /// business.
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError>;
    /// Stops the instance and everything it started. Stopping an unknown id is not an error.
    async fn stop(&self, instance_id: &str) -> Result<(), BackendError>;
    /// Ids of the instances this backend currently runs.
    async fn list(&self) -> Vec<String>;
    /// Whether the instance still runs.
    async fn health(&self, instance_id: &str) -> Health;
    /// The last lines the instance wrote to stdout/stderr, oldest first.
    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String>;
    /// The instance's live log, for followers (the admin console, log files); `None` for an
    /// instance this backend does not follow.
    fn log(&self, _instance_id: &str) -> Option<std::sync::Arc<LogBuffer>> {
        None
    }
    /// What the instance uses of CPU and memory now; `None` when this backend cannot tell.
    async fn usage(&self, _instance_id: &str) -> Option<ResourceUsage> {
        None
    }
    /// Takes over the running instances an earlier run left (`recover-running-proxies`).
    /// Backends whose instances die with the server find none.
    async fn recover(&self) -> Vec<Recovered> {
        Vec::new()
    }
    /// Removes whatever an earlier run left behind (after a crash, or when not recovering).
    async fn remove_leftovers(&self) {}
    /// Exits as they happen, for a backend that notices them by itself (a process's exit, the
    /// end of a container's log stream). Lifecycle then asks [`Backend::health`] of running
    /// instances only now and then, as a safety net; a backend without this is asked every
    /// second or so.
    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<Exit>> {
        None
    }
    /// Whether instances keep running when this server process ends (containers, pods), so
    /// another replica can take them over; processes die with it.
    fn outlives_server(&self) -> bool {
        false
    }
    /// The fingerprint of an app's settings that this backend labels instances with.
    fn spec_hash(&self, _spec: &AppSpec) -> Option<String> {
        None
    }
    /// Headers sent to this instance with every proxied request, besides the spec's (a
    /// per-instance secret the app may check).
    fn instance_headers(&self, _instance_id: &str) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Once the app answers: whether what answered is the instance itself, not another
    /// process that took its address (a local port anyone can bind). `Err` says what was found.
    async fn check_listener(&self, _instance_id: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A short fingerprint of an app's settings, recorded on each instance so an adopted one can be
/// told apart from one the current config would start. FNV-1a: stable across builds, unlike
/// std's hasher.
pub fn spec_fingerprint(spec: &AppSpec) -> String {
    let text = format!("{spec:?}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
