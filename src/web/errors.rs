//! Error responses: JSON for the API, pages for people.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::lifecycle::LaunchError;

/// The HTTP status that tells a client why a launch was refused. A reached instance limit is
/// 409 (the user's or server's current instances are in the way), so a script can tell it from
/// 429, which only ever means too many failed logins.
pub fn launch_status(e: &LaunchError) -> StatusCode {
    match e {
        LaunchError::UnknownApp(_) => StatusCode::NOT_FOUND,
        LaunchError::Forbidden(_) => StatusCode::FORBIDDEN,
        LaunchError::LimitReached(_) | LaunchError::Shared(_) => StatusCode::CONFLICT,
        LaunchError::ShuttingDown | LaunchError::StoreUnavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        LaunchError::Settings(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After`.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Too many failed logins: 429, with how long to wait.
    pub fn throttled(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs().max(1);
        Self {
            retry_after: Some(std::time::Duration::from_secs(secs)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed login attempts; try again in {secs} s"),
            )
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "status": "error", "message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vestibule\""),
            );
        }
        resp
    }
}
