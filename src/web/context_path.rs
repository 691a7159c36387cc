//! `server.servlet.context-path`: everything served under a sub-path, as behind an ingress at
//! `/shinyproxy/`. The routes stay as they are: requests have the prefix taken off here, and
//! the redirects and cookies vestibule itself sends get it put back. Pages link through
//! `base`; apps learn it from their public path.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, Uri, header};
use std::sync::Arc;

use super::AppState;

pub async fn strip(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let config = st.config();
    let prefix = config.server.context_path.as_str();
    if prefix.is_empty() {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if path == prefix {
        return Redirect::permanent(&format!("{prefix}/")).into_response();
    }
    let Some(inner) = path
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("vestibule is served under {prefix}/\n"),
        )
            .into_response();
    };
    // An app's answers are the app's: its redirects and cookies already use its public
    // path, which includes the prefix.
    let app_traffic = ["/app_proxy/", "/app_direct/"]
        .iter()
        .any(|p| inner.starts_with(p));
    let rewritten = match req.uri().query() {
        Some(q) => format!("{inner}?{q}"),
        None => inner.to_string(),
    };
    match rewritten.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    let mut resp = next.run(req).await;
    if !app_traffic {
        restore(prefix, &mut resp);
    }
    resp
}

/// Puts the prefix back on local redirects and on the path of vestibule's cookies.
fn restore(prefix: &str, resp: &mut Response) {
    let headers = resp.headers_mut();
    if let Some(to) = headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .and_then(|l| HeaderValue::from_str(&format!("{prefix}{l}")).ok())
    {
        headers.insert(header::LOCATION, to);
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| {
            c.to_str()
                .ok()
                .map(|text| with_path(text, prefix))
                .and_then(|text| HeaderValue::from_str(&text).ok())
                .unwrap_or_else(|| c.clone())
        })
        .collect();
    if !cookies.is_empty() {
        headers.remove(header::SET_COOKIE);
        for c in cookies {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

/// `Path=/` becomes `Path=/sp`, so the browser sends the cookie only under the prefix.
fn with_path(cookie: &str, prefix: &str) -> String {
    cookie
        .split(';')
        .map(|part| {
            let trimmed = part.trim();
            match trimmed.strip_prefix("Path=") {
                Some(p) if p.starts_with('/') => {
                    format!(" Path={prefix}{}", p.trim_end_matches('/'))
                }
                _ => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::with_path;

    #[test]
    fn cookie_paths_gain_the_prefix() {
        assert_eq!(
            with_path("s=1; Path=/; HttpOnly; SameSite=Lax", "/sp"),
            "s=1; Path=/sp; HttpOnly; SameSite=Lax"
        );
        assert_eq!(with_path("s=1; Path=/x", "/sp"), "s=1; Path=/sp/x");
        assert_eq!(with_path("s=1; HttpOnly", "/sp"), "s=1; HttpOnly");
    }
}
