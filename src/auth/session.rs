//! Server-side sessions, identified by a random id in an HttpOnly cookie.
//!
//! The proxy checks the session on every request, so the lookup must be cheap and never wait on
//! a remote store; the store sits behind a trait so a shared (Redis) store can replace the
//! in-memory one when several replicas serve the same users.

use crate::clock::Instant;
use async_trait::async_trait;
use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::Identity;
use super::oidc::OidcTokens;

pub const COOKIE_NAME: &str = "vestibule_session";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub identity: Identity,
    /// Sent back with every state-changing form or API call made with this cookie.
    pub csrf: String,
    /// The provider's tokens, when the user logged in with OpenID Connect.
    #[serde(default)]
    pub oidc: Option<OidcTokens>,
}

impl Session {
    pub fn new(identity: Identity) -> Self {
        Self {
            id: random_token(),
            identity,
            csrf: random_token(),
            oidc: None,
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

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The live session with this id; using it extends its life. Shared, because the proxy
    /// looks it up on every request.
    async fn load(&self, id: &str) -> Option<Arc<Session>>;
    async fn save(&self, session: &Session);
    async fn delete(&self, id: &str);
    /// Whether the session is still valid, without counting this as its use.
    async fn exists(&self, id: &str) -> bool;
}

/// Sessions in this process's memory; they expire after `idle_timeout` without use.
pub struct MemorySessionStore {
    idle_timeout: Duration,
    sessions: DashMap<String, (Arc<Session>, Instant)>,
}

impl MemorySessionStore {
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            sessions: DashMap::new(),
        }
    }

    /// Drops expired sessions; called periodically so abandoned ones do not pile up.
    pub fn purge_expired(&self) {
        let now = Instant::now();
        self.sessions.retain(|_, (_, expires)| *expires > now);
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, id: &str) -> Option<Arc<Session>> {
        let now = Instant::now();
        let mut entry = self.sessions.get_mut(id)?;
        if entry.1 <= now {
            drop(entry);
            self.sessions.remove(id);
            return None;
        }
        entry.1 = now + self.idle_timeout;
        Some(entry.0.clone())
    }

    async fn save(&self, session: &Session) {
        self.sessions.insert(
            session.id.clone(),
            (
                Arc::new(session.clone()),
                Instant::now() + self.idle_timeout,
            ),
        );
    }

    async fn delete(&self, id: &str) {
        self.sessions.remove(id);
    }

    async fn exists(&self, id: &str) -> bool {
        self.sessions.get(id).is_some_and(|e| e.1 > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec![],
            is_admin: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_expires_after_idle_time_but_use_extends_it() {
        let store = MemorySessionStore::new(Duration::from_secs(60));
        let s = Session::new(alice());
        store.save(&s).await;
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(store.load(&s.id).await.is_some());
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(store.load(&s.id).await.is_some(), "use extended it");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.load(&s.id).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn asking_whether_a_session_exists_does_not_keep_it_alive() {
        // The WebSocket sweep asks this every minute; it must not count as use.
        let store = MemorySessionStore::new(Duration::from_secs(60));
        let s = Session::new(alice());
        store.save(&s).await;
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(10)).await;
            assert!(store.exists(&s.id).await);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            !store.exists(&s.id).await,
            "expired although only asked about"
        );
        assert!(!store.exists("no-such-session").await);
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }
}
