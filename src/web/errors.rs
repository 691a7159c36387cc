//! Error responses: JSON for the API, pages for people.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::lifecycle::LaunchError;

/// The HTTP status that tells a client why a launch was refused.
pub fn launch_status(e: &LaunchError) -> StatusCode {
    match e {
        LaunchError::UnknownApp(_) => StatusCode::NOT_FOUND,
        LaunchError::Forbidden(_) => StatusCode::FORBIDDEN,
        LaunchError::LimitReached(_) => StatusCode::TOO_MANY_REQUESTS,
        LaunchError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vestibule\""),
            );
        }
        resp
    }
}
