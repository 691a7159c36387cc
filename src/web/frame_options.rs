//! Who may show portal pages in a frame (`server.frame-options`). A page that another site can
//! frame can be clicked through by a user who does not see it (clickjacking): the stop button,
//! the token form. App responses are the apps' own and keep whatever they send.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use std::sync::Arc;

use super::AppState;
use crate::config::FrameOptions;

const X_FRAME_OPTIONS: HeaderName = HeaderName::from_static("x-frame-options");

pub async fn set(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let app_content = {
        let path = req.uri().path();
        path.starts_with("/app_proxy/") || path.starts_with("/app_direct/")
    };
    let mut resp = next.run(req).await;
    if app_content {
        return resp;
    }
    // X-Frame-Options for browsers that predate CSP; frame-ancestors wins where both are known.
    let (legacy, ancestors) = match &st.config().server.frame_options {
        FrameOptions::Disable => return resp,
        FrameOptions::Deny => (Some("DENY"), "'none'".to_string()),
        FrameOptions::SameOrigin => (Some("SAMEORIGIN"), "'self'".to_string()),
        // ALLOW-FROM is ignored by today's browsers: CSP alone says it.
        FrameOptions::AllowFrom(origin) => (None, origin.clone()),
    };
    let h = resp.headers_mut();
    if let Some(legacy) = legacy {
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static(legacy));
    }
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&format!("frame-ancestors {ancestors}"))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}
