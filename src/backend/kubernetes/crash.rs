//! Whether a pod that was serving has crashed. Its phase alone does not say: with restartPolicy
//! Always or OnFailure (a pod patch may set either) a crashed container is restarted, so the
//! pod stays Running while its app is gone (CrashLoopBackOff) or has lost its state (a restart).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// How a pod's app ended, and where its last output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// For a person, after "it": "crashed with exit code 1 and was restarted".
    pub how: String,
    /// The output is that of the run before the current one (`previous=true`).
    pub previous_run: bool,
}

/// The app container's restart count: the baseline a later crash is measured against.
pub fn restarts(pod: &Pod) -> i32 {
    app_container(pod).map(|c| c.restart_count).unwrap_or(0)
}

fn app_container(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn last_exit_code(c: &ContainerStatus) -> Option<i32> {
    Some(c.last_state.as_ref()?.terminated.as_ref()?.exit_code)
}

/// Judges a pod that was Ready with `restarts_when_ready` restarts; `None` while it serves.
pub fn crash_of(pod: &Pod, restarts_when_ready: i32) -> Option<Crash> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(Crash {
            how: "was stopped: its pod is being deleted".into(),
            previous_run: false,
        });
    }
    let status = pod.status.as_ref();
    let container = app_container(pod);
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return Some(Crash {
            how: format!("exited with code {}", t.exit_code),
            previous_run: false,
        });
    }
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Failed") => {
            return Some(Crash {
                how: "failed: its pod failed".into(),
                previous_run: false,
            });
        }
        Some("Succeeded") => {
            return Some(Crash {
                how: "exited: its pod completed".into(),
                previous_run: false,
            });
        }
        _ => {}
    }
    let c = container?;
    let code = last_exit_code(c)
        .map(|code| format!(" with exit code {code}"))
        .unwrap_or_default();
    let waiting = state
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref());
    if waiting == Some("CrashLoopBackOff") {
        return Some(Crash {
            how: format!("keeps crashing (CrashLoopBackOff, last exit{code})"),
            previous_run: true,
        });
    }
    if c.restart_count > restarts_when_ready {
        return Some(Crash {
            how: format!(
                "crashed{code} and was restarted ({} restarts), losing its users' sessions",
                c.restart_count
            ),
            previous_run: true,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("a pod")
    }

    fn container(restarts: i32, state: serde_json::Value) -> serde_json::Value {
        json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": "i",
        "imageID": "", "ready": true, "restartCount": restarts, "state": state,
        "lastState": if restarts > 0 {
            json!({"terminated": {"exitCode": 137}})
        } else {
            json!({})
        }}]})
    }

    #[test]
    fn a_running_pod_that_restarted_since_it_was_ready_has_crashed() {
        let running = json!({"running": {}});
        assert_eq!(crash_of(&pod(container(0, running.clone())), 0), None);
        assert_eq!(
            crash_of(&pod(container(2, running.clone())), 2),
            None,
            "restarts before readiness are not a crash"
        );
        let crash = crash_of(&pod(container(3, running)), 2).expect("a crash");
        assert!(crash.how.contains("exit code 137"), "{}", crash.how);
        assert!(crash.previous_run);
    }

    #[test]
    fn crash_loop_back_off_in_a_running_phase_has_crashed() {
        let waiting = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let crash = crash_of(&pod(container(1, waiting)), 1).expect("a crash");
        assert!(crash.how.contains("CrashLoopBackOff"), "{}", crash.how);
    }
}
