//! The web side of SAML login: the SP metadata, sending the browser to the IdP, the ACS that
//! takes the IdP's POST, and the logout.
//!
//! The SameSite problem is designed out. The IdP's POST to the ACS is a cross-site request,
//! on which browsers withhold SameSite=Lax (and Strict) cookies, so the ACS needs no cookie:
//! the request it answers is found by RelayState and InResponseTo in the shared store. What
//! binds the login to the browser that started it is checked one step later, at
//! `/saml/complete`, which the ACS redirects to with a 303: that is a top-level GET
//! navigation, on which Lax cookies are sent.
//!
//! SAML plugs into the login seam as [`SamlMethod`]; nothing else in the web layer knows it.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;

use super::context::RequestCtx;
use super::login_method::LoginMethod;
use super::pages::error_page;
use super::{AppState, cookies};
use crate::auth::saml::{
    ACS_PATH, COMPLETE_PATH, METADATA_PATH, PENDING_COOKIE, SINGLE_LOGOUT_PATH, SamlError,
    SamlLogin,
};
use crate::auth::session::COOKIE_NAME;
use crate::auth::{Identity, Session};
use crate::config::{Config, SameSite};
use crate::observe::LoginOutcome;

/// `authentication: saml` on the login seam.
#[derive(Clone)]
pub struct SamlMethod(Arc<SamlLogin>);

impl SamlMethod {
    pub fn register(
        config: &Config,
        store: &Arc<dyn crate::store::Store>,
    ) -> anyhow::Result<Arc<dyn LoginMethod>> {
        let cfg = config
            .proxy
            .saml
            .clone()
            .ok_or_else(|| anyhow::anyhow!("authentication: saml without proxy.saml"))?;
        Ok(Arc::new(SamlMethod(Arc::new(SamlLogin::new(
            cfg,
            store.clone(),
        )?))))
    }
}

#[async_trait::async_trait]
impl LoginMethod for SamlMethod {
    async fn begin(
        &self,
        st: &AppState,
        ctx: &RequestCtx,
        headers: &HeaderMap,
        next: String,
    ) -> Response {
        begin(&self.0, st, ctx, headers, next).await
    }

    fn routes(&self, router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
        let own = Router::new()
            .route(METADATA_PATH, get(metadata))
            .route(ACS_PATH, post(acs))
            .route(COMPLETE_PATH, get(complete))
            .route(SINGLE_LOGOUT_PATH, get(single_logout).post(single_logout))
            .layer(Extension(self.clone()));
        router.merge(own)
    }

    async fn after_logout(&self, st: &AppState, session: &Session) -> Response {
        match self.0.logout_redirect(session.saml.as_ref()).await {
            Some(url) => Redirect::to(&url).into_response(),
            // Back to /login would log the user straight in again while the IdP's own session
            // lasts.
            None => logged_out(st),
        }
    }

    fn basic_refusal(&self) -> Option<&'static str> {
        Some(
            "this server logs in through SAML, not with passwords; scripts use an API token \
             (Authorization: Bearer)",
        )
    }
}

