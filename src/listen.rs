//! Accepting connections on the main port, with the limits that keep a few clients from holding
//! the server (issue 18, F7): a deadline for each request head (which is also the keep-alive idle
//! timeout), a cap per client address, and a global cap past which only `/actuator/health` is
//! still answered, on a small reserve of connections, so that probes keep working while the
//! server is full (the oldest reserve connection makes room for a new one, so slow clients
//! cannot hold the reserve either). The management port has its own listener and none of these caps.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use dashmap::DashMap;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

use crate::observe::request_id;

use crate::config::ConnectionLimits;

/// Connections past the global cap that may still ask for `/actuator/health`.
const HEALTH_RESERVE: usize = 32;
/// Their time to send a request head: a probe sends at once.
const HEALTH_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const HEALTH_PATH: &str = "/actuator/health";

/// File descriptors kept for everything but client connections: app connections beyond one
/// per client, log files, the management port, backend sockets.
const SPARE_FILES: usize = 64;

/// `limits` with `max_total` lowered to what the process's open-file limit allows: each client
/// connection may hold one to an app as well, and the health reserve needs its own. Past the
/// limit, accept() fails and nothing, not even a probe, gets in.
pub fn fit_to_open_files(mut limits: ConnectionLimits) -> ConnectionLimits {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return limits;
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let fits = soft.saturating_sub(SPARE_FILES + HEALTH_RESERVE) / 2;
    if fits < limits.max_total {
        tracing::warn!(
            open_files = soft,
            configured = limits.max_total,
            used = fits.max(1),
            "the open-file limit (ulimit -n) is too low for proxy.connections.max-total; \
             using a lower cap"
        );
        limits.max_total = fits.max(1);
    }
    limits
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` is cancelled, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    trusted_proxies: Vec<ipnet::IpNet>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let per_address = Arc::new(PerAddress::default());
    let total = Arc::new(Semaphore::new(limits.max_total));
    let reserve = Reserve::default();
    let tracker = TaskTracker::new();
    // Under a flood accept() fails twenty times a second; the log says so once in a while.
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: wait for some to be released.
                    if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "cannot accept connections");
                        warned_at = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let trusted = crate::config::is_trusted_proxy(&trusted_proxies, peer.ip());
        // A load balancer's address is every user's: only the global cap applies to it.
        let slot = if trusted {
            None
        } else {
            match per_address.claim(peer.ip(), limits.max_per_address) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(ip = %peer.ip(), "too many connections from one address; closed");
                    continue;
                }
            }
        };
        let (held, evicted) = match total.clone().try_acquire_owned() {
            Ok(permit) => (Held::Main { _permit: permit }, None),
            Err(_) => {
                let evicted = reserve.take();
                let place = evicted.clone().drop_guard();
                (Held::Reserve { _place: place }, Some(evicted))
            }
        };
        let health_only = evicted.is_some();
        let head_timeout = if health_only {
            HEALTH_HEAD_TIMEOUT.min(limits.header_read_timeout)
        } else {
            limits.header_read_timeout
        };
        let conn = Connection {
            app: app.clone(),
            peer,
            trusted,
            tls: tls.clone(),
            head_timeout,
            evicted,
            _held: (slot, held),
        };
        tracker.spawn(conn.serve(stream, stop.clone()));
    }
    tracker.close();
    tracker.wait().await;
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    /// A trusted load balancer: its `X-Request-Id` is kept.
    trusted: bool,
    tls: Option<TlsAcceptor>,
    head_timeout: Duration,
    /// `Some` for a reserve connection (health only): cancelled to make room for a newer one.
    evicted: Option<CancellationToken>,
    /// Released when the connection ends, which for a WebSocket is when it is handed to the
    /// proxy: an open WebSocket (always authenticated) is not counted.
    _held: (Option<AddressSlot>, Held),
}

/// A connection's place under the global cap, or in the health reserve.
enum Held {
    Main {
        _permit: OwnedSemaphorePermit,
    },
    /// Marks the reserve place free when the connection ends.
    Reserve {
        _place: DropGuard,
    },
}

/// The health reserve: connections past the global cap. When all are taken, the oldest is
/// closed for the new one, so slow clients that fill the reserve cannot keep a probe out (a
/// probe sends its request at once and is done in milliseconds).
#[derive(Default)]
struct Reserve(parking_lot::Mutex<VecDeque<CancellationToken>>);

impl Reserve {
    fn take(&self) -> CancellationToken {
        let mut open = self.0.lock();
        open.retain(|t| !t.is_cancelled());
        if open.len() >= HEALTH_RESERVE
            && let Some(oldest) = open.pop_front()
        {
            oldest.cancel();
        }
        let place = CancellationToken::new();
        open.push_back(place.clone());
        place
    }
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, stop: CancellationToken) {
        match self.tls.take() {
            None => self.serve_io(stream, false, stop).await,
            Some(acceptor) => {
                // The handshake counts against the head deadline: a client that opens a
                // connection and says nothing is dropped as on plain HTTP.
                let shake = tokio::time::timeout(self.head_timeout, acceptor.accept(stream));
                match shake.await {
                    Ok(Ok(tls)) => self.serve_io(tls, true, stop).await,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I>(self, io: I, over_tls: bool, stop: CancellationToken)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            peer,
            trusted,
            tls: _,
            head_timeout,
            evicted,
            _held,
        } = self;
        let health_only = evicted.is_some();
        let service = tower::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            let id = request_id::assign(req.headers_mut(), trusted);
            let span = tracing::info_span!(
                "request",
                id = id.to_str().unwrap_or("-"),
                method = %req.method(),
                path = req.uri().path(),
            );
            async move {
                let mut resp = if health_only && req.uri().path() != HEALTH_PATH {
                    (StatusCode::SERVICE_UNAVAILABLE, "the server is full\n").into_response()
                } else {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.oneshot(req.map(Body::new)).await?
                };
                let headers = resp.headers_mut();
                headers.insert(request_id::X_REQUEST_ID.clone(), id);
                if over_tls {
                    headers.insert(
                        http::header::STRICT_TRANSPORT_SECURITY,
                        HeaderValue::from_static(crate::tls::HSTS),
                    );
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
            .instrument(span)
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout);
        // HTTP/2 over cleartext (prior knowledge), as axum serves it: WebSockets need CONNECT;
        // pings find peers that vanished.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(head_timeout)
            .keep_alive_timeout(head_timeout);
        // Over TLS, browsers negotiate HTTP/2 by ALPN and would open app WebSockets with
        // CONNECT (RFC 8441) if offered; the app proxy forwards HTTP/1.1 upgrades, so it is
        // not offered there and browsers open a separate HTTP/1.1 connection for WebSockets.
        if !over_tls {
            builder.http2().enable_connect_protocol();
        }
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        let done = tokio::select! {
            r = conn.as_mut() => r,
            _ = async { evicted.as_ref()?.cancelled().await; Some(()) }, if evicted.is_some() => {
                tracing::debug!(%peer, "reserve connection closed for a newer one");
                return;
            }
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = done {
            tracing::debug!(%peer, error = %e, "connection ended");
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(DashMap<IpAddr, usize>);

/// One open connection from an address; counted down when dropped.
struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn claim(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.0.entry(ip).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(AddressSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        // The entry goes when its count does, so the map holds only addresses with connections.
        self.owner.0.remove_if_mut(&self.ip, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_reserve_closes_its_oldest_connection() {
        let r = Reserve::default();
        let places: Vec<_> = (0..HEALTH_RESERVE).map(|_| r.take()).collect();
        assert!(places.iter().all(|p| !p.is_cancelled()));
        let _newest = r.take();
        assert!(places[0].is_cancelled(), "the oldest made room");
        assert!(!places[1].is_cancelled());
        // A place whose connection ended frees up without evicting anyone.
        places[5].cancel();
        let _another = r.take();
        assert!(!places[1].is_cancelled());
    }

    #[test]
    fn per_address_counts_come_back() {
        let p = Arc::new(PerAddress::default());
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let a = p.claim(ip, 2).expect("first");
        let b = p.claim(ip, 2).expect("second");
        assert!(p.claim(ip, 2).is_none(), "third refused");
        assert!(p.claim("10.0.0.2".parse().expect("ip"), 2).is_some());
        drop(a);
        let _c = p.claim(ip, 2).expect("room again");
        drop(b);
        drop(_c);
        assert!(p.0.get(&ip).is_none(), "no empty entries left");
    }
}
