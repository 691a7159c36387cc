//! The one seam every login method plugs into.
//!
//! A method is either of the password kind (simple, LDAP, web service: the login form and HTTP
//! Basic, checked by an [`Authenticator`]) or of the redirect kind (OpenID Connect, SAML: the
//! browser goes to the provider and comes back on the method's own routes). Either way the
//! rest of the web layer asks only this trait: what `/login` does, which routes complete a
//! login, whether a session still holds (refresh), and where the browser goes after logout.
//! Adding a method touches its own module and one line of [`register`].
//!
//! The trusted header (`customHeader`), bearer tokens and the anonymous user of
//! `authentication: none` are [`RequestAuthenticator`]s: they name the user of each request
//! rather than log a browser in ([`request_authenticators`], implemented in `web::context`).
//!
//! [`Authenticator`]: crate::auth::Authenticator

use async_trait::async_trait;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::AppState;
use super::context::RequestCtx;
use crate::auth::Session;
use crate::config::{AuthMethod, Config};
use crate::store::Store;

#[async_trait]
pub trait LoginMethod: Send + Sync + 'static {
    /// `/login` for someone not logged in: the form, or the way to the provider; the user
    /// lands on `next` afterwards.
    async fn begin(
        &self,
        st: &AppState,
        ctx: &RequestCtx,
        headers: &HeaderMap,
        next: String,
    ) -> Response;

    /// The routes that complete a login (callbacks, the ACS, metadata).
    fn routes(&self, router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
        router
    }

    /// The session as it may be used now: refreshed where the method can, `None` when it ended.
    async fn keep_fresh(&self, st: &AppState, session: Arc<Session>) -> Option<Arc<Session>> {
        if session.expired() {
            st.sessions.delete(&session.id).await;
            return None;
        }
        Some(session)
    }

    /// Where the browser goes once its session here ended: the provider's logout, or back to
    /// the login page.
    async fn after_logout(&self, _st: &AppState, _session: &Session) -> Response {
        Redirect::to("/login").into_response()
    }

    /// Why HTTP Basic is refused, for methods whose users have no password here.
    fn basic_refusal(&self) -> Option<&'static str> {
        None
    }
}

/// What a [`RequestAuthenticator`] made of a request.
pub enum Identified {
    /// Not this authenticator's business: the request goes on with this session (or none).
    Unchanged(Option<Arc<Session>>),
    /// A token names the user, for this request only (no cookie; no CSRF token needed).
    Token {
        session: Arc<Session>,
        /// vestibule's API token, when it was one.
        token_id: Option<String>,
    },
    /// A browser session; a `new` one is given its cookie.
    Session { session: Arc<Session>, new: bool },
    /// The request is refused with this answer.
    Refused(Response),
}

/// Names the user of one request, in the order [`request_authenticators`] gives.
#[async_trait]
pub trait RequestAuthenticator: Send + Sync + 'static {
    /// `current` is the session the request's cookie names, as the login method keeps it.
    async fn identify(
        &self,
        st: &AppState,
        req: &mut Request,
        client_ip: IpAddr,
        current: Option<Arc<Session>>,
    ) -> Identified;
}

/// The request authenticators `config` asks for: bearer tokens always, then the trusted
/// header or the anonymous user where that is the login method.
pub fn request_authenticators(config: &Config) -> Vec<Arc<dyn RequestAuthenticator>> {
    use super::context::{Anonymous, BearerTokens, TrustedHeader};
    let mut all: Vec<Arc<dyn RequestAuthenticator>> = vec![Arc::new(BearerTokens)];
    match config.proxy.authentication {
        AuthMethod::CustomHeader => all.push(Arc::new(TrustedHeader)),
        AuthMethod::None => all.push(Arc::new(Anonymous)),
        _ => {}
    }
    all
}

/// The login method `config` asks for.
pub fn register(
    config: &Arc<Config>,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Arc<dyn LoginMethod>> {
    Ok(match config.proxy.authentication {
        AuthMethod::None
        | AuthMethod::Simple
        | AuthMethod::Ldap
        | AuthMethod::Webservice
        | AuthMethod::CustomHeader => Arc::new(super::login::PasswordForm),
        AuthMethod::OpenId => super::oidc::OidcMethod::register(config, store)?,
        AuthMethod::Saml => saml(config, store)?,
    })
}

#[cfg(feature = "saml")]
fn saml(config: &Arc<Config>, store: &Arc<dyn Store>) -> anyhow::Result<Arc<dyn LoginMethod>> {
    super::saml::SamlMethod::register(config, store)
}

#[cfg(not(feature = "saml"))]
fn saml(_: &Arc<Config>, _: &Arc<dyn Store>) -> anyhow::Result<Arc<dyn LoginMethod>> {
    anyhow::bail!(
        "authentication: saml needs a vestibule built with SAML (the default `saml` cargo \
         feature, left out by --no-default-features)"
    )
}
