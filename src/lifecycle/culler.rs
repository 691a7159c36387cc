//! Periodic checks over instances. Every replica watches its own: crashed apps are marked
//! failed, and failures are forgotten after a while. The leader (see `lease`) judges every
//! replica's: idle ones (no traffic on any replica for `heartbeat-timeout`) and old ones
//! (`max-lifetime`) are stopped, and the instances of a replica that died are taken over where
//! they still run (containers, pods) or forgotten where they died with it (processes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::lease::Lease;
use super::{InstanceStatus, Manager, StopReason};
use crate::backend::Health;
use crate::clock::Instant;

/// How long a failed launch stays visible to its user before it is forgotten.
const KEEP_FAILED_FOR: Duration = Duration::from_secs(15 * 60);
/// How often the leader reads every replica's instances and activity from the store.
const SHARED_VIEW_EVERY: Duration = Duration::from_secs(5);
/// How often instances of a backend that reports exits by itself are asked about anyway.
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// How often the leader looks for instances of replicas that died.
const ORPHANS_EVERY: Duration = Duration::from_secs(5);

/// Every this many orphan passes, the backend is listed for instances with no record.
const UNRECORDED_EVERY_PASSES: u64 = 6;

/// What the leader remembers between its passes over orphans.
#[derive(Default)]
struct Pass {
    count: u64,
    /// Instances found with no record on the last look.
    unrecorded: HashSet<String>,
}

/// What ends an instance that nobody stops: idleness and age.
#[derive(Clone, Copy)]
struct Limits {
    heartbeat_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
}

impl Limits {
    /// `None` for a pool's members, which its scaler removes, never for idleness.
    fn of(spec: &crate::config::AppSpec) -> Option<Self> {
        spec.pool.is_none().then_some(Self {
            heartbeat_timeout: spec.heartbeat_timeout,
            max_lifetime: spec.max_lifetime,
        })
    }
}

enum Verdict {
    Crashed(String),
    ForgetFailure,
}

pub(super) async fn run(manager: Arc<Manager>, stop: CancellationToken) {
    // Check often enough that a timeout is honoured to within a second or so, whatever the
    // configured heartbeat rate.
    let every = manager
        .config()
        .proxy
        .heartbeat_rate
        .clamp(Duration::from_millis(200), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut orphans_checked: Option<Instant> = None;
    let mut pass = Pass::default();
    let mut shared = SharedView::default();
    let event_driven = manager.backend.exits().is_some();
    let mut polled: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // A backend that reports exits by itself is asked about each instance only now and
        // then, in case a report was lost.
        let poll_health = !event_driven || polled.is_none_or(|t| t.elapsed() >= SAFETY_POLL);
        if poll_health {
            polled = Some(Instant::now());
        }
        for (id, verdict) in judge_own(&manager, poll_health).await {
            match verdict {
                Verdict::Crashed(how) => manager.crashed(&id, &how).await,
                Verdict::ForgetFailure => {
                    let gone = manager
                        .entries
                        .lock()
                        .remove(&id)
                        .map(|e| e.view.borrow().clone());
                    if let Some(view) = gone {
                        let _ = manager.registry.remove(&view).await;
                    }
                }
            }
        }
        if !manager.is_leader() {
            continue;
        }
        if shared
            .fetched
            .is_none_or(|t| t.elapsed() >= SHARED_VIEW_EVERY)
        {
            shared.refresh(&manager).await;
        }
        for (id, why) in judge_all(&manager, &shared) {
            manager.stop(&id, why).await;
        }
        if orphans_checked.is_none_or(|t| t.elapsed() >= ORPHANS_EVERY) {
            orphans_checked = Some(Instant::now());
            take_over_orphans(&manager, &mut pass).await;
        }
    }
}

