//! Where the provider's endpoints and signing keys are: discovered from the issuer, taken from
//! the config, or both (an explicit URL overrides the discovered one). Kept for an hour, so a
//! provider that rotates its keys is followed without a restart.

use crate::clock::Instant;
use openidconnect::core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{
    AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKeySetUrl,
    RedirectUrl, TokenUrl,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

use super::OidcError;
use crate::config::OpenIdConfig;

const REFRESH_AFTER: Duration = Duration::from_secs(3600);

pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

pub struct Endpoints {
    /// `None` when no issuer is configured: ID tokens are then not checked for their issuer.
    pub issuer: Option<IssuerUrl>,
    pub auth: AuthUrl,
    pub token: TokenUrl,
    pub userinfo: Option<String>,
    pub jwks: CoreJsonWebKeySet,
}

impl Endpoints {
    pub fn client(&self, cfg: &OpenIdConfig, redirect_uri: &str) -> Result<Client, OidcError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| OidcError::Config(format!("redirect URI '{redirect_uri}': {e}")))?;
        // Without a configured issuer the verifier still needs one; it is not checked then.
        let issuer = self
            .issuer
            .clone()
            .unwrap_or_else(|| IssuerUrl::from_url(self.auth.url().clone()));
        Ok(CoreClient::new(
            ClientId::new(cfg.client_id.clone()),
            issuer,
            self.jwks.clone(),
        )
        .set_client_secret(ClientSecret::new(cfg.client_secret.0.clone()))
        .set_auth_uri(self.auth.clone())
        .set_token_uri(self.token.clone())
        .set_redirect_uri(redirect))
    }
}

pub struct Provider {
    cfg: Arc<OpenIdConfig>,
    http: reqwest::Client,
    cached: Mutex<Option<(Arc<Endpoints>, Instant)>>,
}

impl Provider {
    pub fn new(cfg: Arc<OpenIdConfig>, http: reqwest::Client) -> Self {
        Self {
            cfg,
            http,
            cached: Mutex::new(None),
        }
    }

    /// The endpoints, asking the provider only when none are known or they are an hour old; a
    /// provider that is down at start-up is asked again at the next login.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, OidcError> {
        let mut cached = self.cached.lock().await;
        if let Some((e, at)) = cached.as_ref()
            && at.elapsed() < REFRESH_AFTER
        {
            return Ok(e.clone());
        }
        let fresh = Arc::new(self.resolve().await?);
        *cached = Some((fresh.clone(), Instant::now()));
        Ok(fresh)
    }

    async fn resolve(&self) -> Result<Endpoints, OidcError> {
        let cfg = &self.cfg;
        let url_err = |what: &str, e: openidconnect::url::ParseError| {
            OidcError::Config(format!("proxy.openid.{what}: {e}"))
        };
        let metadata = match &cfg.issuer {
            Some(issuer) => {
                let issuer = IssuerUrl::new(issuer.clone()).map_err(|e| url_err("issuer", e))?;
                let m = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| {
                        OidcError::Unavailable(format!(
                            "discovery at {} failed: {}",
                            cfg.issuer.as_deref().unwrap_or_default(),
                            error_chain(&e)
                        ))
                    })?;
                Some(m)
            }
            None => None,
        };
        let auth = match (&cfg.auth_url, &metadata) {
            (Some(u), _) => AuthUrl::new(u.clone()).map_err(|e| url_err("auth-url", e))?,
            (None, Some(m)) => m.authorization_endpoint().clone(),
            (None, None) => {
                return Err(OidcError::Config("proxy.openid.auth-url is missing".into()));
            }
        };
        let token = match (
            &cfg.token_url,
            metadata.as_ref().and_then(|m| m.token_endpoint()),
        ) {
            (Some(u), _) => TokenUrl::new(u.clone()).map_err(|e| url_err("token-url", e))?,
            (None, Some(t)) => t.clone(),
            (None, None) => {
                return Err(OidcError::Config(
                    "the provider names no token endpoint; set proxy.openid.token-url".into(),
                ));
            }
        };
        let userinfo = cfg.userinfo_url.clone().or_else(|| {
            metadata
                .as_ref()
                .and_then(|m| m.userinfo_endpoint())
                .map(|u| u.url().to_string())
        });
        let jwks = match (&cfg.jwks_url, &metadata) {
            (Some(u), _) => {
                let url = JsonWebKeySetUrl::new(u.clone()).map_err(|e| url_err("jwks-url", e))?;
                CoreJsonWebKeySet::fetch_async(&url, &self.http)
                    .await
                    .map_err(|e| {
                        OidcError::Unavailable(format!(
                            "fetching the signing keys from {u} failed: {}",
                            error_chain(&e)
                        ))
                    })?
            }
            (None, Some(m)) => m.jwks().clone(),
            (None, None) => {
                return Err(OidcError::Config("proxy.openid.jwks-url is missing".into()));
            }
        };
        Ok(Endpoints {
            issuer: metadata.map(|m| m.issuer().clone()),
            auth,
            token,
            userinfo,
            jwks,
        })
    }
}

/// An error with its causes, for logs: the crate's top-level messages alone rarely say what
/// went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
