//! Logins that went to the provider and have not come back yet: their nonce and PKCE verifier
//! stay here on the server, never in the browser. Each is found by its `state` and belongs to
//! the browser holding a random value in a short-lived cookie, so a callback URL is worthless
//! in another browser. One browser may have several logins under way (tabs that all found
//! their session expired), and each is used at most once.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// How long a user may take at the provider's login page.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Bounds what unauthenticated clients can make the store hold by starting logins: at most this
/// many logins start per minute (every replica together).
const MAX_STARTED_PER_MINUTE: u64 = 10_000;

#[derive(Serialize, Deserialize)]
pub struct Pending {
    /// The browser's cookie value.
    pub browser: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where the user goes after login.
    pub next: String,
    pub redirect_uri: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    /// No login with this state is under way (forged, already used, or expired).
    UnknownState,
    /// The login was started by another browser.
    OtherBrowser,
    Store(StoreError),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("too many logins are starting at once; try again in a minute")]
    Flood,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(state: &str) -> String {
    format!("oidc-pending:{state}")
}

/// Kept in the shared store, so a login started through one replica completes on another.
pub struct PendingLogins {
    store: Arc<dyn Store>,
}

impl PendingLogins {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn insert(&self, state: &str, pending: &Pending) -> Result<(), InsertError> {
        let started = self
            .store
            .count("oidc-pending-started", Duration::from_secs(60))
            .await?;
        if started > MAX_STARTED_PER_MINUTE {
            return Err(InsertError::Flood);
        }
        let json = serde_json::to_string(pending)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode a login: {e}")))?;
        self.store
            .set(&key(state), &json, Some(PENDING_LIFETIME))
            .await?;
        Ok(())
    }

    /// Takes out the login with this state, if `browser` started it; a wrong browser leaves it
    /// in place for the right one. Taking is atomic, so a callback replayed on two replicas at
    /// once completes one login.
    pub async fn take(&self, state: &str, browser: &str) -> Result<Pending, TakeError> {
        let found = self
            .store
            .get(&key(state))
            .await
            .map_err(TakeError::Store)?
            .and_then(|j| serde_json::from_str::<Pending>(&j).ok())
            .ok_or(TakeError::UnknownState)?;
        if !crate::auth::csrf::matches(&found.browser, Some(browser)) {
            return Err(TakeError::OtherBrowser);
        }
        match self.store.take(&key(state)).await {
            Ok(Some(_)) => Ok(found),
            Ok(None) => Err(TakeError::UnknownState),
            Err(e) => Err(TakeError::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(browser: &str) -> Pending {
        Pending {
            browser: browser.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/".into(),
            redirect_uri: "http://x/cb".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_login_is_used_once_by_its_own_browser_and_expires() {
        let p = PendingLogins::new(Arc::new(crate::store::MemoryStore::default()));
        p.insert("s1", &pending("b")).await.expect("stored");
        p.insert("s2", &pending("b")).await.expect("stored");
        assert_eq!(
            p.take("s1", "thief").await.err(),
            Some(TakeError::OtherBrowser)
        );
        assert!(
            p.take("s1", "b").await.is_ok(),
            "still there for its browser"
        );
        assert_eq!(
            p.take("s1", "b").await.err(),
            Some(TakeError::UnknownState),
            "used once"
        );
        assert!(
            p.take("s2", "b").await.is_ok(),
            "two logins at once from one browser"
        );
        p.insert("s3", &pending("b")).await.expect("stored");
        tokio::time::advance(PENDING_LIFETIME + Duration::from_secs(1)).await;
        assert_eq!(
            p.take("s3", "b").await.err(),
            Some(TakeError::UnknownState),
            "expired"
        );
    }
}
