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
        LaunchError::NameTaken(_) | LaunchError::Parameters(_) => StatusCode::BAD_REQUEST,
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After`.
    pub retry_after: Option<std::time::Duration>,
    /// The instance a failed launch left, with why and its last lines (vestibule's addition to
    /// ShinyProxy's error body).
    pub proxy: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            proxy: None,
        }
    }

    /// ShinyProxy's answer to anything about an app or instance the caller may not see.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden")
    }

    /// A start that failed: ShinyProxy's 500 "Failed to start proxy", with the reason and the
    /// instance (its `reason` and `logLines`) added.
    pub fn launch_failed(view: &crate::lifecycle::InstanceView, proxy: serde_json::Value) -> Self {
        let reason = view
            .reason
            .as_deref()
            .unwrap_or("the app stopped while starting");
        Self {
            proxy: Some(proxy),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed to start proxy: {reason}"),
            )
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
        // ShinyProxy's envelope: "fail" for what the caller can fix, "error" otherwise.
        let kind = match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND => "error",
            s if s.is_server_error() => "error",
            _ => "fail",
        };
        let mut body = serde_json::json!({ "status": kind, "data": self.message });
        if let (Some(proxy), Some(map)) = (self.proxy, body.as_object_mut()) {
            map.insert("proxy".into(), proxy);
        }
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

/// A JSON request body whose absence or malformation is ShinyProxy's 400 "request body missing
/// or invalid" in the API's envelope, rather than axum's plain-text rejection.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => Ok(Self(body)),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "request body missing or invalid",
            )),
        }
    }
}
