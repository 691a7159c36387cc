//! `favicon-path`: the site's icon at `/favicon.ico`, and an app's own at `/favicon/<app>`
//! (falling back to the site's), read from the file the config names, as ShinyProxy serves
//! them.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use std::sync::Arc;

use super::AppState;
use super::context::{PageUser, RequestCtx};

pub async fn global(State(st): State<Arc<AppState>>) -> Response {
    serve(st.config().proxy.favicon_path.as_deref()).await
}

/// An app's icon for those who may open the app (the file may say what the app is).
pub async fn of_app(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path(spec_id): Path<String>,
) -> Response {
    let config = st.config();
    match config.proxy.spec(&spec_id) {
        Some(spec)
            if crate::auth::access::may_open(&s.identity, spec, req.server_name.as_deref()) =>
        {
            let path = spec
                .favicon_path
                .as_deref()
                .or(config.proxy.favicon_path.as_deref());
            serve(path).await
        }
        _ => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn serve(path: Option<&std::path::Path>) -> Response {
    let Some(path) = path else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let kind = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("ico") => "image/x-icon",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match tokio::fs::read(path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "max-age=86400"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "favicon-path cannot be read");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
