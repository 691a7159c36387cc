//! Per-request facts every handler needs (who is asking, over what, from where), resolved once
//! by a middleware, and the extractors built on them.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{Method, StatusCode, header};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::login_method::{Identified, RequestAuthenticator};
use super::{AppState, cookies, errors::ApiError};
use crate::auth::session::COOKIE_NAME;
use crate::auth::throttle::Refusal;
use crate::auth::{Identity, Session, authorization, csrf};

#[derive(Clone)]
pub struct RequestCtx {
    pub session: Option<Arc<Session>>,
    pub secure: bool,
    pub client_ip: IpAddr,
    /// The trusted `X-Forwarded-For` chain the app receives, if any (see `web::forwarded`).
    pub forwarded_for: Option<String>,
    /// The caller sent an API token rather than a session cookie: no CSRF token is needed (a
    /// browser never sends one by itself), and the token may not manage tokens.
    pub via_token: bool,
    /// The vestibule API token that authenticated the request, if one did.
    pub token_id: Option<String>,
    /// The host the client asked for, without the port (ShinyProxy's `serverName`): a trusted
    /// proxy's `X-Forwarded-Host`, else `Host`.
    pub server_name: Option<String>,
}

impl RequestCtx {
    pub fn scheme(&self) -> &'static str {
        if self.secure { "https" } else { "http" }
    }
}

/// What a request says of where it comes from and over what, before anyone is identified.
pub(super) fn connection(st: &AppState, req: &Request) -> RequestCtx {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let config = st.config();
    let client = super::forwarded::client(peer, req.headers(), &config.server.trusted_proxies);
    let secure = config.server.secure_cookies
        || config.ops.tls.is_some()
        || client.proto.as_deref() == Some("https")
        || cookies::forwarded_https(req.headers());
    RequestCtx {
        session: None,
        secure,
        client_ip: client.ip,
        server_name: server_name(client.host.as_deref(), req.headers()),
        forwarded_for: client.forwarded_for,
        via_token: false,
        token_id: None,
    }
}

pub async fn resolve(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let RequestCtx {
        secure,
        client_ip,
        server_name,
        forwarded_for,
        ..
    } = connection(&st, &req);
    let mut session = match cookies::read(req.headers(), COOKIE_NAME) {
        Some(id) => match st.sessions.load(&id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "a session could not be looked up");
                return super::pages::store_unavailable_page(&st, None);
            }
        },
        None => None,
    };
    if let Some(s) = session.take() {
        session = st.login.keep_fresh(&st, s).await;
    }
    let mut via_token = false;
    let mut token_id = None;
    let mut new_cookie = None;
    for authenticator in &st.request_authenticators {
        match authenticator
            .identify(&st, &mut req, client_ip, session.take())
            .await
        {
            Identified::Unchanged(s) => session = s,
            Identified::Token {
                session: s,
                token_id: id,
            } => {
                session = Some(s);
                via_token = true;
                token_id = id;
            }
            Identified::Session { session: s, new } => {
                if new {
                    new_cookie = cookies::set(
                        COOKIE_NAME,
                        &s.id,
                        secure,
                        st.config().proxy.same_site_cookie,
                    );
                }
                session = Some(s);
            }
            Identified::Refused(response) => return response,
        }
    }
    let session =
        session.and_then(|s| crate::auth::reconfirm::current_session(&st.config(), s, via_token));
    req.extensions_mut().insert(RequestCtx {
        session,
        secure,
        client_ip,
        forwarded_for,
        via_token,
        token_id,
        server_name: server_name.clone(),
    });
    let page = super::PageRequest {
        server_name,
        hide_navbar: req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "sp_hide_navbar=true")),
    };
    let mut resp = super::PAGE_REQUEST.scope(page, next.run(req)).await;
    if let Some(c) = new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// The host name of a request: `example.org` of `example.org:8080`, `::1` of `[::1]:80`.
