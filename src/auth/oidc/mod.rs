//! OpenID Connect login (`authentication: openid`): the authorization-code flow with PKCE,
//! state and nonce, against any provider (Keycloak, Cognito, Entra ID, ...).
//!
//! Unlike password logins this is a redirect flow, so it lives beside the [`Authenticator`]
//! trait rather than in it: [`OidcLogin::start`] sends the browser to the provider, and
//! [`OidcLogin::finish`] checks what comes back on ShinyProxy's callback path.
//!
//! [`Authenticator`]: crate::auth::Authenticator

pub mod claims;
mod pending;
mod provider;
mod tokens;

pub use tokens::OidcTokens;

use base64::Engine;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{
    AccessTokenHash, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RefreshToken, RequestTokenError, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::config::OpenIdConfig;
use pending::{Pending, PendingLogins, TakeError};
use provider::Provider;
pub use provider::error_chain;

/// ShinyProxy's (Spring Security's) callback path, so existing client registrations work.
pub const CALLBACK_PATH: &str = "/login/oauth2/code/shinyproxy";
/// The short-lived cookie that ties the browser to its pending login.
pub const PENDING_COOKIE: &str = "vestibule_oidc";

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider is unavailable")]
    Unavailable(String),
    #[error("the login took too long, was already used, or was started in another browser")]
    NoPendingLogin,
    #[error("the login response does not belong to this login (state mismatch)")]
    StateMismatch,
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    #[error("the identity provider's answer was not acceptable")]
    Invalid(String),
    #[error("the login is misconfigured")]
    Config(String),
    /// Where logins in progress are kept cannot be reached (or is flooded).
    #[error("logins are paused: {0}")]
    Store(String),
}

impl OidcError {
    /// What the log should say, which may be more than the user is told.
    pub fn detail(&self) -> String {
        match self {
            OidcError::Unavailable(d) | OidcError::Invalid(d) | OidcError::Config(d) => {
                format!("{self}: {d}")
            }
            _ => self.to_string(),
        }
    }
}

/// Who logged in, as the provider says.
pub struct LoggedIn {
    pub user: String,
    pub groups: Vec<String>,
    pub tokens: OidcTokens,
    pub next: String,
}

pub struct Started {
    /// The value of [`PENDING_COOKIE`] (the browser's own, when it already had one).
    pub cookie: String,
    /// The provider's authorization URL.
    pub redirect_to: String,
}

pub struct OidcLogin {
    cfg: Arc<OpenIdConfig>,
    http: reqwest::Client,
    provider: Provider,
    pending: PendingLogins,
}

