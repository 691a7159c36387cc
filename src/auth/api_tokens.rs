//! Personal API tokens for scripts: `Authorization: Bearer vst_…` acts as the token's owner.
//!
//! A token is 256 random bits, shown once at creation; only its SHA-256 is kept. A slow hash
//! (argon2) adds nothing for a secret that cannot be guessed, and would slow every request.
//! Tokens live in the shared [`Store`], so they hold across replicas and restarts (with Redis).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{ReadThrough, Source, Store, StoreError};

use super::Identity;
use super::session::random_token;

/// Marks vestibule's tokens, so a bearer token meant for an app is passed through untouched
/// and a leaked one is easy to recognise (secret scanners key on prefixes).
pub const TOKEN_PREFIX: &str = "vst_";
/// At most this many tokens per user, so a script gone wrong cannot fill the memory.
pub const MAX_PER_USER: usize = 100;

/// What may be shown about a token: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub created_unix_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    info: TokenInfo,
    /// Who the token acts as (the owner's groups when it was made).
    identity: Identity,
    /// The SHA-256 of the secret, in hex.
    hash: String,
}

/// Every token's record, by id.
const RECORDS: &str = "api-tokens";
/// Revocation on one replica evicts the others' copies through this channel.
const REVOKED: &str = "api-token-revoked";
/// How long a replica serves its copy of a token before checking it is still there.
const FRESH_FOR: Duration = Duration::from_secs(15);

fn by_hash(hash: &str) -> String {
    format!("api-token:{hash}")
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tokens live in the [`Store`], so a token made on one replica works on all; each replica keeps
/// a copy of the tokens it has seen, so a script's calls do not wait on a remote store.
#[derive(Clone)]
pub struct ApiTokens {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    copies: Arc<ReadThrough<TokenRecord>>,
}

impl ApiTokens {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let inner = Arc::new(Inner {
            store,
            copies: Arc::new(ReadThrough::new(FRESH_FOR, Duration::from_secs(3600))),
        });
        crate::store::follow(inner.store.as_ref(), &inner.copies, REVOKED);
        Self { inner }
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
        if self.inner.records(Some(&owner.user)).await?.len() >= MAX_PER_USER {
            return Err(TokenError::TooMany);
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_token());
        let info = TokenInfo {
            id: random_token()[..12].to_string(),
            owner: owner.user.clone(),
            name: name.to_string(),
            created_unix_ms: crate::clock::now_unix_ms(),
        };
        let record = TokenRecord {
            info: info.clone(),
            identity: owner,
            hash: hash(&secret),
        };
        let json = serde_json::to_string(&record).map_err(|_| TokenError::BadName)?;
        let store = &self.inner.store;
        store.map_set(RECORDS, &info.id, &json).await?;
        store.set(&by_hash(&record.hash), &info.id, None).await?;
        Ok((secret, info))
    }

    /// The identity a presented token acts as; `None` for an unknown or revoked token, or while
    /// the store is unreachable for a token this replica has not seen.
    pub async fn authenticate(&self, presented: &str) -> Option<(Identity, TokenInfo)> {
        if !presented.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let hash = hash(presented);
        let record = match crate::store::read(&self.inner, &hash).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check an API token");
                None
            }
        }?;
        Some((record.identity.clone(), record.info.clone()))
    }

    /// Whether the token `id` is still valid (not revoked); taken to be while the store is
    /// unreachable.
    pub async fn exists(&self, id: &str) -> bool {
        self.inner
            .store
            .map_get(RECORDS, id)
            .await
            .map_or(true, |r| r.is_some())
    }

    /// `who`'s tokens, or everyone's when an admin asks for all.
    pub async fn list(&self, who: &Identity, all: bool) -> Result<Vec<TokenInfo>, TokenError> {
        let owner = (!(all && who.is_admin)).then_some(who.user.as_str());
        let mut infos: Vec<TokenInfo> = self
            .inner
            .records(owner)
            .await?
            .into_iter()
            .map(|r| r.info)
            .collect();
        infos.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        Ok(infos)
    }

    /// Revokes a token of `who`'s own, or anyone's when `who` is an admin.
    pub async fn revoke(&self, who: &Identity, id: &str) -> Result<TokenInfo, TokenError> {
        let store = &self.inner.store;
        let record = store
            .map_get(RECORDS, id)
            .await?
            .and_then(|j| serde_json::from_str::<TokenRecord>(&j).ok())
            .ok_or(TokenError::NotFound)?;
        if record.info.owner != who.user && !who.is_admin {
            return Err(TokenError::Forbidden);
        }
        if !store.map_delete(RECORDS, id).await? {
            return Err(TokenError::NotFound);
        }
        store.delete(&by_hash(&record.hash)).await?;
        self.inner.copies.evict(&record.hash);
        if let Err(e) = store.publish(REVOKED, &record.hash).await {
            tracing::warn!(error = %e, "a revocation could not reach the other replicas at once");
        }
        Ok(record.info)
    }
}

#[async_trait::async_trait]
impl Source<TokenRecord> for Inner {
    fn copies(&self) -> &ReadThrough<TokenRecord> {
        &self.copies
    }

    async fn fetch(&self, hash: &str) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let record = match self.store.get(&by_hash(hash)).await? {
            Some(id) => self
                .store
                .map_get(RECORDS, &id)
                .await?
                .and_then(|j| serde_json::from_str::<TokenRecord>(&j).ok()),
            None => None,
        };
        match record {
            Some(r) if r.hash == hash => {
                let r = Arc::new(r);
                self.copies.put(hash, r.clone());
                Ok(Some(r))
            }
            _ => {
                self.copies.evict(hash);
                Ok(None)
            }
        }
    }
}

impl Inner {
    async fn records(&self, owner: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self
            .store
            .map_entries(RECORDS)
            .await?
            .into_iter()
            .filter_map(|(_, j)| serde_json::from_str::<TokenRecord>(&j).ok())
            .filter(|r| owner.is_none_or(|o| r.info.owner == o))
            .collect())
    }
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        ApiTokens::new(Arc::new(crate::store::MemoryStore::default()))
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
        assert_eq!(
            t.list(&who("alice", false), true).await.map(|l| l.len()),
            Ok(1)
        );
        assert_eq!(
            t.list(&who("root", true), true).await.map(|l| l.len()),
            Ok(2)
        );
        t.revoke(&who("root", true), &a.id)
            .await
            .expect("admin revokes");
        assert_eq!(
            t.create(who("x", false), " ").await,
            Err(TokenError::BadName)
        );
    }
}
