//! `server.ssl.redirect-http-port`: a plain-HTTP port that sends every request to the same
//! path over HTTPS, so that links and bookmarks written with http:// keep working.

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve(listener: TcpListener, https_port: u16, stop: CancellationToken) {
    let app = Router::new().fallback(move |req: Request| async move { to_https(&req, https_port) });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP-to-HTTPS redirect port failed");
    }
}

fn to_https(req: &Request, https_port: u16) -> Response {
    let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name)
    else {
        return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response();
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let authority = if https_port == 443 {
        host.to_string()
    } else {
        format!("{host}:{https_port}")
    };
    // 308 keeps the method and body, so a form posted to http:// still arrives.
    Redirect::permanent(&format!("https://{authority}{path}")).into_response()
}

/// The host part of a Host header, without its port; `None` for anything that is not a plain
/// host name or address (a crafted Host must not redirect users elsewhere in odd ways).
fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_their_name_and_lose_their_port() {
        assert_eq!(host_name("example.org:8080"), Some("example.org"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("evil.org/x"), None);
        assert_eq!(host_name(""), None);
    }
}
