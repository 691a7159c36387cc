//! Waits until a freshly started app answers. Readiness is decided here, once, for every
//! backend: a backend only says where the app listens and whether it has died.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

use crate::clock::Instant;

const POLL_EVERY: Duration = Duration::from_millis(200);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

pub enum NotReady {
    /// The deadline passed; the text is the last thing the probe saw.
    TimedOut(String),
    /// `gone()` reported that the app is no longer running.
    Exited(String),
}

/// Where a started app is asked whether it is ready.
pub struct ProbeTarget<'a> {
    pub address: SocketAddr,
    pub path: &'a str,
    /// Sent with each probe: the instance's own headers (an app that checks its instance token
    /// answers nothing without it).
    pub headers: &'a [(String, String)],
}

/// Asks an app once whether it is ready.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    /// `Ok` when the app answered as a ready app does; otherwise what the probe saw, for a person.
    async fn check(&self, target: &ProbeTarget<'_>) -> Result<(), String>;
}

/// Ready means `http://address{path}` answers 2xx or a redirect.
pub struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for HttpProbe {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

#[async_trait]
impl Probe for HttpProbe {
    async fn check(&self, target: &ProbeTarget<'_>) -> Result<(), String> {
        let path = if target.path.is_empty() {
            "/"
        } else {
            target.path
        };
        let mut request = hyper::Request::get(format!("http://{}{path}", target.address));
        for (name, value) in target.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| format!("bad probe request: {e}"))?;
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(resp)) if resp.status().is_success() || resp.status().is_redirection() => Ok(()),
            Ok(Ok(resp)) => Err(format!("it answered HTTP {}", resp.status())),
            Ok(Err(e)) => Err(format!("connecting failed: {e}")),
            Err(_) => Err("a probe timed out".to_string()),
        }
    }
}

/// Asks `probe` until the app is ready or `deadline` passes. `gone` is asked between attempts
/// whether the app has died, so a crash is reported at once rather than at the deadline.
pub async fn wait_until_ready<F, Fut>(
    probe: &dyn Probe,
    target: &ProbeTarget<'_>,
    deadline: Instant,
    mut gone: F,
) -> Result<(), NotReady>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    loop {
        if let Some(how) = gone().await {
            return Err(NotReady::Exited(how));
        }
        let last_seen = match probe.check(target).await {
            Ok(()) => return Ok(()),
            Err(seen) => seen,
        };
        if Instant::now() + POLL_EVERY > deadline {
            return Err(NotReady::TimedOut(last_seen));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
