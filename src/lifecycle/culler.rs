//! Periodic checks over all instances: crashed apps are marked failed, idle ones (no traffic for
//! `heartbeat-timeout`) and old ones (`max-lifetime`) are stopped, and failures are forgotten
//! after a while.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{FAILURE_LOG_LINES, InstanceStatus, Manager, StopReason};
use crate::backend::Health;

/// How long a failed launch stays visible to its user before it is forgotten.
const KEEP_FAILED_FOR: Duration = Duration::from_secs(15 * 60);

enum Verdict {
    Crashed(String),
    Idle,
    TooOld,
    ForgetFailure,
}

pub(super) async fn run(manager: Arc<Manager>, stop: CancellationToken) {
    // Check often enough that a timeout is honoured to within a second or so, whatever the
    // configured heartbeat rate.
    let every = manager
        .config
        .proxy
        .heartbeat_rate
        .clamp(Duration::from_millis(200), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !is_leader() {
            continue;
        }
        for (id, verdict) in judge(&manager).await {
            match verdict {
                Verdict::Crashed(how) => {
                    let app = manager.entries.lock().get(&id).map(|e| e.spec.id.clone());
                    if let Some(app) = app {
                        manager.metrics.stopped(&id, &app, "crashed");
                    }
                    let lines = manager.backend.last_log_lines(&id, FAILURE_LOG_LINES);
                    manager.routes.remove(&id);
                    manager.update(&id, |v| {
                        v.set_failed(format!("the app stopped unexpectedly: it {how}"), lines)
                    });
                    let _ = manager.backend.stop(&id).await;
                }
                Verdict::Idle => {
                    manager.stop(&id, StopReason::Idle).await;
                }
                Verdict::TooOld => {
                    manager.stop(&id, StopReason::MaxLifetime).await;
                }
                Verdict::ForgetFailure => {
                    manager.entries.lock().remove(&id);
                }
            }
        }
    }
}

/// Global tasks run in one place. With one replica that is always here; HA only changes how
/// this is answered.
fn is_leader() -> bool {
    true
}

struct Candidate {
    id: String,
    status: InstanceStatus,
    idle_limit: Option<Duration>,
    max_lifetime: Option<Duration>,
    age: Duration,
}

async fn judge(manager: &Manager) -> Vec<(String, Verdict)> {
    let candidates: Vec<Candidate> = {
        let entries = manager.entries.lock();
        entries
            .iter()
            .map(|(id, e)| Candidate {
                id: id.clone(),
                status: e.view.borrow().status,
                idle_limit: e.spec.heartbeat_timeout,
                max_lifetime: e.spec.max_lifetime,
                age: e.created.elapsed(),
            })
            .collect()
    };
    let mut verdicts = Vec::new();
    for Candidate {
        id,
        status,
        idle_limit,
        max_lifetime,
        age,
    } in candidates
    {
        match status {
            InstanceStatus::Running => {
                if let Health::Exited(how) = manager.backend.health(&id).await {
                    verdicts.push((id, Verdict::Crashed(how)));
                    continue;
                }
                let idle = manager.routes.get(&id).map(|r| r.idle_for());
                if let (Some(limit), Some(idle)) = (idle_limit, idle)
                    && idle >= limit
                {
                    verdicts.push((id, Verdict::Idle));
                } else if max_lifetime.is_some_and(|max| age >= max) {
                    verdicts.push((id, Verdict::TooOld));
                }
            }
            InstanceStatus::Failed if age >= KEEP_FAILED_FOR => {
                verdicts.push((id, Verdict::ForgetFailure));
            }
            _ => {}
        }
    }
    verdicts
}
