//! Keeping this replica in step with the others through the shared store: the leader lease and
//! this replica's sign of life, activity flushed in batches (the data path only touches
//! atomics), stop requests for this replica's instances, routes dropped when an instance of
//! another replica goes, and this replica's instances written again after the store lost them
//! (an outage, or a FLUSHALL).

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::lease::RENEW_EVERY;
use super::registry::{CHANGED, Record, STOP_REQUEST};
use super::{InstanceStatus, Manager, StopReason};
use crate::store::{Notice, RESYNC_CHANNEL};

/// Activity older than what was last written by less than this is not written again.
const ACTIVITY_GRAIN_MS: u64 = 1_000;
/// Every this many ticks, check that the store still holds this replica's instances.
const RECONCILE_EVERY_TICKS: u64 = 5;

pub(super) fn spawn(manager: Arc<Manager>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut notices = manager.registry.store().notices();
        let mut ticker = tokio::time::interval(RENEW_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flushed: HashMap<String, u64> = HashMap::new();
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {
                    ticks += 1;
                    if let Err(e) = manager.lease.tick(&manager.registry).await {
                        tracing::debug!(error = %e, "cannot renew the leader lease");
                    }
                    flush_activity(&manager, &mut flushed).await;
                    if ticks.is_multiple_of(RECONCILE_EVERY_TICKS) {
                        reconcile(&manager).await;
                    }
                }
                notice = notices.recv() => match notice {
                    Ok(n) => on_notice(&manager, n).await,
                    Err(RecvError::Lagged(_)) => reconcile(&manager).await,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}

async fn on_notice(manager: &Arc<Manager>, notice: Notice) {
    match notice.channel.as_str() {
        STOP_REQUEST => {
            let mut parts = notice.message.splitn(3, '\n');
            let (Some(replica), Some(id), Some(reason)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            if replica == manager.registry.replica {
                let (me, id, why) = (
                    manager.clone(),
                    id.to_string(),
                    StopReason::from_label(reason),
                );
                tokio::spawn(async move { me.stop_local(&id, why).await });
            }
        }
        CHANGED => forget_route_if_gone(manager, &notice.message).await,
        RESYNC_CHANNEL => reconcile(manager).await,
        _ => {}
    }
}

/// A route this replica made for another replica's instance goes when the instance does.
async fn forget_route_if_gone(manager: &Manager, id: &str) {
    if manager.entries.lock().contains_key(id) || manager.routes.get(id).is_none() {
        return;
    }
    match manager.registry.get(id).await {
        Ok(Some(r)) if r.view.status == InstanceStatus::Running => {}
        Ok(_) => manager.routes.remove(id),
        // Unknown while the store is away: keep serving it.
        Err(_) => {}
    }
}

/// Writes when each route last saw traffic here, so the leader's culler sees activity on
/// every replica.
async fn flush_activity(manager: &Manager, flushed: &mut HashMap<String, u64>) {
    if !manager.has_peers() {
        return;
    }
    let now = crate::clock::now_unix_ms();
    let routes = manager.routes.all();
    flushed.retain(|id, _| routes.iter().any(|r| &r.instance_id == id));
    for route in routes {
        let last = now.saturating_sub(route.idle_for().as_millis() as u64);
        if flushed
            .get(&route.instance_id)
            .is_some_and(|f| last < f + ACTIVITY_GRAIN_MS)
        {
            continue;
        }
        if manager
            .registry
            .record_activity(&route.instance_id, last)
            .await
            .is_ok()
        {
            flushed.insert(route.instance_id.clone(), last);
        }
    }
}

/// The store may have lost this replica's instances (Redis restarted empty, or FLUSHALL):
/// write them again, with their places under the limits. Routes to other replicas' instances
/// that are gone are dropped, in case their notice was missed.
async fn reconcile(manager: &Manager) {
    // This process's memory never loses what it holds, and routes only this replica's.
    if !manager.has_peers() {
        return;
    }
    let own: Vec<Record> = {
        let entries = manager.entries.lock();
        entries
            .values()
            .map(|e| Record {
                view: e.view.borrow().clone(),
                address: e.address,
                replica: manager.registry.replica.clone(),
            })
            .collect()
    };
    for record in own {
        let id = record.view.id.clone();
        match manager.registry.get(&id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(instance = %id, "the state store had lost this instance; writing it again");
                if record.view.status.counts_against_limits() {
                    let _ = manager
                        .registry
                        .admit(
                            &id,
                            &record.view.user,
                            &record.view.spec_id,
                            super::registry::Limits::default(),
                        )
                        .await;
                }
                let _ = manager.registry.put(&record).await;
            }
            Err(_) => return,
        }
    }
    for route in manager.routes.all() {
        forget_route_if_gone(manager, &route.instance_id).await;
    }
}