impl OidcLogin {
    pub fn new(cfg: OpenIdConfig, store: Arc<dyn crate::store::Store>) -> anyhow::Result<Self> {
        let cfg = Arc::new(cfg);
        // Following redirects from the token endpoint would allow SSRF (openidconnect's advice).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(Self {
            provider: Provider::new(cfg.clone(), http.clone()),
            cfg,
            http,
            pending: PendingLogins::new(store),
        })
    }

    /// Begins a login: the browser is to carry `cookie` and go to `redirect_to`. `browser` is
    /// the browser's [`PENDING_COOKIE`] if it has one, so logins started in several tabs all
    /// complete.
    pub async fn start(
        &self,
        redirect_uri: &str,
        next: String,
        browser: Option<&str>,
    ) -> Result<Started, OidcError> {
        let endpoints = self.provider.endpoints().await?;
        let client = endpoints.client(&self.cfg, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.cfg.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let cookie = match browser {
            // Only a value of our own shape is reused, so a planted cookie cannot be weak.
            Some(b) if b.len() == 43 => b.to_string(),
            _ => crate::auth::session::random_token(),
        };
        self.pending
            .insert(
                state.secret(),
                &Pending {
                    browser: cookie.clone(),
                    nonce: nonce.secret().clone(),
                    pkce_verifier: verifier.secret().clone(),
                    next,
                    redirect_uri: redirect_uri.to_string(),
                },
            )
            .await
            .map_err(|e| OidcError::Store(e.to_string()))?;
        Ok(Started {
            cookie,
            redirect_to: url.to_string(),
        })
    }

    /// Completes a login from the callback's `code` and `state` and the browser's cookie.
    pub async fn finish(
        &self,
        cookie: Option<&str>,
        code: &str,
        state: &str,
    ) -> Result<LoggedIn, OidcError> {
        let browser = cookie.ok_or(OidcError::NoPendingLogin)?;
        let pending = match self.pending.take(state, browser).await {
            Ok(p) => p,
            Err(TakeError::OtherBrowser) => return Err(OidcError::NoPendingLogin),
            Err(TakeError::UnknownState) => return Err(OidcError::StateMismatch),
            Err(TakeError::Store(e)) => return Err(OidcError::Store(e.to_string())),
        };
        let endpoints = self.provider.endpoints().await?;
        let client = endpoints.client(&self.cfg, &pending.redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Invalid("the token response has no ID token".into()))?;
        let mut verifier = client.id_token_verifier();
        if endpoints.issuer.is_none() {
            verifier = verifier.require_issuer_match(false);
        }
        let verified = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::Invalid(format!("ID token: {}", error_chain(&e))))?;
        if let Some(expected) = verified.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::Invalid(format!("ID token: {e}")))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::Invalid(format!("ID token: {e}")))?;
            let actual = AccessTokenHash::from_token(response.access_token(), alg, key)
                .map_err(|e| OidcError::Invalid(format!("access token hash: {e}")))?;
            if actual != *expected {
                return Err(OidcError::Invalid(
                    "the access token does not match the ID token's at_hash".into(),
                ));
            }
        }
        let id_token_text = id_token.to_string();
        // Verified above; decoded again only to read claims the crate's types do not model.
        let mut claims = jwt_payload(&id_token_text)?;
        let access_token = response.access_token().secret().clone();
        if let Some(url) = &endpoints.userinfo {
            self.merge_userinfo(url, &access_token, &mut claims).await?;
        }
        let user = claims::username(&claims, &self.cfg.username_attribute).ok_or_else(|| {
            OidcError::Invalid(format!(
                "the user has no '{}' claim (proxy.openid.username-attribute)",
                self.cfg.username_attribute
            ))
        })?;
        let groups = self
            .cfg
            .roles_claim
            .as_deref()
            .map(|c| claims::roles(&claims, c))
            .unwrap_or_default();
        Ok(LoggedIn {
            user,
            groups,
            tokens: OidcTokens {
                access_token,
                id_token: Some(id_token_text),
                refresh_token: response.refresh_token().map(|t| t.secret().clone()),
                expires_at: expires_at(response.expires_in()),
            },
            next: pending.next,
        })
    }

    /// New tokens for a session whose access token expired; `Err` ends the session.
    pub async fn refresh(&self, old: &OidcTokens) -> Result<OidcTokens, OidcError> {
        let refresh = old
            .refresh_token
            .as_ref()
            .ok_or_else(|| OidcError::Refused("no refresh token".into()))?;
        let endpoints = self.provider.endpoints().await?;
        // The refresh grant sends no redirect URI; the client just needs one to be built.
        let client = endpoints.client(&self.cfg, "http://localhost/")?;
        let refresh = RefreshToken::new(refresh.clone());
        let response = client
            .exchange_refresh_token(&refresh)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(OidcTokens {
            access_token: response.access_token().secret().clone(),
            id_token: response
                .id_token()
                .map(|t| t.to_string())
                .or_else(|| old.id_token.clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| old.refresh_token.clone()),
            expires_at: expires_at(response.expires_in()),
        })
    }

    /// Where the browser goes after vestibule's logout: the configured `logout-url`, with the
    /// ID token as `id_token_hint` (RP-initiated logout) unless the URL already carries one.
    pub fn logout_url(&self, tokens: Option<&OidcTokens>) -> Option<String> {
        let base = self.cfg.logout_url.as_ref()?;
        let hint = tokens.and_then(|t| t.id_token.as_deref());
        match hint {
            Some(id_token) if !base.contains("id_token_hint=") => {
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(format!(
                    "{base}{sep}id_token_hint={}",
                    urlencoding::encode(id_token)
                ))
            }
            _ => Some(base.clone()),
        }
    }

    async fn merge_userinfo(
        &self,
        url: &str,
        access_token: &str,
        claims: &mut Map<String, Value>,
    ) -> Result<(), OidcError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                OidcError::Unavailable(format!("userinfo at {url}: {}", error_chain(&e)))
            })?;
        if !response.status().is_success() {
            return Err(OidcError::Invalid(format!(
                "userinfo at {url} answered {}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            OidcError::Unavailable(format!("userinfo at {url}: {}", error_chain(&e)))
        })?;
        let Ok(info) = serde_json::from_slice::<Map<String, Value>>(&body) else {
            // A signed (JWT) userinfo answer: the ID token's claims are used alone.
            tracing::debug!(
                url,
                "userinfo is not plain JSON; using the ID token's claims"
            );
            return Ok(());
        };
        // OpenID Connect Core 5.3.2: a userinfo answer for another subject must be ignored.
        if info.get("sub") != claims.get("sub") {
            return Err(OidcError::Invalid(
                "userinfo names another subject than the ID token".into(),
            ));
        }
        claims.extend(info);
        Ok(())
    }
}

