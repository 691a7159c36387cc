//! `/app_proxy/<instance-id>/…` (the app itself) and `/app_direct/<spec-id>/…` (the app without
//! the portal around it, started on demand). Every request and every WebSocket upgrade is
//! authorised here: the owner or an admin gets through, anyone else gets 403.

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use std::sync::Arc;

use super::AppState;
use super::context::{RequestCtx, login_redirect};
use super::pages::{error_page, failure_page};
use crate::auth::Session;
use crate::auth::access::may_use;
use crate::lifecycle::{InstanceStatus, LaunchOptions};
use crate::proxy::Route;
use crate::proxy::closers::Opener;
use crate::proxy::{Forward, ProxyError, add_trailing_slash};

/// Splits `<prefix><id>/<rest>` into the id and the offset where `/<rest>` starts; `None` when
/// the slash after the id is missing.
fn split_id<'a>(path: &'a str, prefix: &str) -> Option<(&'a str, usize)> {
    let after = path.strip_prefix(prefix)?;
    let slash = after.find('/')?;
    Some((&after[..slash], prefix.len() + slash))
}

/// `/app_direct/<app>/…` (the default instance) or `/app_direct_i/<app>/<name>/…`: the app,
/// the instance's name and where the app's own path starts.
fn direct_target(path: &str) -> Option<(&str, &str, usize)> {
    if let Some((spec, at)) = split_id(path, "/app_direct/") {
        return Some((spec, crate::lifecycle::DEFAULT_INSTANCE, at));
    }
    let (spec, spec_end) = split_id(path, "/app_direct_i/")?;
    let after = &path[spec_end + 1..];
    let slash = after.find('/')?;
    Some((spec, &after[..slash], spec_end + 1 + slash))
}

pub(super) fn not_logged_in(req: &Request) -> Response {
    // Browsers navigating get the login page; scripts, XHRs and WebSockets get a plain 401.
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && req.method() == http::Method::GET {
        login_redirect(req.uri().path_and_query().map(|p| p.as_str()))
    } else {
        (StatusCode::UNAUTHORIZED, "log in first\n").into_response()
    }
}

pub async fn app_proxy(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    req: Request,
) -> Response {
    let Some((id, rest_at)) = split_id(req.uri().path(), "/app_proxy/") else {
        return add_trailing_slash(original_uri(&req));
    };
    let id = id.to_string();
    let script = match script_login(&st, &ctx, req.headers()).await {
        Ok(identity) => identity,
        Err(refused) => return refused,
    };
    let who = match (ctx.session.as_deref(), &script) {
        (Some(session), _) => Caller::of(session),
        (None, Some(identity)) => Caller {
            identity,
            session: None,
        },
        (None, None) => return not_logged_in(&req),
    };
    let Some(route) = st.manager.route(&id).await else {
        return match st.manager.get(&id).await {
            Some(v) if !may_use(who.identity, &v.user) => forbidden(who.identity, &id),
            Some(v) if v.status == InstanceStatus::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the app is still starting\n",
            )
                .into_response(),
            Some(v) if wants_page(&req) => failure_page(
                &st,
                who.session,
                StatusCode::SERVICE_UNAVAILABLE,
                "The app is not running",
                v.reason.as_deref().unwrap_or("the app was stopped"),
                &v.log_lines,
            ),
            Some(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "the app is not running\n").into_response()
            }
            None => (StatusCode::NOT_FOUND, "no such app instance\n").into_response(),
        };
    };
    // A pool's members belong to nobody: users reach them through /app_direct/<app>/.
    if !may_use(who.identity, &route.owner) {
        return forbidden(who.identity, &id);
    }
    match super::app_host::keep_off_portal(&st, &ctx, who.session, &id, rest_at, &req) {
        Some(Ok(hand_over)) => return hand_over.send(&st).await,
        Some(Err(refused)) => return refused,
        None => {}
    }
    forward(&st, &ctx, who, route, rest_at, req).await
}

