//! HTTP/1.1 connections to app instances. Each route keeps its own idle connections, so a request
//! finds one without a global pool's lock and hash, and the connections go away with the instance
//! (a later instance on the same port never receives a stale one).

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

use super::ProxyError;
use super::routes::Route;

/// Idle connections kept per instance; more than this many concurrent requests open new ones that
/// are closed afterwards.
const MAX_IDLE: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The idle connections to one instance.
#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<Vec<SendRequest<Body>>>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().len();
        write!(f, "UpstreamPool {{ idle: {idle} }}")
    }
}

impl UpstreamPool {
    /// An open connection that can take a request now. One still finishing its previous
    /// exchange is left for later rather than waited for (waiting could hang on a stalled
    /// upload); closed ones are dropped.
    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock();
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().rposition(|sender| sender.is_ready())?;
        // The most recently returned connection: kept in order, so the oldest ones age out.
        Some(idle.remove(ready))
    }

    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }
}

/// A response from the app and the connection it came on, to be returned to the route's pool
/// once the body has been read to the end.
pub struct Exchange {
    pub response: Response<Incoming>,
    pub connection: SendRequest<Body>,
}

/// Sends `req` on an idle connection to the route's instance, or on a new one.
///
/// An idle connection can be closed by the app (its keep-alive timeout) just as a request goes
/// out on it. A request the app never received is sent again on a fresh connection; so is one
/// it may have received but that is safe to repeat (GET, HEAD or OPTIONS without a body), as
/// browsers do.
pub async fn send(route: &Route, req: Request<Body>) -> Result<Exchange, ProxyError> {
    let mut req = req;
    if let Some(mut sender) = route.upstream.take_idle() {
        let replay = Replay::of(&req);
        match sender.try_send_request(req).await {
            Ok(response) => {
                return Ok(Exchange {
                    response,
                    connection: sender,
                });
            }
            Err(mut e) => match (e.take_message(), replay) {
                (Some(unsent), _) => req = unsent,
                (None, Some(replay)) => {
                    tracing::debug!(error = %super::error_chain(e.error()), "repeating a request on a new connection");
                    req = replay.request();
                }
                (None, None) => return Err(ProxyError::Upstream(super::error_chain(e.error()))),
            },
        }
    }
    let mut sender = connect(route.target).await?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| ProxyError::Upstream(super::error_chain(&e)))?;
    Ok(Exchange {
        response,
        connection: sender,
    })
}

/// What is needed to send a request again: only kept for requests that are safe to repeat.
struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Replay {
    fn of(req: &Request<Body>) -> Option<Self> {
        let repeatable = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let bodyless = req.body().size_hint().exact() == Some(0);
        // An upgrade hands the connection over to the caller, which a copy cannot do.
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        (repeatable && bodyless && !upgrade).then(|| Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        })
    }

    fn request(self) -> Request<Body> {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

async fn connect(target: SocketAddr) -> Result<SendRequest<Body>, ProxyError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| ProxyError::Upstream(format!("connecting to {target} timed out")))?
        .map_err(|e| ProxyError::Upstream(format!("cannot connect to {target}: {e}")))?;
    // Small request/response pairs would otherwise wait for Nagle's delayed ACK.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Upstream(super::error_chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    sender
        .ready()
        .await
        .map_err(|e| ProxyError::Upstream(super::error_chain(&e)))?;
    Ok(sender)
}

/// A response body that gives its connection back to the route's pool once the app has sent all
/// of it. A body dropped early (the client went away) takes its connection with it, because the
/// rest of the response would still be in the way.
pub struct ReturnWhenRead {
    inner: Incoming,
    connection: Option<SendRequest<Body>>,
    route: Arc<Route>,
    /// The request counts as in flight until its body has been read to the end.
    load: Option<super::InFlight>,
}

impl ReturnWhenRead {
    pub fn new(
        inner: Incoming,
        connection: SendRequest<Body>,
        route: Arc<Route>,
        load: super::InFlight,
    ) -> Self {
        Self {
            inner,
            connection: Some(connection),
            route,
            load: Some(load),
        }
    }

    fn release_if_done(&mut self) {
        if self.inner.is_end_stream() {
            self.load = None;
            if let Some(connection) = self.connection.take() {
                self.route.upstream.put(connection);
            }
        }
    }
}

impl HttpBody for ReturnWhenRead {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.load = None;
                if let Some(connection) = self.connection.take() {
                    self.route.upstream.put(connection);
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(meters)) = (frame.data_ref(), self.route.taken_meters()) {
                    meters.sent_to_client(data.len());
                }
                self.release_if_done()
            }
            Poll::Ready(Some(Err(_))) => {
                self.connection = None;
                self.load = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts its bytes on the way to the app.
pub struct CountToApp {
    inner: Body,
    route: Arc<Route>,
}

impl CountToApp {
    pub fn new(inner: Body, route: Arc<Route>) -> Self {
        Self { inner, route }
    }
}

impl HttpBody for CountToApp {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let (Some(data), Some(meters)) = (frame.data_ref(), self.route.taken_meters())
        {
            meters.sent_to_app(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ReturnWhenRead {
    fn drop(&mut self) {
        // The server stops polling once `is_end_stream` says so, which may be before `None`.
        self.release_if_done();
    }
}