fn expires_at(expires_in: Option<Duration>) -> Option<u64> {
    expires_in.map(|d| crate::clock::now_unix_secs() + d.as_secs())
}

fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    e: RequestTokenError<RE, T>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(r) => OidcError::Refused(r.to_string()),
        RequestTokenError::Request(e) => {
            OidcError::Unavailable(format!("token endpoint: {}", error_chain(&e)))
        }
        other => OidcError::Invalid(format!("token endpoint: {}", error_chain(&other))),
    }
}

fn jwt_payload(jwt: &str) -> Result<Map<String, Value>, OidcError> {
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::Invalid("the ID token is not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| OidcError::Invalid(format!("ID token payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Invalid(format!("ID token payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn login(logout_url: Option<&str>) -> OidcLogin {
        OidcLogin::new(
            OpenIdConfig {
                issuer: Some("https://idp.example".into()),
                auth_url: None,
                token_url: None,
                jwks_url: None,
                userinfo_url: None,
                client_id: "c".into(),
                client_secret: Secret("s".into()),
                scopes: vec![],
                username_attribute: "email".into(),
                roles_claim: None,
                logout_url: logout_url.map(String::from),
            },
            Arc::new(crate::store::MemoryStore::default()),
        )
        .expect("client")
    }

    fn tokens() -> OidcTokens {
        OidcTokens {
            access_token: "at".into(),
            id_token: Some("a.b+c".into()),
            refresh_token: None,
            expires_at: None,
        }
    }

    #[test]
    fn logout_adds_the_id_token_hint_unless_the_url_has_one() {
        let t = tokens();
        assert_eq!(
            login(Some("https://idp/logout"))
                .logout_url(Some(&t))
                .as_deref(),
            Some("https://idp/logout?id_token_hint=a.b%2Bc")
        );
        assert_eq!(
            login(Some("https://idp/logout?client_id=x"))
                .logout_url(Some(&t))
                .as_deref(),
            Some("https://idp/logout?client_id=x&id_token_hint=a.b%2Bc")
        );
        let fixed = "https://idp/logout?id_token_hint=given";
        assert_eq!(
            login(Some(fixed)).logout_url(Some(&t)).as_deref(),
            Some(fixed)
        );
        assert_eq!(login(None).logout_url(Some(&t)), None);
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let text = format!("{:?}", tokens());
        assert!(!text.contains("at\"") && !text.contains("a.b+c"), "{text}");
    }
}
