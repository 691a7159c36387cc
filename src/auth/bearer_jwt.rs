//! `proxy.oauth2`: scripts may send an OAuth 2 access token that is a JWT signed by the
//! authorization server (`Authorization: Bearer eyJ…`). It is checked here against the
//! server's published keys (JWKS): signature, expiry, and issuer and audience when configured.

use crate::clock::Instant;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

use super::oidc::claims;
use crate::config::OAuth2Config;

/// Keys are fetched again after this long, so rotation is followed.
const KEYS_LIFETIME: Duration = Duration::from_secs(3600);
/// A token with an unknown key id makes the keys be fetched again, but not more often than
/// this, so unknown tokens cannot make vestibule hammer the server.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a valid JWT: {0}")]
    Malformed(String),
    #[error("the token is not signed with an accepted algorithm")]
    Algorithm,
    #[error("no key for this token")]
    UnknownKey,
    #[error("the token was rejected: {0}")]
    Rejected(String),
    #[error("the token names no user ('{0}' claim)")]
    NoUser(String),
    #[error("the authorization server's keys are unavailable: {0}")]
    Unavailable(String),
}

pub struct JwtBearer {
    cfg: OAuth2Config,
    http: reqwest::Client,
    keys: Mutex<Option<(Arc<JwkSet>, Instant)>>,
}

impl JwtBearer {
    pub fn new(cfg: OAuth2Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Self {
            cfg,
            http,
            keys: Mutex::new(None),
        })
    }

    /// Whether a bearer token looks like a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The user and groups a valid token names.
    pub async fn authenticate(&self, token: &str) -> Result<(String, Vec<String>), JwtError> {
        let header = decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        // Only public-key algorithms: with HMAC, anyone holding the public JWKS could sign.
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(JwtError::Algorithm);
        }
        let keys = self.keys(header.kid.as_deref()).await?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or(JwtError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtError::Rejected(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        match &self.cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.cfg.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| JwtError::Rejected(e.to_string()))?;
        let user = claims::username(&data.claims, &self.cfg.username_attribute)
            .ok_or_else(|| JwtError::NoUser(self.cfg.username_attribute.clone()))?;
        let groups = self
            .cfg
            .roles_claim
            .as_deref()
            .map(|c| claims::roles(&data.claims, c))
            .unwrap_or_default();
        Ok((user, groups))
    }

    async fn keys(&self, kid: Option<&str>) -> Result<Arc<JwkSet>, JwtError> {
        let mut cached = self.keys.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let known = kid.is_none_or(|k| keys.find(k).is_some());
            let fresh = at.elapsed() < KEYS_LIFETIME;
            if (known && fresh) || at.elapsed() < REFETCH_AT_MOST_EVERY {
                return Ok(keys.clone());
            }
        }
        let keys = Arc::new(self.fetch().await?);
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    async fn fetch(&self) -> Result<JwkSet, JwtError> {
        let url = &self.cfg.jwks_url;
        let unavailable = |e: &dyn std::error::Error| {
            JwtError::Unavailable(format!("{url}: {}", super::oidc::error_chain(e)))
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !resp.status().is_success() {
            return Err(JwtError::Unavailable(format!(
                "{url} answered {}",
                resp.status()
            )));
        }
        let body = resp.bytes().await.map_err(|e| unavailable(&e))?;
        // Keys of types this crate does not know are skipped rather than failing the set.
        let raw: Value = serde_json::from_slice(&body).map_err(|e| unavailable(&e))?;
        let keys = raw["keys"]
            .as_array()
            .map(|ks| {
                ks.iter()
                    .filter_map(|k| serde_json::from_value(k.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(JwkSet { keys })
    }
}
