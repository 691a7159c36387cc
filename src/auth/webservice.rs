//! `authentication: webservice`: ShinyProxy's remote check. The user name and password are
//! filled into `authentication-request-body` (`%s` twice, in that order) and POSTed as JSON to
//! `authentication-url`: 200 logs the user in (with no groups), a 4xx answer means a wrong user
//! name or password, and anything else (no answer, 5xx) means the service is unavailable.

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

use super::{AuthError, Authenticator, Identity};
use crate::config::{Config, WebserviceConfig};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebserviceAuthenticator {
    config: Arc<Config>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl WebserviceAuthenticator {
    pub fn new(config: Arc<Config>) -> std::io::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            config,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

/// ShinyProxy's `String.format(body, username, password)` for the `%s` it uses; each value is
/// escaped as a JSON string, so a quote in a name cannot add fields to the request.
pub fn fill_body(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut values = values.iter();
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('s') {
            let v = values.next().copied().unwrap_or_default();
            let quoted = serde_json::to_string(v).unwrap_or_default();
            out.push_str(quoted.trim_matches('"'));
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn settings(config: &Config) -> Result<&WebserviceConfig, AuthError> {
    config
        .proxy
        .webservice
        .as_ref()
        .ok_or_else(|| AuthError::Unavailable("no proxy.webservice settings".into()))
}

#[async_trait]
impl Authenticator for WebserviceAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        if user.is_empty() || password.is_empty() {
            return Err(AuthError::BadCredentials);
        }
        let ws = settings(&self.config)?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(&ws.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(fill_body(
                &ws.body_template,
                &[user, password],
            ))))
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let unavailable = |why: String| {
            tracing::warn!(event = "webservice_unavailable", url = %ws.url, error = %why, "login web service failed");
            AuthError::Unavailable(why)
        };
        let resp = match tokio::time::timeout(TIMEOUT, self.client.request(request)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    TIMEOUT.as_secs()
                )));
            }
        };
        let status = resp.status();
        // Read the body so the connection can be reused; its content is not needed.
        let _ = tokio::time::timeout(TIMEOUT, resp.into_body().collect()).await;
        match status {
            StatusCode::OK => Ok(Identity {
                user: user.to_string(),
                groups: Vec::new(),
                is_admin: self.config.proxy.is_admin(user, &[]),
            }),
            s if s.is_client_error() => Err(AuthError::BadCredentials),
            s => Err(unavailable(format!("answered {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fill_body;

    #[test]
    fn the_body_is_filled_like_string_format_with_json_escaping() {
        let t = r#"{"username": "%s", "password": "%s"}"#;
        assert_eq!(
            fill_body(t, &["jo", "p\"w"]),
            r#"{"username": "jo", "password": "p\"w"}"#
        );
        assert_eq!(
            fill_body(t, &["x\", \"admin\": true, \"y", "pw"]),
            r#"{"username": "x\", \"admin\": true, \"y", "password": "pw"}"#
        );
        assert_eq!(fill_body("100%% %d %s", &["a"]), "100% %d a");
    }
}
