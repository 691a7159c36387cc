//! `/app_direct/<app>/…` for an app with a pool: each request goes to the least-loaded ready
//! instance, or is held until one is ready. Who may call is decided here: anyone for a `public`
//! app, scripts only (API token or HTTP Basic) for an `api-only` one, and otherwise the app's
//! access rules, as for every app.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;

use super::AppState;
use super::app_routes::{Caller, forward, not_logged_in, wants_page};
use super::context::RequestCtx;
use super::cookies;
use crate::auth::Identity;
use crate::config::AppSpec;
use crate::proxy::pool::{AFFINITY_COOKIE_PREFIX, Held};

pub async fn pooled(
    st: &Arc<AppState>,
    ctx: &RequestCtx,
    spec: &AppSpec,
    rest_at: usize,
    req: Request,
) -> Response {
    let Some(pool) = st.manager.pools().get(&spec.id).cloned() else {
        return (StatusCode::NOT_FOUND, "no such app\n").into_response();
    };
    let session = ctx.session.as_deref();
    let script = ctx.via_token || session.is_none();
    let basic = match super::app_routes::script_login(st, ctx, req.headers()).await {
        Ok(identity) => identity,
        Err(refused) => return refused,
    };
    let anonymous = Identity {
        user: "anonymous".into(),
        groups: Vec::new(),
        is_admin: false,
    };
    let who = match (session, &basic) {
        (Some(s), _) => Caller::of(s),
        (None, Some(identity)) => Caller {
            identity,
            session: None,
        },
        (None, None) if spec.public => Caller {
            identity: &anonymous,
            session: None,
        },
        (None, None) => return not_logged_in(&req),
    };
    if spec.api_only && !script {
        tracing::warn!(event = "access_denied", user = %who.identity.user, app = %spec.id, "a browser session called an api-only app");
        return (
            StatusCode::FORBIDDEN,
            "this app is for scripts: call it with an API token (Authorization: Bearer) or \
             HTTP Basic, not from a browser session\n",
        )
            .into_response();
    }
    if !crate::auth::access::may_open(who.identity, spec, ctx.server_name.as_deref()) {
        tracing::warn!(event = "access_denied", user = %who.identity.user, app = %spec.id, "pool access refused by the app's access rules");
        return (StatusCode::FORBIDDEN, "you may not open this app\n").into_response();
    }
    if let Err(wait) = pool.admit_client(ctx.client_ip) {
        tracing::info!(app = %spec.id, client = %ctx.client_ip, "a client went over the app's rate limit");
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from your address; slow down\n",
        )
            .into_response();
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return resp;
    }
    let affinity = spec.pool.as_ref().is_some_and(|p| p.session_affinity);
    let cookie_name = if affinity {
        format!("{AFFINITY_COOKIE_PREFIX}{}", spec.id)
    } else {
        String::new()
    };
    let pinned = affinity
        .then(|| cookies::read(req.headers(), &cookie_name))
        .flatten();
    let route = match pool
        .acquire(pinned.as_deref(), st.config().proxy.container_wait_time)
        .await
    {
        Ok(route) => route,
        Err(held) => return unavailable(st, who, spec, held, wants_page(&req)),
    };
    let repin = affinity && pinned.as_deref() != Some(route.instance_id.as_str());
    let instance = route.instance_id.clone();
    let mut resp = forward(st, ctx, who, route, rest_at, req).await;
    // The cookie only chooses among instances the caller may use anyway, so it needs no
    // signature: a forged or stale one is simply replaced.
    if repin
        && let Some(c) = cookies::set(
            &cookie_name,
            &instance,
            ctx.secure,
            st.config().proxy.same_site_cookie,
        )
    {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn unavailable(st: &AppState, who: Caller<'_>, spec: &AppSpec, held: Held, page: bool) -> Response {
    let (retry, message) = match held {
        Held::QueueFull => (
            1,
            format!(
                "app '{}' is busy: too many requests are already waiting for it; try again \
                 shortly",
                spec.display_name
            ),
        ),
        Held::TimedOut(failure) => (
            5,
            match failure {
                Some(why) => format!(
                    "app '{}' could not be started in time: {why}",
                    spec.display_name
                ),
                None => format!(
                    "app '{}' had no instance ready within {} s; try again shortly",
                    spec.display_name,
                    st.config().proxy.container_wait_time.as_secs()
                ),
            },
        ),
    };
    tracing::warn!(app = %spec.id, reason = %message, "a pooled request was not served");
    let mut resp = if page {
        super::pages::failure_page(
            st,
            who.session,
            StatusCode::SERVICE_UNAVAILABLE,
            "The app is not available yet",
            &message,
            &[],
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response()
    };
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    resp
}
