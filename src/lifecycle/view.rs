//! What pages and the API see of an instance.

use serde::{Deserialize, Serialize};

use crate::backend::Stage;
use crate::config::AppSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
}

impl InstanceStatus {
    /// The lowercase name the API and the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            InstanceStatus::Starting => "starting",
            InstanceStatus::Running => "running",
            InstanceStatus::Stopping => "stopping",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Failed => "failed",
        }
    }

    pub fn counts_against_limits(self) -> bool {
        matches!(self, InstanceStatus::Starting | InstanceStatus::Running)
    }

    pub fn is_final(self) -> bool {
        matches!(self, InstanceStatus::Stopped | InstanceStatus::Failed)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub spec_id: String,
    pub display_name: String,
    pub user: String,
    pub status: InstanceStatus,
    /// While starting: the stage the launch has reached, in words.
    pub stage: Option<String>,
    /// When failed: why, for a person.
    pub reason: Option<String>,
    /// The app's last log lines (on failure, and while it starts).
    pub log_lines: Vec<String>,
    pub public_path: String,
    /// The name the user gave this instance of the app; `_` is the default one (ShinyProxy's
    /// named instances, `/app_i/<app>/<name>/`).
    #[serde(default = "default_instance_name")]
    pub instance_name: String,
    /// The app's parameters as the user chose them.
    #[serde(default)]
    pub parameters: Vec<crate::config::parameters::ChosenName>,
    pub created_unix_ms: u64,
    /// When it first answered (0 until then): ShinyProxy's `startupTimestamp`.
    #[serde(default)]
    pub started_unix_ms: u64,
    pub age_secs: u64,
    /// Seconds since the last traffic, for running instances.
    pub idle_secs: Option<u64>,
}

/// The name of a user's default instance of an app, as in ShinyProxy.
pub const DEFAULT_INSTANCE: &str = "_";

fn default_instance_name() -> String {
    DEFAULT_INSTANCE.to_string()
}

impl InstanceView {
    pub(super) fn starting(id: &str, spec: &AppSpec, user: &str, public_path: &str) -> Self {
        Self {
            id: id.to_string(),
            spec_id: spec.id.clone(),
            display_name: spec.display_name.clone(),
            user: user.to_string(),
            status: InstanceStatus::Starting,
            stage: Some(Stage::Queued.to_string()),
            reason: None,
            log_lines: Vec::new(),
            public_path: public_path.to_string(),
            instance_name: DEFAULT_INSTANCE.to_string(),
            parameters: Vec::new(),
            created_unix_ms: crate::clock::now_unix_ms(),
            started_unix_ms: 0,
            age_secs: 0,
            idle_secs: None,
        }
    }

    pub(super) fn set_stage(&mut self, stage: Stage) {
        if self.status == InstanceStatus::Starting {
            self.stage = Some(stage.to_string());
        }
    }

    pub(super) fn set_running(&mut self) {
        self.status = InstanceStatus::Running;
        self.stage = None;
        if self.started_unix_ms == 0 {
            self.started_unix_ms = crate::clock::now_unix_ms();
        }
    }

    pub(super) fn set_failed(&mut self, reason: String, log_lines: Vec<String>) {
        self.status = InstanceStatus::Failed;
        self.stage = None;
        self.reason = Some(reason);
        self.log_lines = log_lines;
    }

    pub(super) fn set_stopping(&mut self) {
        if !self.status.is_final() {
            self.status = InstanceStatus::Stopping;
        }
    }

    pub(super) fn set_stopped(&mut self) {
        if self.status != InstanceStatus::Failed {
            self.status = InstanceStatus::Stopped;
        }
    }
}