fn server_name(forwarded_host: Option<&str>, headers: &http::HeaderMap) -> Option<String> {
    let host = forwarded_host.or_else(|| headers.get(header::HOST)?.to_str().ok())?;
    let host = host.split(',').next()?.trim();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// API tokens and `proxy.oauth2` bearer JWTs, for requests without a session.
pub struct BearerTokens;

#[async_trait::async_trait]
impl RequestAuthenticator for BearerTokens {
    async fn identify(
        &self,
        st: &AppState,
        req: &mut Request,
        client_ip: IpAddr,
        current: Option<Arc<Session>>,
    ) -> Identified {
        if current.is_some() {
            return Identified::Unchanged(current);
        }
        match super::tokens::bearer_identity(st, req, client_ip).await {
            Some((identity, token_id)) => Identified::Token {
                session: Arc::new(Session::new(identity)),
                token_id,
            },
            None => Identified::Unchanged(None),
        }
    }
}

/// `authentication: customHeader`: the trusted login proxy names the user of every request
/// (but health checks).
pub struct TrustedHeader;

#[async_trait::async_trait]
impl RequestAuthenticator for TrustedHeader {
    async fn identify(
        &self,
        st: &AppState,
        req: &mut Request,
        client_ip: IpAddr,
        current: Option<Arc<Session>>,
    ) -> Identified {
        if req.uri().path() == "/actuator/health" {
            return Identified::Unchanged(current);
        }
        match header_session(st, req.headers(), client_ip, current).await {
            Ok((session, new)) => Identified::Session { session, new },
            Err(refused) => Identified::Refused(refused),
        }
    }
}

/// `authentication: none`: without login every browser is its own anonymous user, so
/// instances stay private.
pub struct Anonymous;

#[async_trait::async_trait]
impl RequestAuthenticator for Anonymous {
    async fn identify(
        &self,
        st: &AppState,
        _req: &mut Request,
        _client_ip: IpAddr,
        current: Option<Arc<Session>>,
    ) -> Identified {
        if current.is_some() {
            return Identified::Unchanged(current);
        }
        let s = Session::new(Identity {
            user: format!("anonymous-{}", &crate::auth::session::random_token()[..10]),
            groups: Vec::new(),
            is_admin: false,
        });
        if let Err(e) = st.sessions.save(&s).await {
            tracing::warn!(error = %e, "an anonymous session could not be stored");
            return Identified::Refused(super::pages::store_unavailable_page(st, None));
        }
        Identified::Session {
            session: Arc::new(s),
            new: true,
        }
    }
}

/// The session of the user the trusted login proxy names (a new one when the user changed),
/// and whether it is new; or the response that refuses the request.
async fn header_session(
    st: &AppState,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
    current: Option<Arc<Session>>,
) -> Result<(Arc<Session>, bool), Response> {
    use crate::auth::header::{HeaderRefusal, identity};
    let identity = identity(&st.config(), headers, client_ip).map_err(|e| {
        tracing::warn!(event = "login_failed", ip = %client_ip, reason = %e, "trusted-header login refused");
        let status = match e {
            HeaderRefusal::Untrusted(_) => StatusCode::FORBIDDEN,
            HeaderRefusal::NoUser(_) => StatusCode::UNAUTHORIZED,
        };
        (status, format!("{e}\n")).into_response()
    })?;
    if let Some(s) = current.filter(|s| s.identity == identity) {
        return Ok((s, false));
    }
    tracing::info!(event = "login", user = %identity.user, ip = %client_ip, via = "header", "logged in");
    st.manager.metrics().login(
        "header",
        crate::observe::LoginOutcome::Success,
        &identity.user,
    );
    let s = Session::new(identity);
    if let Err(e) = st.sessions.save(&s).await {
        tracing::warn!(error = %e, "a header login could not be stored");
        return Err(super::pages::store_unavailable_page(st, None));
    }
    Ok((Arc::new(s), true))
}

fn ctx(parts: &Parts) -> Option<&RequestCtx> {
    parts.extensions.get::<RequestCtx>()
}

/// A logged-in user on a page; anyone else is sent to the login page.
pub struct PageUser(pub Arc<Session>);

impl FromRequestParts<Arc<AppState>> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Response> {
        match ctx(parts).and_then(|c| c.session.clone()) {
            Some(s) => Ok(PageUser(s)),
            None => Err(login_redirect(
                parts.uri.path_and_query().map(|p| p.as_str()),
            )),
        }
    }
}

pub fn login_redirect(next: Option<&str>) -> Response {
    let next = next.unwrap_or("/");
    Redirect::to(&format!("/login?next={}", urlencoding::encode(next))).into_response()
}

/// A caller of the JSON API: a session cookie (state-changing calls must carry the CSRF token
/// in `X-CSRF-Token`) or HTTP Basic credentials for scripts.
pub struct ApiUser(pub Identity);

impl FromRequestParts<Arc<AppState>> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        if let Some(c) = ctx(parts)
            && c.via_token
            && let Some(session) = &c.session
        {
            return Ok(ApiUser(session.identity.clone()));
        }
        if let Some(session) = ctx(parts).and_then(|c| c.session.clone()) {
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let token = parts
                .headers
                .get(csrf::HEADER)
                .and_then(|v| v.to_str().ok());
            if !safe && !csrf::matches(&session.csrf, token) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token header",
                ));
            }
            if !safe
                && !super::origin::api_call_allowed(
                    &parts.headers,
                    &parts.uri,
                    &st.config().proxy.allowed_origins,
                )
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "API calls made with the session cookie must come from this site's pages",
                ));
            }
            return Ok(ApiUser(session.identity.clone()));
        }
        if let Some(why) = st.login.basic_refusal()
            && authorization::basic(parts.headers.get(header::AUTHORIZATION)).is_some()
        {
            return Err(ApiError::unauthorized(why));
        }
        let ip = ctx(parts)
            .map(|c| c.client_ip)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if let Some(login) = basic_login(st, &parts.headers, ip).await {
            return login.map(ApiUser);
        }
        Err(ApiError::unauthorized(
            "log in first (session cookie or HTTP Basic)",
        ))
    }
}

/// A script's HTTP Basic login, throttled like the login form; `None` when the request carries
/// no Basic credentials.
pub async fn basic_login(
    st: &AppState,
    headers: &http::HeaderMap,
    ip: IpAddr,
) -> Option<Result<Identity, ApiError>> {
    let (user, password) = authorization::basic(headers.get(header::AUTHORIZATION))?;
    match st.throttle.check(&user, ip).await {
        Ok(()) => {}
        Err(Refusal::Wait(wait)) => return Some(Err(ApiError::throttled(wait))),
        Err(Refusal::Store(e)) => {
            tracing::warn!(error = %e, "a password login could not be throttled");
            return Some(Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                super::pages::STORE_UNAVAILABLE,
            )));
        }
    }
    Some(
        match st.authenticator().authenticate(&user, &password).await {
            Ok(identity) => {
                st.throttle.succeeded(&user).await;
                Ok(identity)
            }
            Err(e) => {
                if matches!(e, crate::auth::AuthError::BadCredentials) {
                    st.throttle.failed(&user, ip).await;
                }
                tracing::warn!(event = "login_failed", %user, %ip, via = "basic", "login failed");
                Err(ApiError::unauthorized(e.to_string()))
            }
        },
    )
}
