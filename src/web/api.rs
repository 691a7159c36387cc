//! The JSON API with ShinyProxy 3.2's paths, envelope and fields (see `api_shapes`): specs,
//! instances, launch, stop, status with long-poll, heartbeats.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use super::api_shapes;
use super::context::{ApiUser, RequestCtx};
use super::errors::{ApiError, JsonBody, launch_status};
use crate::auth::Identity;
use crate::lifecycle::{InstanceStatus, InstanceView, LaunchOptions, StopReason};

/// ShinyProxy's bounds on a status long-poll, in seconds (vestibule also takes shorter ones).
const WATCH_SECS: std::ops::RangeInclusive<u64> = 1..=60;
const DEFAULT_WATCH_SECS: u64 = 10;

pub async fn health() -> Response {
    Json(serde_json::json!({ "status": "UP" })).into_response()
}

/// The API's OpenAPI description, for client generators and API tools (no login needed: it
/// holds nothing about this site).
pub async fn openapi() -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

pub async fn specs(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
) -> Response {
    let specs: Vec<serde_json::Value> = st
        .config()
        .proxy
        .specs
        .iter()
        .filter(|s| crate::auth::access::may_open(&who, s, ctx.server_name.as_deref()))
        .map(api_shapes::spec)
        .collect();
    api_shapes::success(specs)
}

/// `GET /api/proxyspec/{id}`: one spec; an unknown one and one the caller may not open are
/// the same 403, as in ShinyProxy, so the answer does not tell which apps exist.
pub async fn spec(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match st.config().proxy.spec(&id) {
        Some(s) if crate::auth::access::may_open(&who, s, ctx.server_name.as_deref()) => {
            Ok(api_shapes::success(api_shapes::spec(s)))
        }
        _ => Err(ApiError::forbidden()),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

pub async fn instances(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let user = if q.all && who.is_admin {
        None
    } else {
        Some(who.user.as_str())
    };
    let views = st.manager.list(user).await;
    api_shapes::success(views.iter().map(|v| proxy_json(&st, v)).collect::<Vec<_>>())
}

fn proxy_json(st: &AppState, view: &InstanceView) -> serde_json::Value {
    api_shapes::proxy(view, st.config().proxy.spec(&view.spec_id))
}

/// The instance, if `who` may see it: its owner or an admin. Unknown ids and someone else's
/// are the same 403, as in ShinyProxy.
async fn visible(st: &AppState, who: &Identity, id: &str) -> Result<InstanceView, ApiError> {
    let view = st.manager.get(id).await.ok_or_else(ApiError::forbidden)?;
    if !crate::auth::access::may_use(who, &view.user) {
        tracing::warn!(event = "access_denied", user = %who.user, instance = %id, "api access to another user's instance");
        return Err(ApiError::forbidden());
    }
    Ok(view)
}

pub async fn instance(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = visible(&st, &who, &id).await?;
    Ok(api_shapes::success(proxy_json(&st, &view)))
}

/// `POST /api/proxy/{specId}` starts an instance and, as in ShinyProxy, answers once it is up
/// (201) or has failed (500, with why and the app's last lines), so a script can use it at once.
pub async fn launch(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    Path(spec_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let parameters = parameters_of(&body)?;
    let view = start(&st, &ctx, &who, &spec_id, None, parameters).await?;
    let view = st.manager.settled(view).await;
    match view.status {
        InstanceStatus::Running | InstanceStatus::Starting => {
            Ok(api_shapes::created(proxy_json(&st, &view)))
        }
        _ => Err(ApiError::launch_failed(&view, proxy_json(&st, &view))),
    }
}

/// `POST /app_i/{specId}/{instance}`: ShinyProxy's start for its app page, which answers at
/// once with the new proxy (`New`) and follows it with `status?watch=true`. `_` is the user's
/// default instance; other names run beside it, up to the app's `max-instances`.
pub async fn launch_for_page(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    Path((spec_id, instance)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let name = instance_name(&instance)?;
    let parameters = parameters_of(&body)?;
    let view = start(&st, &ctx, &who, &spec_id, Some(name), parameters).await?;
    Ok(api_shapes::success(proxy_json(&st, &view)))
}

/// The optional body of a start, ShinyProxy's `{"parameters": {"id": "value", …}}`.
fn parameters_of(body: &[u8]) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let invalid = || ApiError::new(StatusCode::BAD_REQUEST, "request body missing or invalid");
    let parsed: serde_json::Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let Some(given) = parsed.get("parameters") else {
        return Ok(None);
    };
    let Some(map) = given.as_object() else {
        return Err(invalid());
    };
    map.iter()
        .map(|(id, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(invalid()),
            };
            Ok((id.clone(), value))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// ShinyProxy's rules for an instance name: 1 to 64 of `A-Z a-z 0-9 _ . -`; `default` (in
/// any case) is the default instance, `_`.
pub fn instance_name(raw: &str) -> Result<String, ApiError> {
    if raw.eq_ignore_ascii_case("default") {
        return Ok(crate::lifecycle::DEFAULT_INSTANCE.to_string());
    }
    if raw.is_empty() || raw.len() > 64 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "The provided name is too long (maximum 64 characters)",
        ));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "The provided name contains invalid characters (only alphanumeric characters, '_', \
             '-' and '.' are allowed.)",
        ));
    }
    Ok(raw.to_string())
}

