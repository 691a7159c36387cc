//! The web side of OpenID Connect login: sending the browser to the provider, taking it back
//! on ShinyProxy's callback path, and keeping a session's tokens fresh. It plugs into the
//! login seam as [`OidcMethod`].

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::context::RequestCtx;
use super::login_method::LoginMethod;
use super::pages::error_page;
use super::{AppState, cookies};
use crate::auth::oidc::{CALLBACK_PATH, OidcError, OidcLogin, PENDING_COOKIE};
use crate::auth::session::COOKIE_NAME;
use crate::auth::{Identity, Session};
use crate::config::{Config, SameSite};
use crate::observe::LoginOutcome;

/// `authentication: openid` on the login seam.
#[derive(Clone)]
pub struct OidcMethod(Arc<Inner>);

struct Inner {
    login: OidcLogin,
    /// Sessions whose tokens are being refreshed, so concurrent requests refresh once.
    refreshing: dashmap::DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl OidcMethod {
    pub fn register(
        config: &Config,
        store: &Arc<dyn crate::store::Store>,
    ) -> anyhow::Result<Arc<dyn LoginMethod>> {
        let cfg = config
            .proxy
            .openid
            .clone()
            .ok_or_else(|| anyhow::anyhow!("authentication: openid without proxy.openid"))?;
        Ok(Arc::new(OidcMethod(Arc::new(Inner {
            login: OidcLogin::new(cfg, store.clone())?,
            refreshing: Default::default(),
        }))))
    }
}

#[async_trait::async_trait]
impl LoginMethod for OidcMethod {
    async fn begin(
        &self,
        st: &AppState,
        ctx: &RequestCtx,
        headers: &HeaderMap,
        next: String,
    ) -> Response {
        begin(&self.0.login, st, ctx, headers, next).await
    }

    fn routes(&self, router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
        let own = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .route("/oauth2/authorization/shinyproxy", get(authorize))
            .layer(Extension(self.clone()));
        router.merge(own)
    }

    async fn keep_fresh(&self, st: &AppState, session: Arc<Session>) -> Option<Arc<Session>> {
        keep_fresh(&self.0, st, session).await
    }

    async fn after_logout(&self, st: &AppState, session: &Session) -> Response {
        // Back to /login would log the user straight in again while the provider's own
        // session lasts, so the provider's logout comes next, or a page that says it is done.
        match self.0.login.logout_url(session.oidc.as_ref()) {
            Some(url) => Redirect::to(&url).into_response(),
            None => error_page(
                st,
                None,
                StatusCode::OK,
                "Logged out",
                "You are logged out of this site. You may still be logged in at your identity provider.",
            ),
        }
    }

    fn basic_refusal(&self) -> Option<&'static str> {
        Some(
            "this server logs in through OpenID Connect, not with passwords; \
             scripts use an API token (Authorization: Bearer)",
        )
    }
}

