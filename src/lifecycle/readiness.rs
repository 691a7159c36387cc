//! Waits until a freshly started app answers HTTP 200 or a redirect.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

const POLL_EVERY: Duration = Duration::from_millis(200);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

pub enum NotReady {
    /// The deadline passed; the text is the last thing the probe saw.
    TimedOut(String),
    /// `gone()` reported that the app is no longer running.
    Exited(String),
}

/// Polls `http://address{path}` until it answers 2xx/3xx. `gone` is asked between attempts
/// whether the app has died, so a crash is reported at once rather than at the deadline.
pub async fn wait_until_ready<F, Fut>(
    address: SocketAddr,
    path: &str,
    deadline: Instant,
    mut gone: F,
) -> Result<(), NotReady>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let path = if path.is_empty() { "/" } else { path };
    let uri: hyper::Uri = format!("http://{address}{path}")
        .parse()
        .map_err(|e| NotReady::TimedOut(format!("bad probe address: {e}")))?;
    let mut last_seen;
    loop {
        if let Some(how) = gone().await {
            return Err(NotReady::Exited(how));
        }
        match tokio::time::timeout(ATTEMPT_TIMEOUT, client.get(uri.clone())).await {
            Ok(Ok(resp)) if resp.status().is_success() || resp.status().is_redirection() => {
                return Ok(());
            }
            Ok(Ok(resp)) => last_seen = format!("it answered HTTP {}", resp.status()),
            Ok(Err(e)) => last_seen = format!("connecting failed: {e}"),
            Err(_) => last_seen = "a probe timed out".to_string(),
        }
        if Instant::now() + POLL_EVERY > deadline {
            return Err(NotReady::TimedOut(last_seen));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
