//! Which replica runs the global tasks (culling, max-lifetime, taking over the instances of a
//! replica that died): the one holding a lease in the shared store. It renews the lease every
//! [`RENEW_EVERY`]; if it dies, the lease runs out after [`LEASE_TTL`] and another replica takes
//! it, so a dead leader is replaced within about 10 s. Each replica also keeps a short-lived
//! "alive" key, so the leader can tell a dead replica's instances from a live one's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::registry::Registry;
use crate::store::StoreError;

pub const LEASE_TTL: Duration = Duration::from_secs(8);
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A replica not heard from for this long is dead.
const ALIVE_WITHIN: Duration = Duration::from_secs(10);
const LEASE_KEY: &str = "leader";
/// Each replica's last sign of life (unix milliseconds).
const REPLICAS: &str = "replicas";

#[derive(Default)]
pub struct Lease {
    held: AtomicBool,
}

impl Lease {
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Says this replica is alive, and takes or renews the lease. While the store is
    /// unreachable nobody can be sure to lead, so the lease counts as lost.
    pub async fn tick(&self, registry: &Registry) -> Result<bool, StoreError> {
        let store = registry.store();
        let me = &registry.replica;
        let outcome = async {
            store
                .map_max(REPLICAS, me, crate::clock::now_unix_ms())
                .await?;
            if store.renew_if_holder(LEASE_KEY, me, LEASE_TTL).await? {
                return Ok(true);
            }
            store.set_if_absent(LEASE_KEY, me, LEASE_TTL).await
        }
        .await;
        let held = *outcome.as_ref().unwrap_or(&false);
        let was = self.held.swap(held, Ordering::Relaxed);
        // With one replica it always leads: only worth saying when there can be others.
        if held != was && store.is_shared() {
            if held {
                tracing::info!(replica = %me, "this replica now runs the global tasks (leader)");
            } else {
                tracing::info!(replica = %me, "this replica no longer leads");
            }
        }
        outcome
    }

    /// Gives the lease up at shutdown, so another replica takes over at its next renewal
    /// rather than when the lease runs out.
    pub async fn release(&self, registry: &Registry) {
        if self.held.swap(false, Ordering::Relaxed) {
            // Expiring it at once is giving it up, and only while it is still ours.
            let _ = registry
                .store()
                .renew_if_holder(LEASE_KEY, &registry.replica, Duration::from_millis(1))
                .await;
        }
    }

    /// The replicas that said they were alive within the last few seconds (this one too).
    pub async fn alive(registry: &Registry) -> Result<Vec<String>, StoreError> {
        let now = crate::clock::now_unix_ms();
        let recent = now.saturating_sub(ALIVE_WITHIN.as_millis() as u64);
        let mut alive = Vec::new();
        for (replica, seen) in registry.store().map_entries(REPLICAS).await? {
            match seen.parse::<u64>() {
                Ok(ms) if ms >= recent => alive.push(replica),
                // Long dead: forget it, so the map does not grow with every restart.
                Ok(ms) if now.saturating_sub(ms) > 3_600_000 => {
                    registry.store().map_delete(REPLICAS, &replica).await?;
                }
                _ => {}
            }
        }
        if !alive.contains(&registry.replica) {
            alive.push(registry.replica.clone());
        }
        Ok(alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn one_replica_leads_and_a_released_lease_passes_on_at_the_next_renewal() {
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::default());
        let (a, b) = (Registry::new(store.clone()), Registry::new(store));
        let (lease_a, lease_b) = (Lease::default(), Lease::default());
        assert_eq!(lease_a.tick(&a).await, Ok(true));
        assert_eq!(lease_b.tick(&b).await, Ok(false), "two leaders at once");
        lease_a.release(&a).await;
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(!lease_a.is_held());
        assert_eq!(
            lease_b.tick(&b).await,
            Ok(true),
            "a released lease is taken at the next renewal, not 8 s later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_stops_renewing_is_replaced_when_its_lease_runs_out() {
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::default());
        let (a, b) = (Registry::new(store.clone()), Registry::new(store));
        let (lease_a, lease_b) = (Lease::default(), Lease::default());
        assert_eq!(lease_a.tick(&a).await, Ok(true));
        tokio::time::advance(LEASE_TTL - Duration::from_millis(1)).await;
        assert_eq!(lease_b.tick(&b).await, Ok(false));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(lease_b.tick(&b).await, Ok(true));
    }
}