/// Sends the browser to the provider's login; afterwards it lands on `next`.
async fn begin(
    oidc: &OidcLogin,
    st: &AppState,
    ctx: &RequestCtx,
    headers: &HeaderMap,
    next: String,
) -> Response {
    // Behind a load balancer that rewrites Host, the public name is in X-Forwarded-Host. A
    // forged one only yields a redirect URI the provider refuses.
    let host = headers
        .get("x-forwarded-host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    let redirect_uri = format!(
        "{}://{host}{}{CALLBACK_PATH}",
        ctx.scheme(),
        st.config().server.context_path
    );
    let browser = cookies::read(headers, PENDING_COOKIE);
    match oidc.start(&redirect_uri, next, browser.as_deref()).await {
        Ok(started) => {
            let mut resp = Redirect::to(&started.redirect_to).into_response();
            // Lax whatever the session cookie's setting: the provider sends the browser back
            // with a cross-site navigation, on which Strict cookies are withheld.
            if let Some(c) =
                cookies::set(PENDING_COOKIE, &started.cookie, ctx.secure, SameSite::Lax)
            {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => failed(st, ctx, &e),
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `/oauth2/authorization/shinyproxy`, the start of the flow under Spring Security's path.
async fn authorize(
    State(st): State<Arc<AppState>>,
    Extension(method): Extension<OidcMethod>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = super::login::safe_next(q.next.as_deref(), "/");
    begin(&method.0.login, &st, &ctx, &headers, next).await
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `/login/oauth2/code/shinyproxy`: the provider sends the browser back here with a code.
async fn callback(
    State(st): State<Arc<AppState>>,
    Extension(method): Extension<OidcMethod>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let oidc = &method.0.login;
    let same_site = st.config().proxy.same_site_cookie;
    let pending = cookies::read(&headers, PENDING_COOKIE);
    let result = match (&q.error, &q.code, &q.state) {
        (Some(error), _, _) => Err(OidcError::Refused(match &q.error_description {
            Some(d) => format!("{error} ({d})"),
            None => error.clone(),
        })),
        (None, Some(code), Some(state)) => oidc.finish(pending.as_deref(), code, state).await,
        _ => Err(OidcError::Invalid(
            "the callback has no code or no state".into(),
        )),
    };
    // The pending cookie stays: other tabs of this browser may have logins under way.
    match result {
        Ok(done) => {
            let is_admin = st.config().proxy.is_admin(&done.user, &done.groups);
            let identity = Identity {
                user: done.user,
                groups: done.groups,
                is_admin,
            };
            tracing::info!(event = "login", user = %identity.user, ip = %ctx.client_ip, method = "openid", "logged in");
            st.manager
                .metrics()
                .login("openid", LoginOutcome::Success, &identity.user);
            if let Some(old) = &ctx.session {
                st.sessions.delete(&old.id).await;
            }
            let mut session = Session::new(identity);
            session.oidc = Some(done.tokens);
            if let Err(e) = st.sessions.save(&session).await {
                return failed(&st, &ctx, &OidcError::Store(e.to_string()));
            }
            let mut resp = Redirect::to(&done.next).into_response();
            if let Some(c) = cookies::set(COOKIE_NAME, &session.id, ctx.secure, same_site) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => failed(&st, &ctx, &e),
    }
}

fn failed(st: &AppState, ctx: &RequestCtx, e: &OidcError) -> Response {
    tracing::warn!(event = "login_failed", method = "openid", ip = %ctx.client_ip, reason = %e.detail(), "login failed");
    let outcome = match e {
        OidcError::Unavailable(_) | OidcError::Store(_) => LoginOutcome::Unavailable,
        _ => LoginOutcome::Refused,
    };
    // The provider refused before naming anyone.
    st.manager.metrics().login("openid", outcome, "");
    let status = match e {
        OidcError::Unavailable(_) | OidcError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        OidcError::NoPendingLogin | OidcError::StateMismatch => StatusCode::BAD_REQUEST,
        OidcError::Refused(_) | OidcError::Invalid(_) => StatusCode::UNAUTHORIZED,
        OidcError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(
        st,
        None,
        status,
        "Login failed",
        &format!(
            "{}{} Log in again from the start page.",
            capitalised(&e.to_string()),
            "."
        ),
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The session as it may be used now: one whose access token expired is refreshed with its
/// refresh token, or ended when that fails. Concurrent requests refresh it once.
async fn keep_fresh(method: &Inner, st: &AppState, session: Arc<Session>) -> Option<Arc<Session>> {
    if !session.expired() {
        return Some(session);
    }
    let oidc = &method.login;
    let Some(tokens) = &session.oidc else {
        st.sessions.delete(&session.id).await;
        return None;
    };
    let lock = method
        .refreshing
        .entry(session.id.clone())
        .or_default()
        .clone();
    let _guard = lock.lock().await;
    // Another request may have refreshed (or ended) it while this one waited.
    let result = match st.sessions.load(&session.id).await {
        Ok(Some(current)) if current.expired() => refresh(st, oidc, &current, tokens).await,
        Ok(other) => other,
        // The store is unreachable: ask again on the next request.
        Err(_) => Some(session.clone()),
    };
    method.refreshing.remove(&session.id);
    result
}

async fn refresh(
    st: &AppState,
    oidc: &OidcLogin,
    current: &Session,
    tokens: &crate::auth::oidc::OidcTokens,
) -> Option<Arc<Session>> {
    let user = &current.identity.user;
    match oidc.refresh(current.oidc.as_ref().unwrap_or(tokens)).await {
        Ok(fresh) => {
            tracing::info!(event = "token_refreshed", %user, "refreshed the login's tokens");
            let mut renewed = current.clone();
            renewed.oidc = Some(fresh);
            if let Err(e) = st.sessions.save(&renewed).await {
                tracing::warn!(%user, error = %e, "the refreshed login could not be stored");
            }
            Some(Arc::new(renewed))
        }
        Err(e) => {
            tracing::info!(event = "session_expired", %user, reason = %e.detail(), "the login expired");
            st.sessions.delete(&current.id).await;
            None
        }
    }
}

/// What an app launched from this session learns from the login.
pub fn login_env(session: Option<&Session>) -> BTreeMap<String, String> {
    session
        .and_then(|s| s.oidc.as_ref())
        .map(|t| t.app_env())
        .unwrap_or_default()
}
