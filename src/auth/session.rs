//! Server-side sessions, identified by a random id in an HttpOnly cookie.
//!
//! The proxy checks the session on every request, so the lookup must be cheap and never wait on
//! a remote store: each replica keeps a copy of the sessions it serves (see [`Sessions`]).

use crate::store::{ReadThrough, Source, Store, StoreError};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::Identity;
use super::oidc::OidcTokens;

pub const COOKIE_NAME: &str = "vestibule_session";
/// On an instance's own host (`proxy.app-domain`): names the login there, never the session.
pub const APP_HOST_COOKIE: &str = "vestibule_app";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub identity: Identity,
    /// Sent back with every state-changing form or API call made with this cookie.
    pub csrf: String,
    /// The provider's tokens, when the user logged in with OpenID Connect.
    #[serde(default)]
    pub oidc: Option<OidcTokens>,
    /// Who the SAML IdP said logged in, for single logout.
    #[serde(default)]
    pub saml: Option<SamlSubject>,
}

/// The NameID and session index of a SAML login: what a LogoutRequest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSubject {
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
}

impl Session {
    pub fn new(identity: Identity) -> Self {
        Self {
            id: random_token(),
            identity,
            csrf: random_token(),
            oidc: None,
            saml: None,
        }
    }

    /// Whether the login behind this session has run out (an OpenID Connect token expired).
    pub fn expired(&self) -> bool {
        self.oidc.as_ref().is_some_and(|t| t.expired())
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sessions, kept in the [`Store`] so every replica knows them, with this replica's own copy of
/// those it served: the proxy looks a session up on every request and must not wait on a
/// remote store for it. A session expires after `idle_timeout` without use on any replica.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    idle_timeout: Duration,
    copies: Arc<ReadThrough<Session>>,
}

/// A logout on one replica reaches the others' copies through this channel.
const ENDED: &str = "session-ended";
/// How long a replica serves its copy before checking the store again (and so extending the
/// session's life there).
const FRESH_FOR: Duration = Duration::from_secs(15);

fn key(id: &str) -> String {
    format!("session:{id}")
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, idle_timeout: Duration) -> Self {
        let inner = Arc::new(Inner {
            store,
            idle_timeout,
            copies: Arc::new(ReadThrough::new(FRESH_FOR, idle_timeout)),
        });
        crate::store::follow(inner.store.as_ref(), &inner.copies, ENDED);
        Self { inner }
    }

    /// The live session with this id; using it extends its life. Fails only when the store is
    /// unreachable and this replica has no copy.
    pub async fn load(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        crate::store::read(&self.inner, id).await
    }

    pub async fn save(&self, session: &Session) -> Result<(), StoreError> {
        let json = serde_json::to_string(session)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode a session: {e}")))?;
        self.inner
            .store
            .set(&key(&session.id), &json, Some(self.inner.idle_timeout))
            .await?;
        self.inner
            .copies
            .put(&session.id, Arc::new(session.clone()));
        Ok(())
    }

    /// Ends a session here at once, and on other replicas as soon as they hear of it.
    pub async fn delete(&self, id: &str) {
        self.inner.copies.evict(id);
        let removed = self.inner.store.delete(&key(id)).await;
        let told = self.inner.store.publish(ENDED, id).await;
        if let Err(e) = removed.and(told) {
            // The store's copy still expires after the idle timeout.
            tracing::warn!(error = %e, "a logout could not reach the other replicas");
        }
    }

    /// Whether the session is still valid, without counting this as its use. While the store is
    /// unreachable it is taken to be.
    pub async fn exists(&self, id: &str) -> bool {
        self.inner
            .store
            .get(&key(id))
            .await
            .map_or(true, |s| s.is_some())
    }

    /// Forgets copies of sessions this replica no longer serves.
    pub fn purge_expired(&self) {
        self.inner.copies.purge();
    }
}

#[async_trait::async_trait]
impl Source<Session> for Inner {
    fn copies(&self) -> &ReadThrough<Session> {
        &self.copies
    }

    /// Reads the session from the store, extends its life there and keeps a copy.
    async fn fetch(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(json) = self.store.get(&key(id)).await? else {
            self.copies.evict(id);
            return Ok(None);
        };
        let Ok(session) = serde_json::from_str::<Session>(&json) else {
            // Written by an incompatible version: the user logs in again.
            self.copies.evict(id);
            return Ok(None);
        };
        self.store.expire(&key(id), self.idle_timeout).await?;
        let session = Arc::new(session);
        self.copies.put(id, session.clone());
        Ok(Some(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec![],
            is_admin: false,
        }
    }

    fn sessions(idle: u64) -> (Sessions, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        (
            Sessions::new(store.clone(), Duration::from_secs(idle)),
            store,
        )
    }

    async fn loaded(sessions: &Sessions, id: &str) -> bool {
        let found = sessions
            .load(id)
            .await
            .expect("memory never fails")
            .is_some();
        // Let a background refresh finish, as time passes between requests.
        tokio::task::yield_now().await;
        found
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_expires_after_idle_time_but_use_extends_it() {
        let (sessions, _) = sessions(60);
        let s = Session::new(alice());
        sessions.save(&s).await.expect("saved");
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(loaded(&sessions, &s.id).await);
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(loaded(&sessions, &s.id).await, "use extended it");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!loaded(&sessions, &s.id).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_logout_on_another_replica_ends_the_copy_here() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
        let here = Sessions::new(store.clone(), Duration::from_secs(3600));
        let there = Sessions::new(store, Duration::from_secs(3600));
        let s = Session::new(alice());
        there.save(&s).await.expect("saved");
        assert!(loaded(&here, &s.id).await, "found through the store");
        there.delete(&s.id).await;
        tokio::task::yield_now().await;
        assert!(!loaded(&here, &s.id).await, "the copy was evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn asking_whether_a_session_exists_does_not_keep_it_alive() {
        // The WebSocket sweep asks this every minute; it must not count as use.
        let (sessions, _) = sessions(60);
        let s = Session::new(alice());
        sessions.save(&s).await.expect("saved");
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(10)).await;
            assert!(sessions.exists(&s.id).await);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            !sessions.exists(&s.id).await,
            "expired although only asked about"
        );
        assert!(!sessions.exists("no-such-session").await);
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }
}
