//! The instances every replica can see, in the shared store: who owns each, its state, where it
//! listens and which replica runs it. Lifecycle writes it (each replica for the instances it
//! launched or adopted); every replica reads it to route to, list and stop instances that
//! another replica started. Limits are sets of instance ids, admitted atomically, so two
//! replicas launching at the same moment cannot both take the last place.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::InstanceView;
use crate::store::{Admission, Store, StoreError};

/// One instance as all replicas see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub view: InstanceView,
    /// Where it listens, once it runs.
    pub address: Option<SocketAddr>,
    /// The replica that runs it (started or adopted it).
    pub replica: String,
}

/// Which limit stopped a launch.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    PerUser,
    /// The app's `max-total-instances`, for all users together.
    PerApp,
    Total,
}

const INSTANCES: &str = "instances";
const ACTIVITY: &str = "activity";
const TOTAL: &str = "limit:total";
/// Published with an instance id whenever its record changes or goes.
pub const CHANGED: &str = "instance-changed";
/// Published as `<replica>\n<instance>\n<reason>`: the replica that runs it should stop it.
pub const STOP_REQUEST: &str = "instance-stop";

fn per_user(user: &str, spec_id: &str) -> String {
    format!("limit:user:{spec_id}:{user}")
}

fn per_app(spec_id: &str) -> String {
    format!("limit:app:{spec_id}")
}

/// The limits a new instance is admitted under; `None` is no limit.
#[derive(Clone, Copy, Default)]
pub struct Limits {
    pub per_user: Option<u64>,
    pub per_app: Option<u64>,
    pub total: Option<u64>,
}

pub struct Registry {
    store: Arc<dyn Store>,
    /// This replica's name, unique per process.
    pub replica: String,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "vestibule".into());
        let replica = format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Self { store, replica }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Takes a place for `id` under the user's limit for the app, the app's total and the
    /// server's total.
    pub async fn admit(
        &self,
        id: &str,
        user: &str,
        spec_id: &str,
        limits: Limits,
    ) -> Result<Result<(), Refused>, StoreError> {
        let slots = [
            (per_user(user, spec_id), limits.per_user),
            (per_app(spec_id), limits.per_app),
            (TOTAL.to_string(), limits.total),
        ];
        Ok(match self.store.admit(&slots, id).await? {
            Admission::Admitted => Ok(()),
            Admission::Full(0) => Err(Refused::PerUser),
            Admission::Full(1) => Err(Refused::PerApp),
            Admission::Full(_) => Err(Refused::Total),
        })
    }

    /// Frees the places `id` took; freeing twice is harmless.
    pub async fn release(&self, id: &str, user: &str, spec_id: &str) -> Result<(), StoreError> {
        self.store
            .release(
                &[per_user(user, spec_id), per_app(spec_id), TOTAL.to_string()],
                id,
            )
            .await
    }

    pub async fn put(&self, record: &Record) -> Result<(), StoreError> {
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode an instance: {e}")))?;
        self.store
            .map_set(INSTANCES, &record.view.id, &json)
            .await?;
        self.store.publish(CHANGED, &record.view.id).await
    }

    /// Forgets an instance that is gone, and frees its places.
    pub async fn remove(&self, view: &InstanceView) -> Result<(), StoreError> {
        self.release(&view.id, &view.user, &view.spec_id).await?;
        self.store.map_delete(INSTANCES, &view.id).await?;
        self.store.map_delete(ACTIVITY, &view.id).await?;
        self.store.publish(CHANGED, &view.id).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self
            .store
            .map_get(INSTANCES, id)
            .await?
            .and_then(|j| serde_json::from_str(&j).ok()))
    }

    pub async fn all(&self) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .store
            .map_entries(INSTANCES)
            .await?
            .into_iter()
            .filter_map(|(_, j)| serde_json::from_str(&j).ok())
            .collect())
    }

    /// When each instance last saw traffic on any replica (unix milliseconds).
    pub async fn activity(&self) -> Result<HashMap<String, u64>, StoreError> {
        Ok(self
            .store
            .map_entries(ACTIVITY)
            .await?
            .into_iter()
            .filter_map(|(id, ms)| Some((id, ms.parse().ok()?)))
            .collect())
    }

    pub async fn record_activity(&self, id: &str, unix_ms: u64) -> Result<(), StoreError> {
        self.store.map_max(ACTIVITY, id, unix_ms).await
    }

    /// Asks `replica` to stop one of its instances.
    pub async fn request_stop(
        &self,
        replica: &str,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.store
            .publish(STOP_REQUEST, &format!("{replica}\n{id}\n{reason}"))
            .await
    }
}
