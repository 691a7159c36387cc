//! Pools: instances shared by everyone who may open an app, balanced per request (the data
//! path's `proxy::pool`) and sized by a scaler per pool that follows their load.
//!
//! Each replica scales its own members from the load it sees (as Posit Connect does per node):
//! `max-instances` is per replica.

mod autoscaler;

use autoscaler::Autoscaler;

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{InstanceStatus, Manager, StopReason};
use crate::clock::Instant;
use crate::config::AppSpec;
use crate::proxy::pool::Pool;

/// How often the load is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How often the scaler decides, unless a held request pokes it.
const DECIDE_EVERY: Duration = Duration::from_secs(1);
/// How often clients whose rate limit has refilled are forgotten.
const FORGET_CLIENTS_EVERY: Duration = Duration::from_secs(60);
/// The longest a start that keeps failing waits before the next try.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A pool's members, as lifecycle counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Members {
    pub starting: u32,
    pub ready: u32,
    pub draining: u32,
}

pub(super) async fn run(manager: Arc<Manager>, spec: AppSpec, stop: CancellationToken) {
    let (Some(settings), Some(pool)) = (spec.pool.clone(), manager.pools.get(&spec.id).cloned())
    else {
        return;
    };
    let mut scaler = Autoscaler::new(settings);
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut decided = Instant::now();
    let mut forgot = Instant::now();
    let mut failures_seen = 0u32;
    let mut next_start = Instant::now();
    loop {
        let poked = tokio::select! {
            _ = stop.cancelled() => return,
            _ = sample.tick() => false,
            _ = pool.poked() => true,
        };
        let now = Instant::now();
        scaler.record(now, pool.load());
        if !poked && now.duration_since(decided) < DECIDE_EVERY {
            continue;
        }
        decided = now;
        if now.duration_since(forgot) >= FORGET_CLIENTS_EVERY {
            forgot = now;
            pool.forget_quiet_clients();
        }
        let members = manager.pool_members(&spec.id);
        let failures = manager.pool_start_failures(&spec.id);
        if failures > failures_seen {
            // Each failure in a row doubles the pause before the next start.
            let pause = Duration::from_secs(1u64 << failures.min(5)).min(MAX_BACKOFF);
            next_start = now + pause;
            failures_seen = failures;
        } else if failures == 0 {
            failures_seen = 0;
        }
        let decision = scaler.decide(now, members.ready, pool.queued());
        let actual = members.ready + members.starting;
        if decision.want > actual && now >= next_start {
            let add = decision.want - actual;
            tracing::info!(app = %spec.id, from = actual, to = decision.want, panic = decision.panic, load = pool.load(), queued = pool.queued(), "pool scales out");
            manager.metrics().pool_scaled(
                &spec.id,
                "out",
                if decision.panic { "burst" } else { "load" },
            );
            for _ in 0..add {
                if let Err(e) = manager.launch_member(&spec).await {
                    tracing::warn!(app = %spec.id, error = %e, "a pool could not start an instance");
                    break;
                }
            }
        } else if decision.want < members.ready && members.starting == 0 {
            let remove = members.ready - decision.want;
            tracing::info!(app = %spec.id, from = members.ready, to = decision.want, "pool scales in");
            manager.metrics().pool_scaled(&spec.id, "in", "idle");
            for id in fewest_in_flight(&pool, remove as usize) {
                manager.drain(&id).await;
            }
        }
    }
}

/// The members to remove first: those with the least to finish.
fn fewest_in_flight(pool: &Pool, n: usize) -> Vec<String> {
    let mut members: Vec<_> = pool.members().iter().cloned().collect();
    members.sort_by_key(|r| r.in_flight());
    members
        .into_iter()
        .take(n)
        .map(|r| r.instance_id.clone())
        .collect()
}

impl Manager {
    /// Counts a pool's members by state.
    pub fn pool_members(&self, spec_id: &str) -> Members {
        let mut m = Members::default();
        for e in self.entries.lock().values() {
            if e.spec.id != spec_id {
                continue;
            }
            match e.view.borrow().status {
                InstanceStatus::Starting => m.starting += 1,
                InstanceStatus::Running if e.draining => m.draining += 1,
                InstanceStatus::Running => m.ready += 1,
                InstanceStatus::Stopping => m.draining += 1,
                _ => {}
            }
        }
        m
    }

    /// Starts in a row that failed for a pool, 0 once one succeeds.
    pub(super) fn pool_start_failures(&self, spec_id: &str) -> u32 {
        self.pool_failures
            .lock()
            .get(spec_id)
            .copied()
            .unwrap_or_default()
    }

    /// Takes a member out of the rotation, lets its requests finish (at most
    /// `container-wait-time`), then stops it. WebSockets and event streams are cut by the stop:
    /// their clients reconnect and land on another member.
    pub async fn drain(self: &Arc<Self>, id: &str) {
        let spec_id = {
            let mut entries = self.entries.lock();
            let Some(e) = entries.get_mut(id) else { return };
            e.draining = true;
            e.spec.id.clone()
        };
        let route = self
            .pools
            .get(&spec_id)
            .and_then(|pool| pool.remove(id))
            .or_else(|| self.routes.get(id));
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let until = Instant::now() + me.config().proxy.container_wait_time;
            while let Some(r) = &route
                && r.requests_in_flight() > 0
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            me.stop_local(&id, StopReason::ScaledDown).await;
        });
    }
}
