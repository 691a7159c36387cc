//! A replica's own copy of records it read from the store, so a request never waits on a
//! remote store for a record it has seen: a stale copy is served while it is refreshed in the
//! background, and a copy nobody used for `max_unused` is not served at all (the record may
//! have expired in the store meanwhile). Notices from other replicas evict copies at once.

use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{RESYNC_CHANNEL, Store};
use crate::clock::Instant;
use tokio::sync::broadcast::error::RecvError;

struct Copy<V> {
    value: Arc<V>,
    fetched: Instant,
    used: Instant,
    refreshing: bool,
}

pub struct ReadThrough<V> {
    copies: DashMap<String, Copy<V>>,
    fresh_for: Duration,
    max_unused: Duration,
}

/// What the cache holds for a key.
pub enum Cached<V> {
    Fresh(Arc<V>),
    /// Serve it; the caller that gets this is the one to refresh it.
    StaleRefreshHere(Arc<V>),
    /// Serve it; another caller is refreshing it.
    Stale(Arc<V>),
    Missing,
}

impl<V> ReadThrough<V> {
    pub fn new(fresh_for: Duration, max_unused: Duration) -> Self {
        Self {
            copies: DashMap::new(),
            fresh_for,
            max_unused,
        }
    }

    /// The copy of `key`, counted as used.
    pub fn get(&self, key: &str) -> Cached<V> {
        let now = Instant::now();
        let Some(mut copy) = self.copies.get_mut(key) else {
            return Cached::Missing;
        };
        if now.duration_since(copy.used) > self.max_unused {
            drop(copy);
            self.copies.remove(key);
            return Cached::Missing;
        }
        copy.used = now;
        let value = copy.value.clone();
        if now.duration_since(copy.fetched) < self.fresh_for {
            Cached::Fresh(value)
        } else if copy.refreshing {
            Cached::Stale(value)
        } else {
            copy.refreshing = true;
            Cached::StaleRefreshHere(value)
        }
    }

    pub fn put(&self, key: &str, value: Arc<V>) {
        let now = Instant::now();
        self.copies.insert(
            key.to_string(),
            Copy {
                value,
                fetched: now,
                used: now,
                refreshing: false,
            },
        );
    }

    /// A refresh failed (the store is unreachable): keep serving the copy, try again later.
    pub fn refresh_failed(&self, key: &str) {
        if let Some(mut copy) = self.copies.get_mut(key) {
            copy.refreshing = false;
        }
    }

    pub fn evict(&self, key: &str) {
        self.copies.remove(key);
    }

    /// After a store outage or a lost notice: everything is refreshed on its next use.
    pub fn mark_all_stale(&self) {
        let long_ago = Instant::now() - self.fresh_for;
        for mut copy in self.copies.iter_mut() {
            copy.fetched = copy.fetched.min(long_ago);
        }
    }

    /// Forgets copies nobody used for `max_unused`.
    pub fn purge(&self) {
        let now = Instant::now();
        self.copies
            .retain(|_, c| now.duration_since(c.used) <= self.max_unused);
    }
}

/// Where a [`ReadThrough`] gets a record it has no fresh copy of.
#[async_trait::async_trait]
pub trait Source<V>: Send + Sync + 'static {
    fn copies(&self) -> &ReadThrough<V>;
    /// Reads the record from the store and keeps a copy (or drops the copy if it is gone).
    async fn fetch(&self, key: &str) -> super::Result<Option<Arc<V>>>;
}

/// The record under `key`: a fresh copy at once; a stale one at once too, refreshed in the
/// background by this caller; none, from the store.
pub async fn read<V, S>(source: &Arc<S>, key: &str) -> super::Result<Option<Arc<V>>>
where
    V: Send + Sync + 'static,
    S: Source<V>,
{
    match source.copies().get(key) {
        Cached::Fresh(v) | Cached::Stale(v) => Ok(Some(v)),
        Cached::StaleRefreshHere(v) => {
            let (source, key) = (source.clone(), key.to_string());
            tokio::spawn(async move {
                if source.fetch(&key).await.is_err() {
                    source.copies().refresh_failed(&key);
                }
            });
            Ok(Some(v))
        }
        Cached::Missing => source.fetch(key).await,
    }
}

/// Keeps `copies` in step with other replicas: a key published on `channel` is evicted, and a
/// resync (or notices missed) makes every copy stale. Ends when `copies` is dropped.
pub fn follow<V: Send + Sync + 'static>(
    store: &dyn Store,
    copies: &Arc<ReadThrough<V>>,
    channel: &'static str,
) {
    let mut notices = store.notices();
    let copies = Arc::downgrade(copies);
    tokio::spawn(async move {
        loop {
            let notice = notices.recv().await;
            let Some(copies) = copies.upgrade() else {
                return;
            };
            match notice {
                Ok(n) if n.channel == channel => copies.evict(&n.message),
                Ok(n) if n.channel == RESYNC_CHANNEL => copies.mark_all_stale(),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => copies.mark_all_stale(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stale_copy_is_served_and_refreshed_by_one_caller() {
        let c = ReadThrough::new(Duration::from_secs(15), Duration::from_secs(600));
        c.put("k", Arc::new(1));
        assert!(matches!(c.get("k"), Cached::Fresh(_)));
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(matches!(c.get("k"), Cached::StaleRefreshHere(_)));
        assert!(
            matches!(c.get("k"), Cached::Stale(_)),
            "one refresh at a time"
        );
        c.refresh_failed("k");
        assert!(matches!(c.get("k"), Cached::StaleRefreshHere(_)));
        c.put("k", Arc::new(2));
        assert!(matches!(c.get("k"), Cached::Fresh(v) if *v == 2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_copy_is_not_served() {
        let c = ReadThrough::new(Duration::from_secs(15), Duration::from_secs(60));
        c.put("k", Arc::new(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(c.get("k"), Cached::Missing));
    }
}
