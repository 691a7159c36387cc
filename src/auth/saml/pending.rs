//! SAML logins in flight, kept in the shared [`Store`] so that any replica can finish a login
//! another one started:
//!
//! - the AuthnRequests this server issued (by request id, which the IdP echoes as
//!   `InResponseTo`), each tied to the browser that started it and used once;
//! - the ids of assertions already accepted, until they expire, so a replayed Response is
//!   refused even where its request is forgotten;
//! - verified logins between the ACS and `/saml/complete` (see `web::saml` for why there are
//!   two steps).

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::session::SamlSubject;
use crate::store::{Store, StoreError};

/// How long a user may take at the IdP's login page.
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(600);
/// How long the browser has to follow the ACS's redirect to `/saml/complete`.
const VERIFIED_LIFETIME: Duration = Duration::from_secs(120);
/// Bounds what unauthenticated clients can make the store hold by starting logins.
const MAX_STARTED_PER_MINUTE: u64 = 10_000;

#[derive(Serialize, Deserialize)]
pub struct Request {
    /// The browser's random cookie value.
    pub browser: String,
    /// Where the user goes after login.
    pub next: String,
}

/// A login whose Response passed every check, waiting for its browser.
#[derive(Serialize, Deserialize)]
pub struct Verified {
    pub browser: String,
    pub next: String,
    pub user: String,
    pub groups: Vec<String>,
    pub subject: SamlSubject,
}

#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("too many logins are starting at once; try again in a minute")]
    Flood,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Pending {
    store: Arc<dyn Store>,
}

impl Pending {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn issued(&self, request_id: &str, request: &Request) -> Result<(), PendingError> {
        let started = self
            .store
            .count("saml-requests-started", Duration::from_secs(60))
            .await?;
        if started > MAX_STARTED_PER_MINUTE {
            return Err(PendingError::Flood);
        }
        let json = encode(request)?;
        self.store
            .set(
                &format!("saml-request:{request_id}"),
                &json,
                Some(REQUEST_LIFETIME),
            )
            .await?;
        Ok(())
    }

    /// Takes out the request with this id (atomically: two replicas never both get it).
    pub async fn answered(&self, request_id: &str) -> Result<Option<Request>, StoreError> {
        Ok(self
            .store
            .take(&format!("saml-request:{request_id}"))
            .await?
            .and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Records an assertion id as used; false when it was used before.
    pub async fn first_use(&self, assertion_id: &str, keep: Duration) -> Result<bool, StoreError> {
        self.store
            .set_if_absent(&format!("saml-seen:{assertion_id}"), "1", keep)
            .await
    }

    pub async fn hold(&self, code: &str, verified: &Verified) -> Result<(), StoreError> {
        let json = encode(verified)?;
        self.store
            .set(
                &format!("saml-verified:{code}"),
                &json,
                Some(VERIFIED_LIFETIME),
            )
            .await
    }

    pub async fn collect(&self, code: &str) -> Result<Option<Verified>, StoreError> {
        Ok(self
            .store
            .take(&format!("saml-verified:{code}"))
            .await?
            .and_then(|j| serde_json::from_str(&j).ok()))
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode a SAML login: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_answered_once_and_assertions_used_once() {
        let p = Pending::new(Arc::new(crate::store::MemoryStore::default()));
        let r = Request {
            browser: "b".into(),
            next: "/".into(),
        };
        p.issued("id-1", &r).await.expect("stored");
        assert!(p.answered("id-1").await.expect("store").is_some());
        assert!(p.answered("id-1").await.expect("store").is_none(), "once");
        let keep = Duration::from_secs(60);
        assert!(p.first_use("a1", keep).await.expect("store"));
        assert!(!p.first_use("a1", keep).await.expect("store"), "replayed");
        tokio::time::advance(keep + Duration::from_secs(1)).await;
        assert!(
            p.first_use("a1", keep).await.expect("store"),
            "forgotten after expiry"
        );
        p.issued("id-2", &r).await.expect("stored");
        tokio::time::advance(REQUEST_LIFETIME + Duration::from_secs(1)).await;
        assert!(
            p.answered("id-2").await.expect("store").is_none(),
            "expired"
        );
    }
}
