//! `GET /admin/instances/{id}/resources`: an instance's CPU and memory as JSON, as its backend
//! measures them (the console's table asks for each row, so the page itself never waits on a
//! backend).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

use super::admin_only;
use crate::web::AppState;
use crate::web::context::PageUser;

/// Docker's stats take about a second; a backend slower than this is answered for with nulls.
const PATIENCE: Duration = Duration::from_secs(5);

pub async fn resources(
    State(st): State<Arc<AppState>>,
    user: PageUser,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = admin_only(&st, &user) {
        return denied;
    }
    if st.manager.get(&id).await.is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such instance" })),
        )
            .into_response();
    }
    let usage = tokio::time::timeout(PATIENCE, st.manager.usage_of(&id))
        .await
        .ok()
        .flatten();
    // Null figures: this backend cannot tell, or the instance runs on another replica.
    Json(serde_json::json!({
        "id": id,
        "measured": usage.is_some(),
        "cpu_percent": usage.as_ref().and_then(|u| u.cpu_percent),
        "memory_bytes": usage.as_ref().and_then(|u| u.memory_bytes),
        "memory_limit_bytes": usage.as_ref().and_then(|u| u.memory_limit_bytes),
    }))
    .into_response()
}
