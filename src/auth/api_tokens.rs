//! Personal API tokens for scripts: `Authorization: Bearer vst_…` acts as the token's owner.
//!
//! A token is 256 random bits, shown once at creation; only its SHA-256 is kept. A slow hash
//! (argon2) adds nothing for a secret that cannot be guessed, and would slow every request.
//! Tokens sit behind [`ApiTokenStore`] so a shared store can hold them for several replicas.

use async_trait::async_trait;
use dashmap::DashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::Identity;
use super::session::random_token;

/// Marks vestibule's tokens, so a bearer token meant for an app is passed through untouched
/// and a leaked one is easy to recognise (secret scanners key on prefixes).
pub const TOKEN_PREFIX: &str = "vst_";
/// At most this many tokens per user, so a script gone wrong cannot fill the memory.
pub const MAX_PER_USER: usize = 100;

pub type TokenHash = [u8; 32];

/// What may be shown about a token: never the token itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub created_unix_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub info: TokenInfo,
    /// Who the token acts as (the owner's groups when it was made).
    pub identity: Identity,
    pub hash: TokenHash,
}

#[async_trait]
pub trait ApiTokenStore: Send + Sync + 'static {
    async fn insert(&self, record: TokenRecord);
    async fn find(&self, hash: &TokenHash) -> Option<TokenRecord>;
    /// All tokens, or one owner's, oldest first.
    async fn list(&self, owner: Option<&str>) -> Vec<TokenInfo>;
    async fn get(&self, id: &str) -> Option<TokenInfo>;
    async fn remove(&self, id: &str) -> Option<TokenInfo>;
}

#[derive(Default)]
pub struct MemoryTokenStore {
    by_hash: DashMap<TokenHash, TokenRecord>,
}

#[async_trait]
impl ApiTokenStore for MemoryTokenStore {
    async fn insert(&self, record: TokenRecord) {
        self.by_hash.insert(record.hash, record);
    }

    async fn find(&self, hash: &TokenHash) -> Option<TokenRecord> {
        self.by_hash.get(hash).map(|r| r.clone())
    }

    async fn list(&self, owner: Option<&str>) -> Vec<TokenInfo> {
        let mut all: Vec<TokenInfo> = self
            .by_hash
            .iter()
            .filter(|r| owner.is_none_or(|o| r.info.owner == o))
            .map(|r| r.info.clone())
            .collect();
        all.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        all
    }

    async fn get(&self, id: &str) -> Option<TokenInfo> {
        self.by_hash
            .iter()
            .find(|r| r.info.id == id)
            .map(|r| r.info.clone())
    }

    async fn remove(&self, id: &str) -> Option<TokenInfo> {
        let hash = self.by_hash.iter().find(|r| r.info.id == id)?.hash;
        self.by_hash.remove(&hash).map(|(_, r)| r.info)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no such token")]
    NotFound,
    #[error("this token belongs to another user")]
    Forbidden,
    #[error("a token needs a name of 1 to 100 characters")]
    BadName,
    #[error("{MAX_PER_USER} tokens is the most a user may have; revoke one first")]
    TooMany,
}

pub struct ApiTokens {
    store: Arc<dyn ApiTokenStore>,
}

impl ApiTokens {
    pub fn new(store: Arc<dyn ApiTokenStore>) -> Self {
        Self { store }
    }

    /// Makes a token acting as `owner`; returns the secret (to be shown once) and its record.
    pub async fn create(
        &self,
        owner: Identity,
        name: &str,
    ) -> Result<(String, TokenInfo), TokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(TokenError::BadName);
        }
        if self.store.list(Some(&owner.user)).await.len() >= MAX_PER_USER {
            return Err(TokenError::TooMany);
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_token());
        let info = TokenInfo {
            id: random_token()[..12].to_string(),
            owner: owner.user.clone(),
            name: name.to_string(),
            created_unix_ms: crate::clock::now_unix_ms(),
        };
        self.store
            .insert(TokenRecord {
                info: info.clone(),
                identity: owner,
                hash: hash(&secret),
            })
            .await;
        Ok((secret, info))
    }

    /// The identity a presented token acts as; `None` for an unknown or revoked token.
    pub async fn authenticate(&self, presented: &str) -> Option<(Identity, TokenInfo)> {
        if !presented.starts_with(TOKEN_PREFIX) {
            return None;
        }
        self.store
            .find(&hash(presented))
            .await
            .map(|r| (r.identity, r.info))
    }

    /// Whether the token `id` is still valid (not revoked).
    pub async fn exists(&self, id: &str) -> bool {
        self.store.get(id).await.is_some()
    }

    /// `who`'s tokens, or everyone's when an admin asks for all.
    pub async fn list(&self, who: &Identity, all: bool) -> Vec<TokenInfo> {
        let owner = (!(all && who.is_admin)).then_some(who.user.as_str());
        self.store.list(owner).await
    }

    /// Revokes a token of `who`'s own, or anyone's when `who` is an admin.
    pub async fn revoke(&self, who: &Identity, id: &str) -> Result<TokenInfo, TokenError> {
        let info = self.store.get(id).await.ok_or(TokenError::NotFound)?;
        if info.owner != who.user && !who.is_admin {
            return Err(TokenError::Forbidden);
        }
        self.store.remove(id).await.ok_or(TokenError::NotFound)
    }
}

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, is_admin: bool) -> Identity {
        Identity {
            user: user.into(),
            groups: vec![],
            is_admin,
        }
    }

    fn tokens() -> ApiTokens {
        ApiTokens::new(Arc::new(MemoryTokenStore::default()))
    }

    #[tokio::test]
    async fn a_token_acts_as_its_owner_until_revoked() {
        let t = tokens();
        let (secret, info) = t.create(who("alice", false), "ci").await.expect("create");
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() > 40);
        let (identity, _) = t.authenticate(&secret).await.expect("valid");
        assert_eq!(identity.user, "alice");
        assert!(t.authenticate(&format!("{secret}x")).await.is_none());
        assert_eq!(
            t.revoke(&who("bob", false), &info.id).await,
            Err(TokenError::Forbidden)
        );
        t.revoke(&who("alice", false), &info.id)
            .await
            .expect("revoke");
        assert!(t.authenticate(&secret).await.is_none());
    }

    #[tokio::test]
    async fn admins_see_and_revoke_everyones_tokens_and_users_only_their_own() {
        let t = tokens();
        let (_, a) = t.create(who("alice", false), "a").await.expect("a");
        t.create(who("bob", false), "b").await.expect("b");
        assert_eq!(t.list(&who("alice", false), true).await.len(), 1);
        assert_eq!(t.list(&who("root", true), true).await.len(), 2);
        t.revoke(&who("root", true), &a.id)
            .await
            .expect("admin revokes");
        assert_eq!(
            t.create(who("x", false), " ").await,
            Err(TokenError::BadName)
        );
    }
}