async fn start(
    st: &AppState,
    ctx: &RequestCtx,
    who: &Identity,
    spec_id: &str,
    instance_name: Option<String>,
    parameters: Option<BTreeMap<String, String>>,
) -> Result<InstanceView, ApiError> {
    let view = st
        .manager
        .launch_with(
            who,
            spec_id,
            LaunchOptions {
                login_env: super::oidc::login_env(ctx.session.as_deref()),
                server_name: ctx.server_name.clone(),
                instance_name,
                parameters,
            },
        )
        .await
        .map_err(|e| ApiError::new(launch_status(&e), e.to_string()))?;
    tracing::info!(event = "launch", user = %who.user, app = %spec_id, instance = %view.id, "launching app");
    Ok(view)
}

pub async fn stop(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&st, &who, &id).await?;
    tracing::info!(instance = %id, by = %who.user, "stop requested through the API");
    stop_instance(&st, &id).await;
    Ok(api_shapes::success(serde_json::Value::Null))
}

async fn stop_instance(st: &AppState, id: &str) {
    st.manager.stop(id, StopReason::Api).await;
    st.proxy
        .closers()
        .close(&crate::proxy::closers::Opener::Instance(id.to_string()));
}

#[derive(Deserialize)]
pub struct StatusChange {
    status: String,
}

/// `PUT /api/proxy/{id}/status` with `{"status":"Stopping"}`: its owner or an admin stops it.
/// Pausing and resuming are refused with the reason, as no backend pauses apps yet.
pub async fn change_status(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    let view = visible(&st, &who, &id).await?;
    match change.status.as_str() {
        "Stopping" if view.status.is_final() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Cannot stop proxy because it is already stopped",
        )),
        "Stopping" => {
            tracing::info!(instance = %id, by = %who.user, "stop requested through the API");
            stop_instance(&st, &id).await;
            Ok(api_shapes::success(serde_json::Value::Null))
        }
        "Pausing" | "Resuming" => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Cannot {} proxy: vestibule cannot pause apps yet",
                if change.status == "Pausing" {
                    "pause"
                } else {
                    "resume"
                }
            ),
        )),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "Invalid status")),
    }
}

#[derive(Deserialize)]
pub struct DelegateQuery {
    id: Option<String>,
    #[serde(rename = "specId")]
    spec_id: Option<String>,
}

/// ShinyProxy's `DELETE /admin/delegate-proxy[?id=|?specId=]`: takes seat containers out of
/// service and refills the seats with new ones (after an image update, say). Users seated in a
/// retired container keep it until they leave.
pub async fn retire_delegates(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Query(q): Query<DelegateQuery>,
) -> Result<Response, ApiError> {
    if !who.is_admin {
        return Err(ApiError::forbidden());
    }
    if q.id.is_some() && q.spec_id.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Id and specId cannot be specified at the same time",
        ));
    }
    let n = st
        .manager
        .retire_seat_containers(q.spec_id.as_deref(), q.id.as_deref());
    tracing::info!(event = "admin_retire_seats", admin = %who.user, containers = n, app = ?q.spec_id, container = ?q.id, "seat containers retired");
    Ok(api_shapes::success(serde_json::Value::Null))
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    watch: bool,
    /// Seconds to wait for a change when watching.
    timeout: Option<u64>,
}

/// `GET /api/proxy/{id}/status[?watch=true&timeout=10]`: with `watch`, waits until the
/// starting instance changes (it is up or gone, or, vestibule's addition, its launch reaches
/// another stage the page shows), or the timeout passes. An instance that is gone or not the
/// caller's answers as `Stopped`, as in ShinyProxy.
pub async fn status(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Result<Response, ApiError> {
    let Ok(view) = visible(&st, &who, &id).await else {
        return Ok(api_shapes::success(api_shapes::stopped_proxy(&id)));
    };
    if !q.watch || view.status != InstanceStatus::Starting {
        return Ok(api_shapes::success(proxy_json(&st, &view)));
    }
    let secs = q.timeout.unwrap_or(DEFAULT_WATCH_SECS);
    if !WATCH_SECS.contains(&secs) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Timeout must be between 1 and 60 seconds (inclusive).",
        ));
    }
    let Some(mut rx) = st.manager.watch(&id) else {
        return Ok(api_shapes::success(proxy_json(&st, &view)));
    };
    rx.mark_unchanged();
    let _ = tokio::time::timeout(Duration::from_secs(secs), rx.changed()).await;
    let latest = st
        .manager
        .get(&id)
        .await
        .unwrap_or_else(|| rx.borrow().clone());
    Ok(api_shapes::success(proxy_json(&st, &latest)))
}

/// `POST /heartbeat/{id}`: the page says the user is still there (proxied traffic counts
/// anyway). `GET` tells when the last one was and how often the page should send them.
pub async fn heartbeat(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let route = live_route(&st, &who, &id).await?;
    route.touch();
    Ok(api_shapes::success(serde_json::Value::Null))
}

pub async fn heartbeat_info(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    live_route(&st, &who, &id).await?;
    let view = visible(&st, &who, &id).await?;
    let last = view
        .idle_secs
        .map(|idle| crate::clock::now_unix_ms().saturating_sub(idle.saturating_mul(1000)));
    let rate = u64::try_from(st.config().proxy.heartbeat_rate.as_millis()).unwrap_or(u64::MAX);
    Ok(api_shapes::success(serde_json::json!({
        "lastHeartbeat": last,
        "heartbeatRate": rate,
    })))
}

/// The route of a running instance of the caller's; ShinyProxy's 410 otherwise.
async fn live_route(
    st: &AppState,
    who: &Identity,
    id: &str,
) -> Result<Arc<crate::proxy::Route>, ApiError> {
    let gone = || ApiError::new(StatusCode::GONE, "app_stopped_or_non_existent");
    let view = visible(st, who, id).await.map_err(|_| gone())?;
    if view.status != InstanceStatus::Running {
        return Err(gone());
    }
    st.manager.route(id).await.ok_or_else(gone)
}