/// A script's HTTP Basic credentials on an app URL, when the request has no session and the
/// login takes passwords: `Ok(None)` when there are none, the refusal when they are wrong.
pub(super) async fn script_login(
    st: &AppState,
    ctx: &RequestCtx,
    headers: &http::HeaderMap,
) -> Result<Option<crate::auth::Identity>, Response> {
    if ctx.session.is_some() || !st.config().proxy.authentication.takes_passwords() {
        return Ok(None);
    }
    match super::context::basic_login(st, headers, ctx.client_ip).await {
        Some(Ok(identity)) => Ok(Some(identity)),
        Some(Err(refused)) => Err(refused.into_response()),
        None => Ok(None),
    }
}

/// Who a forwarded request is for: the identity the app is told of, and the session (if any)
/// whose end closes the request's WebSocket.
#[derive(Clone, Copy)]
pub(super) struct Caller<'a> {
    pub identity: &'a crate::auth::Identity,
    pub session: Option<&'a Session>,
}

impl<'a> Caller<'a> {
    pub fn of(session: &'a Session) -> Self {
        Self {
            identity: &session.identity,
            session: Some(session),
        }
    }
}

/// Whether the browser is loading a page (it accepts HTML), not fetching data for one.
pub(super) fn wants_page(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn forbidden(who: &crate::auth::Identity, id: &str) -> Response {
    tracing::warn!(event = "access_denied", user = %who.user, instance = %id, "proxy access to another user's instance");
    (
        StatusCode::FORBIDDEN,
        "this app instance belongs to another user\n",
    )
        .into_response()
}

pub(super) async fn forward(
    st: &AppState,
    ctx: &RequestCtx,
    who: Caller<'_>,
    route: Arc<Route>,
    rest_at: usize,
    mut req: Request,
) -> Response {
    super::tokens::strip_own_credentials(st, req.headers_mut());
    if crate::proxy::headers::is_upgrade(req.headers())
        && !super::origin::websocket_allowed(
            req.headers(),
            req.uri(),
            &st.config().proxy.allowed_origins,
        )
    {
        tracing::warn!(event = "access_denied", user = %who.identity.user, origin = ?req.headers().get(header::ORIGIN), "WebSocket opened by a page of another site");
        return (
            StatusCode::FORBIDDEN,
            "this WebSocket was opened by a page of another site\n",
        )
            .into_response();
    }
    if let Some(name) = route.headers.forged(req.headers()) {
        tracing::warn!(event = "forged_header", user = %who.identity.user, header = %name, "request carries a spelling of a header the proxy sets");
        return (
            StatusCode::BAD_REQUEST,
            format!("header '{name}' is reserved: the proxy sets it\n"),
        )
            .into_response();
    }
    let page = wants_page(&req);
    let instance = route.instance_id.clone();
    let mut openers = vec![Opener::Instance(route.instance_id.clone())];
    match &ctx.token_id {
        Some(token) => openers.push(Opener::Token(token.clone())),
        // A session made for a bearer JWT is not stored: nothing could end it.
        None if !ctx.via_token => {
            if let Some(session) = who.session {
                openers.push(Opener::Session(session.id.clone()));
            }
        }
        None => {}
    }
    let f = Forward {
        route,
        identity: who.identity,
        client_ip: ctx.client_ip,
        forwarded_for: ctx.forwarded_for.as_deref(),
        scheme: ctx.scheme(),
        rest_at,
        openers,
    };
    match st.proxy.forward(f, req).await {
        Ok(resp) => resp,
        Err(ProxyError::Upstream(e)) if page => {
            tracing::warn!(%instance, error = %e, "upstream error");
            // A page the user navigated to: say what happened, with what the app last wrote
            // (usually why it crashed), rather than a bare 502.
            failure_page(
                st,
                who.session,
                StatusCode::BAD_GATEWAY,
                "The app is not answering",
                &format!(
                    "the app did not answer ({e}). Reload to try again, or stop it from My apps and start it anew."
                ),
                &st.manager.recent_log(&instance),
            )
        }
        Err(ProxyError::Upstream(e)) => {
            tracing::warn!(%instance, error = %e, "upstream error");
            (
                StatusCode::BAD_GATEWAY,
                format!("the app is not answering: {e}\n"),
            )
                .into_response()
        }
        Err(ProxyError::Internal(e)) => {
            tracing::error!(error = %e, "proxy error");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal proxy error\n").into_response()
        }
    }
}

/// Serves the user's instance of an app without the portal's frame, starting it if needed and
/// waiting until it answers.
pub async fn app_direct(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    req: Request,
) -> Response {
    let Some((spec_id, name, rest_at)) = direct_target(req.uri().path()) else {
        return add_trailing_slash(original_uri(&req));
    };
    let name = match super::api::instance_name(name) {
        Ok(name) => name,
        Err(e) => return (StatusCode::FORBIDDEN, format!("{}\n", e.message)).into_response(),
    };
    let spec_id = spec_id.to_string();
    if let Some(spec) = st.config().proxy.spec(&spec_id)
        && spec.pool.is_some()
    {
        return super::pool_routes::pooled(&st, &ctx, spec, rest_at, req).await;
    }
    let script = match script_login(&st, &ctx, req.headers()).await {
        Ok(identity) => identity,
        Err(refused) => return refused,
    };
    let caller = match (ctx.session.as_deref(), &script) {
        (Some(session), _) => Caller::of(session),
        (None, Some(identity)) => Caller {
            identity,
            session: None,
        },
        (None, None) => return not_logged_in(&req),
    };
    let who = caller.identity;
    let view = match st.manager.current_for(&who.user, &spec_id, &name).await {
        Some(v) if v.status != InstanceStatus::Failed => v,
        _ => match st
            .manager
            .launch_with(
                who,
                &spec_id,
                LaunchOptions {
                    login_env: super::oidc::login_env(caller.session),
                    server_name: ctx.server_name.clone(),
                    instance_name: Some(name),
                    parameters: None,
                },
            )
            .await
        {
            Ok(v) => v,
            Err(e) => {
                return error_page(
                    &st,
                    caller.session,
                    super::errors::launch_status(&e),
                    "Cannot open the app",
                    &e.to_string(),
                );
            }
        },
    };
    if view.status == InstanceStatus::Starting {
        st.manager.settled(view.clone()).await;
    }
    match st.manager.route(&view.id).await {
        Some(route) => {
            match super::app_host::keep_off_portal(
                &st,
                &ctx,
                caller.session,
                &view.id,
                rest_at,
                &req,
            ) {
                Some(Ok(hand_over)) => return hand_over.send(&st).await,
                Some(Err(refused)) => return refused,
                None => {}
            }
            forward(&st, &ctx, caller, route, rest_at, req).await
        }
        None => {
            let latest = st.manager.get(&view.id).await;
            let (reason, lines) = match latest {
                Some(v) => (
                    v.reason.unwrap_or_else(|| "the app is not running".into()),
                    v.log_lines,
                ),
                None => ("the app was stopped".into(), Vec::new()),
            };
            failure_page(
                &st,
                caller.session,
                StatusCode::BAD_GATEWAY,
                "The app could not start",
                &reason,
                &lines,
            )
        }
    }
}

/// The URI as the browser sent it, before `server.servlet.context-path` came off: what a
/// redirect back to it must name.
fn original_uri(req: &Request) -> &http::Uri {
    req.extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or(req.uri(), |o| &o.0)
}

#[cfg(test)]
mod tests {
    use super::split_id;

    #[test]
    fn splits_the_id_from_the_rest() {
        let path = "/app_proxy/abc/x/y";
        let (id, at) = split_id(path, "/app_proxy/").expect("split");
        assert_eq!((id, &path[at..]), ("abc", "/x/y"));
        let (id, at) = split_id("/app_proxy/abc/", "/app_proxy/").expect("split");
        assert_eq!((id, at), ("abc", 14));
        assert_eq!(split_id("/app_proxy/abc", "/app_proxy/"), None);
    }
}
