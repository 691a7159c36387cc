//! The data path: forwards a request (or a WebSocket) to an app instance over HTTP/1.1,
//! streaming bodies both ways.

pub mod closers;
pub mod headers;
pub mod routes;
mod sse_guard;
pub mod upstream;
pub mod websocket;

use axum::body::Body;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;
pub mod pool;
pub use routes::{InFlight, OpenConnection, Route, RouteTable};

/// Where a proxy failure came from: the app (502), the client that went away, or us (500).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the app did not answer: {0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The facts about the incoming request the proxy needs beyond the request itself.
pub struct Forward<'a> {
    pub route: Arc<Route>,
    pub identity: &'a Identity,
    pub client_ip: IpAddr,
    /// The trusted `X-Forwarded-For` chain for the app (hops and the peer); `None`: the client
    /// address alone.
    pub forwarded_for: Option<&'a str>,
    pub scheme: &'a str,
    /// Where, in the request's path and query, the part after the public prefix starts (it
    /// starts with `/`). An offset rather than a slice, so the request can be moved.
    pub rest_at: usize,
    /// What opened the request (session, token, instance): a WebSocket closes when any ends.
    pub openers: Vec<closers::Opener>,
}

#[derive(Clone)]
pub struct Proxy {
    shutdown: CancellationToken,
    closers: Arc<closers::Closers>,
    /// The open WebSockets, so shutdown can wait for their close frames before apps stop.
    websockets: tokio_util::task::TaskTracker,
    metrics: Arc<crate::observe::Metrics>,
}

impl Proxy {
    pub fn new(shutdown: CancellationToken, metrics: Arc<crate::observe::Metrics>) -> Self {
        Self {
            shutdown,
            closers: Default::default(),
            websockets: Default::default(),
            metrics,
        }
    }

    /// Waits until every WebSocket has ended (after shutdown, each has sent its close frame).
    pub async fn websockets_closed(&self) {
        self.websockets.close();
        self.websockets.wait().await;
    }

    /// Closes WebSockets by what opened them (logout, token revocation, stop).
    pub fn closers(&self) -> &closers::Closers {
        &self.closers
    }

    pub async fn forward(
        &self,
        f: Forward<'_>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let began = crate::clock::Instant::now();
        f.route.touch();
        let load = f.route.begin();
        let meters = f.route.meters(&self.metrics);
        let upgrade = headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let uri = upstream_uri(&f.route, req.uri(), f.rest_at)?;
        let (mut parts, body) = req.into_parts();
        // Most requests (GETs) have no body, and then need no counting wrapper.
        let body = if http_body::Body::size_hint(&body).exact() == Some(0) {
            body
        } else {
            Body::new(upstream::CountToApp::new(body, f.route.clone()))
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let h = &mut parts.headers;
        headers::strip_hop_by_hop(h, upgrade);
        headers::strip_own_cookies(h);
        f.route.headers.apply(h, f.identity);
        headers::set_forwarded(h, f.forwarded_for, f.client_ip, f.scheme);
        if !h.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(f.route.authority.as_str())
        {
            // HTTP/1.0 clients may send no Host; HTTP/1.1 requires one towards the app.
            h.insert(header::HOST, host);
        }

        let upstream::Exchange {
            response: mut resp,
            connection,
        } = Box::pin(upstream::send(&f.route, Request::from_parts(parts, body)))
            .await
            .inspect_err(|_| meters.unreachable())?;
        meters.answered(resp.status(), began.elapsed());

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::Upstream(
                    "the app switched protocols without being asked".into(),
                ));
            };
            let app_upgrade = hyper::upgrade::on(&mut resp);
            let open = f.route.hold_open();
            let shutdown = self.shutdown.clone();
            let ended = self.closers.watch(&f.openers);
            let route_ended = f.route.ended();
            let meters = meters.clone();
            self.websockets.spawn(async move {
                let _open = open;
                let _load = load;
                // The connection now belongs to the WebSocket; it is never pooled again.
                let _connection = connection;
                let (client, app) = match tokio::try_join!(client_upgrade, app_upgrade) {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket upgrade did not complete");
                        return;
                    }
                };
                let _counted = meters.websocket_opened();
                let mut client = TokioIo::new(client);
                let mut app = TokioIo::new(app);
                // No idle timeout: a WebSocket may legitimately be quiet for hours.
                let closed = async {
                    tokio::select! {
                        _ = closers::any_cancelled(&ended) => tracing::debug!(
                            "websocket closed: the session, token or instance that opened it ended"
                        ),
                        _ = route_ended => tracing::debug!(
                            "websocket closed: its instance is stopping or gone"
                        ),
                    }
                };
                if let Err(e) =
                    websocket::carry(&mut client, &mut app, &shutdown, closed, &meters).await
                {
                    tracing::debug!(error = %e, "websocket closed");
                }
            });
            let (mut parts, _) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, true);
            headers::strip_own_set_cookies(&mut parts.headers);
            return Ok(Response::from_parts(parts, Body::empty()));
        }

        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        headers::strip_own_set_cookies(&mut parts.headers);
        let streaming = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = upstream::ReturnWhenRead::new(body, connection, f.route.clone(), load);
        let body = if streaming {
            Body::new(sse_guard::HoldOpen::new(body, f.route.hold_open()))
        } else {
            Body::new(body)
        };
        Ok(Response::from_parts(parts, body))
    }
}

/// The app's URI for a request in origin form (path and query: a connection to one app needs no
/// scheme or authority): the route's target path, then the request's path and query after the
/// public prefix.
fn upstream_uri(route: &Route, uri: &Uri, rest_at: usize) -> Result<Uri, ProxyError> {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let tail = pq
        .get(rest_at..)
        .filter(|t| t.starts_with('/'))
        .unwrap_or("/");
    let pq = if route.target_path.is_empty() {
        PathAndQuery::try_from(tail)
    } else {
        PathAndQuery::try_from(format!("{}{tail}", route.target_path))
    }
    .map_err(|e| ProxyError::Internal(format!("bad upstream path: {e}")))?;
    Ok(Uri::from(pq))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `/prefix` → `/prefix/`, keeping the query: apps use relative URLs that need the slash.
pub fn add_trailing_slash(uri: &Uri) -> Response<Body> {
    let target = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
