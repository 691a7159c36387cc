//! The JSON API (ShinyProxy's paths): specs, instances, launch, stop, status with long-poll.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use super::context::{ApiUser, RequestCtx};
use super::errors::{ApiError, launch_status};
use crate::auth::Identity;
use crate::lifecycle::{InstanceStatus, InstanceView, LaunchOptions, StopReason};

const MAX_WATCH: Duration = Duration::from_secs(60);

pub async fn health() -> Response {
    Json(serde_json::json!({ "status": "UP" })).into_response()
}

pub async fn specs(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
) -> Response {
    let specs: Vec<serde_json::Value> = st
        .config
        .proxy
        .specs
        .iter()
        .filter(|s| crate::auth::access::may_open(&who, s, ctx.server_name.as_deref()))
        .map(|s| {
            serde_json::json!({
                "id": s.id, "displayName": s.display_name,
                "description": s.description, "logoUrl": s.logo_url,
            })
        })
        .collect();
    Json(specs).into_response()
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
    Json(st.manager.list(user).await).into_response()
}

/// The instance, if `who` may see it: its owner or an admin. Unknown ids are 404, someone
/// else's are 403.
async fn visible(st: &AppState, who: &Identity, id: &str) -> Result<InstanceView, ApiError> {
    let view = st
        .manager
        .get(id)
        .await
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no instance '{id}'")))?;
    if !crate::auth::access::may_use(who, &view.user) {
        tracing::warn!(event = "access_denied", user = %who.user, instance = %id, "api access to another user's instance");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this instance belongs to another user",
        ));
    }
    Ok(view)
}

pub async fn instance(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(visible(&st, &who, &id).await?).into_response())
}

/// `POST /api/proxy/<specId>` starts an instance.
pub async fn launch(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    Path(spec_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = st
        .manager
        .launch_with(
            &who,
            &spec_id,
            LaunchOptions {
                login_env: super::oidc::login_env(ctx.session.as_deref()),
                server_name: ctx.server_name.clone(),
            },
        )
        .await
        .map_err(|e| ApiError::new(launch_status(&e), e.to_string()))?;
    tracing::info!(event = "launch", user = %who.user, app = %spec_id, instance = %view.id, "launching app");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn stop(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&st, &who, &id).await?;
    tracing::info!(instance = %id, by = %who.user, "stop requested through the API");
    st.manager.stop(&id, StopReason::Api).await;
    st.proxy
        .closers()
        .close(&crate::proxy::closers::Opener::Instance(id.clone()));
    Ok(Json(serde_json::json!({ "status": "stopped", "id": id })).into_response())
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
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only administrators may retire seat containers",
        ));
    }
    if q.id.is_some() && q.spec_id.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "give either id or specId, not both",
        ));
    }
    let n = st
        .manager
        .retire_seat_containers(q.spec_id.as_deref(), q.id.as_deref());
    tracing::info!(event = "admin_retire_seats", admin = %who.user, containers = n, app = ?q.spec_id, container = ?q.id, "seat containers retired");
    Ok(Json(serde_json::json!({ "status": "success", "data": { "retired": n } })).into_response())
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    watch: bool,
    /// Seconds to wait for a change when watching.
    timeout: Option<u64>,
}

/// With `watch=true`, waits (long-poll) until the instance changes or the timeout passes.
pub async fn status(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Result<Response, ApiError> {
    let view = visible(&st, &who, &id).await?;
    if !q.watch || view.status != InstanceStatus::Starting {
        return Ok(Json(view).into_response());
    }
    let Some(mut rx) = st.manager.watch(&id) else {
        return Ok(Json(view).into_response());
    };
    rx.mark_unchanged();
    let wait = q
        .timeout
        .map(Duration::from_secs)
        .unwrap_or(MAX_WATCH)
        .min(MAX_WATCH);
    let _ = tokio::time::timeout(wait, rx.changed()).await;
    let latest = st
        .manager
        .get(&id)
        .await
        .unwrap_or_else(|| rx.borrow().clone());
    Ok(Json(latest).into_response())
}

/// ShinyProxy's heartbeat endpoint; proxied traffic counts as a heartbeat anyway.
pub async fn heartbeat(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&st, &who, &id).await?;
    if let Some(route) = st.manager.route(&id).await {
        route.touch();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