/// Sends the browser to the IdP's login; afterwards it lands on `next`.
async fn begin(
    saml: &SamlLogin,
    st: &AppState,
    ctx: &RequestCtx,
    headers: &HeaderMap,
    next: String,
) -> Response {
    let browser = cookies::read(headers, PENDING_COOKIE);
    match saml.start(next, browser.as_deref()).await {
        Ok(started) => {
            let mut resp = Redirect::to(&started.redirect_to).into_response();
            // Lax whatever the session cookie's setting: /saml/complete is reached by a
            // cross-site navigation chain, on which Strict cookies are withheld.
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

/// `/saml/metadata`: what the IdP needs to know about this service.
async fn metadata(
    State(st): State<Arc<AppState>>,
    Extension(SamlMethod(saml)): Extension<SamlMethod>,
) -> Response {
    match saml.metadata_xml().await {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(reason = %e.detail(), "the SAML metadata could not be made");
            failed_page(&st, &e)
        }
    }
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `/saml/SSO`, the assertion consumer service: the IdP's POST with the Response.
async fn acs(
    State(st): State<Arc<AppState>>,
    Extension(SamlMethod(saml)): Extension<SamlMethod>,
    Extension(ctx): Extension<RequestCtx>,
    Form(f): Form<AcsForm>,
) -> Response {
    let Some(response) = f.saml_response.filter(|r| !r.is_empty()) else {
        return failed(
            &st,
            &ctx,
            &SamlError::Malformed("the POST has no SAMLResponse".into()),
        );
    };
    match saml
        .accept(&response, f.relay_state.as_deref().unwrap_or_default())
        .await
    {
        Ok(code) => Redirect::to(&format!(
            "{COMPLETE_PATH}?code={}",
            urlencoding::encode(&code)
        ))
        .into_response(),
        Err(e) => failed(&st, &ctx, &e),
    }
}

#[derive(Deserialize)]
pub struct CompleteQuery {
    code: Option<String>,
}

/// `/saml/complete`: the verified login meets its browser, which gets its session.
async fn complete(
    State(st): State<Arc<AppState>>,
    Extension(SamlMethod(saml)): Extension<SamlMethod>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    Query(q): Query<CompleteQuery>,
) -> Response {
    let browser = cookies::read(&headers, PENDING_COOKIE);
    let done = match saml
        .complete(q.code.as_deref().unwrap_or_default(), browser.as_deref())
        .await
    {
        Ok(done) => done,
        Err(e) => return failed(&st, &ctx, &e),
    };
    let is_admin = st.config().proxy.is_admin(&done.user, &done.groups);
    let identity = Identity {
        user: done.user,
        groups: done.groups,
        is_admin,
    };
    tracing::info!(event = "login", user = %identity.user, ip = %ctx.client_ip, method = "saml", "logged in");
    st.manager
        .metrics()
        .login("saml", LoginOutcome::Success, &identity.user);
    // A new id at login, so a session id planted before login is worthless.
    if let Some(old) = &ctx.session {
        st.sessions.delete(&old.id).await;
    }
    let mut session = Session::new(identity);
    session.saml = Some(done.subject);
    if let Err(e) = st.sessions.save(&session).await {
        return failed(&st, &ctx, &SamlError::Store(e.to_string()));
    }
    let next = super::login::safe_next(Some(&done.next), "/");
    let mut resp = Redirect::to(&next).into_response();
    let same_site = st.config().proxy.same_site_cookie;
    if let Some(c) = cookies::set(COOKIE_NAME, &session.id, ctx.secure, same_site) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `/saml/SingleLogout`: the IdP sends the browser back after its single logout.
async fn single_logout(
    State(st): State<Arc<AppState>>,
    Extension(SamlMethod(saml)): Extension<SamlMethod>,
) -> Response {
    match saml.logout_url() {
        Some(url) => Redirect::to(&url).into_response(),
        None => logged_out(&st),
    }
}

fn logged_out(st: &AppState) -> Response {
    error_page(
        st,
        None,
        StatusCode::OK,
        "Logged out",
        "You are logged out of this site. You may still be logged in at your identity provider.",
    )
}

fn failed(st: &AppState, ctx: &RequestCtx, e: &SamlError) -> Response {
    tracing::warn!(event = "login_failed", method = "saml", ip = %ctx.client_ip, reason = e.reason(), detail = %e.detail(), "login failed");
    let outcome = match e {
        SamlError::Unavailable(_) | SamlError::Store(_) => LoginOutcome::Unavailable,
        _ => LoginOutcome::Refused,
    };
    // Refused before anyone was named.
    st.manager.metrics().login("saml", outcome, "");
    failed_page(st, e)
}

/// A page per kind of refusal, saying what the person (or the administrator) can do.
fn failed_page(st: &AppState, e: &SamlError) -> Response {
    let (status, heading, advice) = match e {
        SamlError::BadSignature => (
            StatusCode::UNAUTHORIZED,
            "Login refused: invalid signature",
            "The answer from the identity provider is not signed by the certificate in its \
             metadata. If the identity provider changed its signing certificate, an \
             administrator must check proxy.saml.idp-metadata-url.",
        ),
        SamlError::Expired(_) => (
            StatusCode::UNAUTHORIZED,
            "Login refused: expired",
            "The answer from the identity provider is too old. Log in again from the start page.",
        ),
        SamlError::ClockSkew(_) => (
            StatusCode::UNAUTHORIZED,
            "Login refused: clocks disagree",
            "The answer from the identity provider is dated in the future. The clock of this \
             server or of the identity provider is wrong; an administrator must set both right \
             (NTP).",
        ),
        SamlError::WrongAudience(_) => (
            StatusCode::UNAUTHORIZED,
            "Login refused: wrong audience",
            "The identity provider issued the login for another service. An administrator must \
             make proxy.saml.app-entity-id match the identifier registered at the identity \
             provider.",
        ),
        SamlError::WrongRecipient(_) => (
            StatusCode::UNAUTHORIZED,
            "Login refused: wrong address",
            "The identity provider sent the login to another address. An administrator must \
             make proxy.saml.app-base-url the address users open.",
        ),
        SamlError::Replayed => (
            StatusCode::BAD_REQUEST,
            "Login refused: already used",
            "This login answer was used before. Log in again from the start page.",
        ),
        SamlError::Unsolicited | SamlError::NoPendingLogin | SamlError::OtherBrowser => (
            StatusCode::BAD_REQUEST,
            "Login refused",
            "Log in again from the start page of this site (logins started at the identity \
             provider's portal, or in another browser, are not accepted).",
        ),
        SamlError::Refused(_) => (
            StatusCode::UNAUTHORIZED,
            "Login refused by the identity provider",
            "Log in again from the start page.",
        ),
        SamlError::Malformed(_) => (
            StatusCode::BAD_REQUEST,
            "Login failed",
            "Log in again from the start page.",
        ),
        SamlError::Unavailable(_) | SamlError::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Login unavailable",
            "Try again in a minute.",
        ),
        SamlError::Config(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login misconfigured",
            "An administrator must check the proxy.saml settings; the server's log says what \
             is wrong.",
        ),
    };
    error_page(
        st,
        None,
        status,
        heading,
        &format!("{} {advice}", capitalised(&e.to_string()) + "."),
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
