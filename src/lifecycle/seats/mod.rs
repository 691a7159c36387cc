//! Seats, with ShinyProxy 3's keys: containers ("delegates") started ahead of time and shared
//! by up to `seats-per-container` users. A launch claims a free seat and is routed to that
//! container at once; the scaler keeps `minimum-seats-available` seats free and removes surplus
//! containers after `scale-down-delay`.
//!
//! Each user's claim is an instance of its own (its own id, route, heartbeat and limits), so
//! everything that applies to private instances (authorisation, idle culling, stop on logout)
//! applies to claims unchanged. Each replica keeps its own seats.

mod bank;

pub use bank::Counts;
pub(super) use bank::{Bank, Seat};

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Manager, StopReason};
use crate::clock::Instant;
use crate::config::AppSpec;

/// How often the scaler looks, unless a waiting launch pokes it.
const PLAN_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Seats {
    pub bank: Mutex<Bank>,
    /// A launch is waiting for a seat: the scaler should look now.
    pub poke: Notify,
}

impl Seats {
    pub fn new(settings: crate::config::SeatSettings) -> Self {
        Self {
            bank: Mutex::new(Bank::new(settings)),
            poke: Notify::new(),
        }
    }
}

pub(super) async fn run(manager: Arc<Manager>, spec: AppSpec, stop: CancellationToken) {
    let Some(seats) = manager.seats.get(&spec.id).cloned() else {
        return;
    };
    let mut next_start = Instant::now();
    let mut failures_seen = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PLAN_EVERY) => {}
            _ = seats.poke.notified() => {}
        }
        let now = Instant::now();
        let failures = manager.pool_start_failures(&spec.id);
        if failures > failures_seen {
            next_start =
                now + Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30));
        }
        failures_seen = failures;
        let plan = seats.bank.lock().plan(now);
        if plan.start > 0 && now >= next_start {
            tracing::info!(app = %spec.id, containers = plan.start, seats = ?seats.bank.lock().counts(), "starting containers for seats");
            manager.metrics().pool_scaled(&spec.id, "out", "seats");
            for _ in 0..plan.start {
                if let Err(e) = manager.launch_member(&spec).await {
                    tracing::warn!(app = %spec.id, error = %e, "a container for seats could not be started");
                    break;
                }
            }
        }
        if !plan.stop.is_empty() {
            tracing::info!(app = %spec.id, containers = plan.stop.len(), "removing containers whose seats are not needed");
            manager.metrics().pool_scaled(&spec.id, "in", "seats");
        }
        for id in plan.stop {
            manager.stop_local(&id, StopReason::ScaledDown).await;
        }
    }
}
