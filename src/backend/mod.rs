//! Backends run app instances. A backend only creates, inspects, lists and removes instances and
//! says where each listens; it knows nothing about users, sessions or HTTP.

pub mod kubernetes;
mod log_buffer;
pub mod process;
pub mod supervisor;

pub use log_buffer::LogBuffer;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::AppSpec;

/// Everything a backend needs to start one instance.
#[derive(Clone)]
pub struct LaunchRequest {
    pub instance_id: String,
    pub spec: AppSpec,
    /// Environment for the app: identity variables and the spec's `container-env`.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for LaunchRequest {
    // The environment may hold the user's access token (SHINYPROXY_OIDC_ACCESS_TOKEN) and
    // secrets from container-env: only the names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchRequest")
            .field("instance_id", &self.instance_id)
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

/// An instance found after a restart: (instance id, spec id, user, address).
pub type Recovered = (String, String, String, SocketAddr);

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
    /// How far a starting instance has come (e.g. "pulling image"), for the app page.
    fn stage(&self, _instance_id: &str) -> Option<String> {
        None
    }
    /// The instances an earlier run of vestibule left running, found by the backend's labels.
    async fn recover(&self) -> Vec<Recovered> {
        Vec::new()
    }
}
