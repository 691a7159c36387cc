//! State that replicas share: sessions, API tokens, pending OpenID Connect logins and the login
//! throttle. One trait, [`Store`], with two implementations: this process's memory (the embedded
//! default, one replica) and Redis (`proxy.store-mode: Redis`, several replicas).
//!
//! The trait is a small key-value vocabulary rather than one method per record type, so each
//! record's rules (expiry, caching, who may read it) live once, next to the record, and both
//! stores only have to agree on these few operations.

mod memory;
mod read_through;
mod redis;

pub use memory::MemoryStore;
pub use read_through::{Cached, ReadThrough, Source, follow, read};
pub use redis::RedisStore;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

use crate::config::StoreConfig;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The shared store cannot be reached; the message says which and why, for the log.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A message one replica publishes for all (itself included), such as "session X logged out".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub channel: String,
    pub message: String,
}

/// Published when the store lost its contents or came back after an outage: what a replica
/// cached may be stale, or may be all that is left.
pub const RESYNC_CHANNEL: &str = "vestibule:resync";

/// The answer of [`Store::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The slot at this index is full.
    Full(usize),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value under `key`, unless absent or expired.
    async fn get(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key`, to expire after `ttl` (never without one).
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()>;
    /// Sets `key` only if it is absent; whether it did.
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;
    /// Gives `key` a new time to live; false when it is gone.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool>;
    /// Removes `key`; whether it was there.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Removes `key` and returns what it held, atomically: two replicas never both get it.
    async fn take(&self, key: &str) -> Result<Option<String>>;
    /// Counts one more event under `key`; the first count starts a window of `window`, after
    /// which the count is gone. Returns the count.
    async fn count(&self, key: &str, window: Duration) -> Result<u64>;
    /// A counter's value and the time left in its window.
    async fn counter(&self, key: &str) -> Result<Option<(u64, Duration)>>;
    /// Sets one field of the map `map`.
    async fn map_set(&self, map: &str, field: &str, value: &str) -> Result<()>;
    async fn map_get(&self, map: &str, field: &str) -> Result<Option<String>>;
    /// Removes one field; whether it was there.
    async fn map_delete(&self, map: &str, field: &str) -> Result<bool>;
    /// Every field of `map`, in no particular order.
    async fn map_entries(&self, map: &str) -> Result<Vec<(String, String)>>;
    /// Raises a numeric field of `map` to `value` (never lowers it): the latest activity any
    /// replica saw.
    async fn map_max(&self, map: &str, field: &str, value: u64) -> Result<()>;
    /// Adds `member` to every set of `slots` if each holds fewer members than its limit (or
    /// already holds `member`), atomically: two replicas admitting at once cannot both take the
    /// last place.
    async fn admit(&self, slots: &[(String, Option<u64>)], member: &str) -> Result<Admission>;
    /// Takes `member` out of `sets`; taking it out twice is harmless.
    async fn release(&self, sets: &[String], member: &str) -> Result<()>;
    /// Renews `key` for `ttl` if it still holds `value` (a lease this replica holds).
    async fn renew_if_holder(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;
    /// Tells every replica (this one too) through [`Store::notices`].
    async fn publish(&self, channel: &str, message: &str) -> Result<()>;
    /// What replicas publish. A receiver that falls behind gets `Lagged` and should resync.
    fn notices(&self) -> broadcast::Receiver<Notice>;
    /// Whether other replicas share this store (false for memory).
    fn is_shared(&self) -> bool;
    /// Drops expired entries; a store whose entries expire by themselves does nothing.
    fn purge_expired(&self) {}
}

/// The store the config asks for: memory unless `proxy.store-mode: Redis`.
pub async fn open(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Memory => Arc::new(MemoryStore::default()),
        StoreConfig::Redis(settings) => Arc::new(RedisStore::connect(settings).await?),
    })
}