async fn judge_own(manager: &Manager, poll_health: bool) -> Vec<(String, Verdict)> {
    // A seat's claim has no backend instance to ask about: its container is watched instead.
    let own: Vec<(String, InstanceStatus, Duration)> = manager
        .entries
        .lock()
        .iter()
        .filter(|(_, e)| !e.claim)
        .map(|(id, e)| (id.clone(), e.view.borrow().status, e.created.elapsed()))
        .collect();
    let mut verdicts = Vec::new();
    for (id, status, age) in own {
        match status {
            InstanceStatus::Running if poll_health => {
                if let Health::Exited(how) = manager.backend.health(&id).await {
                    verdicts.push((id, Verdict::Crashed(how)));
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

/// Every replica's instances and their latest activity, as the leader last read them: read
/// every few seconds rather than on every tick, so the leader's load on Redis does not grow
/// with the tick rate.
#[derive(Default)]
struct SharedView {
    records: Vec<super::registry::Record>,
    activity: HashMap<String, u64>,
    fetched: Option<Instant>,
}

impl SharedView {
    async fn refresh(&mut self, manager: &Manager) {
        self.fetched = Some(Instant::now());
        if !manager.has_peers() {
            return;
        }
        // Unreadable: keep the last view; culling from it is no worse than pausing.
        if let (Ok(records), Ok(activity)) = (
            manager.registry.all().await,
            manager.registry.activity().await,
        ) {
            self.records = records;
            self.activity = activity;
        }
    }
}

/// Which running instances, on any replica, are idle or too old.
fn judge_all(manager: &Manager, shared: &SharedView) -> Vec<(String, StopReason)> {
    // This replica's own instances are judged on its monotonic clock; others' on the wall
    // clock they wrote, with their activity as every replica saw it.
    let mut verdicts = Vec::new();
    // This replica's instances keep the limits of the spec they were started with, so an app
    // removed or changed by a config reload still has its running instances culled as before.
    let own: Vec<(String, Option<Limits>, Duration)> = manager
        .entries
        .lock()
        .iter()
        .filter(|(_, e)| e.view.borrow().status == InstanceStatus::Running)
        // Instances of nobody (pool members, seat containers) are never idle for a user.
        .filter(|(_, e)| !e.view.borrow().user.is_empty())
        .map(|(id, e)| (id.clone(), Limits::of(&e.spec), e.created.elapsed()))
        .collect();
    let config = manager.config();
    let (records, activity) = (&shared.records, &shared.activity);
    let now = crate::clock::now_unix_ms();
    let idle_elsewhere = |id: &str| {
        activity
            .get(id)
            .map(|ms| Duration::from_millis(now.saturating_sub(*ms)))
    };
    let own_ids: HashSet<&str> = own.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut candidates: Vec<(String, Option<Limits>, Duration, Option<Duration>)> = own
        .iter()
        .map(|(id, limits, age)| {
            let here = manager.routes.get(id).map(|r| r.idle_for());
            let idle = match (here, idle_elsewhere(id)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (id.clone(), *limits, *age, idle)
        })
        .collect();
    candidates.extend(
        records
            .iter()
            .filter(|r| r.view.status == InstanceStatus::Running)
            .filter(|r| !own_ids.contains(r.view.id.as_str()))
            .map(|r| {
                let age = Duration::from_millis(now.saturating_sub(r.view.created_unix_ms));
                let here = manager.routes.get(&r.view.id).map(|x| x.idle_for());
                let idle = [here, idle_elsewhere(&r.view.id), Some(age)]
                    .into_iter()
                    .flatten()
                    .min();
                let limits = config.proxy.spec(&r.view.spec_id).and_then(Limits::of);
                (r.view.id.clone(), limits, age, idle)
            }),
    );
    for (id, limits, age, idle) in candidates {
        let Some(limits) = limits else {
            continue;
        };
        if let (Some(limit), Some(idle)) = (limits.heartbeat_timeout, idle)
            && idle >= limit
        {
            verdicts.push((id, StopReason::Idle));
        } else if limits.max_lifetime.is_some_and(|max| age >= max) {
            verdicts.push((id, StopReason::MaxLifetime));
        }
    }
    verdicts
}

/// Instances whose replica died: taken over where they still run, forgotten otherwise. And
/// instances that run with no record at all (the store lost it, and the replica that ran them
/// is gone too): adopted with `recover-running-proxies`, removed otherwise. A replica writes its
/// instances again within seconds of the store losing them, so an instance is judged
/// unrecorded only when two passes in a row find no record.
async fn take_over_orphans(manager: &Arc<Manager>, pass: &mut Pass) {
    if !manager.has_peers() {
        return;
    }
    pass.count += 1;
    // Listing the backend asks it about every instance: only when needed, or now and then.
    let look_for_unrecorded = pass.count.is_multiple_of(UNRECORDED_EVERY_PASSES);
    let (Ok(records), Ok(alive)) = (
        manager.registry.all().await,
        Lease::alive(&manager.registry).await,
    ) else {
        return;
    };
    let recorded: HashSet<String> = records.iter().map(|r| r.view.id.clone()).collect();
    let orphans: Vec<_> = records
        .into_iter()
        .filter(|r| !alive.contains(&r.replica))
        .collect();
    let running =
        if manager.backend.outlives_server() && (!orphans.is_empty() || look_for_unrecorded) {
            manager.backend.recover().await
        } else {
            Vec::new()
        };
    let orphan_ids: HashSet<&str> = orphans.iter().map(|r| r.view.id.as_str()).collect();
    let own: HashSet<String> = manager.entries.lock().keys().cloned().collect();
    let mut adopt = Vec::new();
    let mut seen_unrecorded = HashSet::new();
    for r in running {
        if orphan_ids.contains(r.instance_id.as_str()) {
            adopt.push(r);
        } else if !recorded.contains(&r.instance_id) && !own.contains(&r.instance_id) {
            if pass.unrecorded.contains(&r.instance_id) {
                if manager.config().proxy.recover_running_proxies {
                    adopt.push(r);
                } else {
                    tracing::info!(instance = %r.instance_id, "removing an instance no replica knows of");
                    let backend = manager.backend.clone();
                    tokio::spawn(async move { backend.stop(&r.instance_id).await });
                }
            } else {
                seen_unrecorded.insert(r.instance_id);
            }
        }
    }
    if look_for_unrecorded {
        pass.unrecorded = seen_unrecorded;
    }
    let adopted: HashSet<String> = adopt.iter().map(|r| r.instance_id.clone()).collect();
    for orphan in orphans.iter().filter(|o| !adopted.contains(&o.view.id)) {
        tracing::info!(instance = %orphan.view.id, replica = %orphan.replica, "forgetting an instance whose replica died with it");
        manager.routes.remove(&orphan.view.id);
        let _ = manager.registry.remove(&orphan.view).await;
    }
    if !adopt.is_empty() {
        tracing::info!(
            instances = adopt.len(),
            "taking over instances no live replica runs"
        );
        manager.adopt(adopt).await;
    }
}
