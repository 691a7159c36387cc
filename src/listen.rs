//! Accepting connections on the main port, with the limits that keep a few clients from holding
//! the server (issue 18, F7): a deadline for each request head (which is also the keep-alive idle
//! timeout), a cap per client address, and a global cap past which only `/actuator/health` is
//! still answered, on a small reserve of connections, so that probes keep working while the
//! server is full. The management port has its own listener and none of these caps.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use dashmap::DashMap;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// Connections past the global cap that may still ask for `/actuator/health`.
const HEALTH_RESERVE: usize = 32;
/// Their time to send a request head: a probe sends at once.
const HEALTH_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const HEALTH_PATH: &str = "/actuator/health";

/// Serves `app` on `listener` until `stop` is cancelled, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let per_address = Arc::new(PerAddress::default());
    let total = Arc::new(Semaphore::new(limits.max_total));
    let reserve = Arc::new(Semaphore::new(HEALTH_RESERVE));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: wait for some to be released.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = per_address.claim(peer.ip(), limits.max_per_address) else {
            tracing::debug!(ip = %peer.ip(), "too many connections from one address; closed");
            continue;
        };
        let (permit, health_only) = match total.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    tracing::warn!("connection limit reached; closed a new connection");
                    continue;
                }
            },
        };
        let head_timeout = if health_only {
            HEALTH_HEAD_TIMEOUT.min(limits.header_read_timeout)
        } else {
            limits.header_read_timeout
        };
        let conn = Connection {
            app: app.clone(),
            peer,
            head_timeout,
            health_only,
            _held: (slot, permit),
        };
        tracker.spawn(conn.serve(stream, stop.clone()));
    }
    tracker.close();
    tracker.wait().await;
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    head_timeout: Duration,
    health_only: bool,
    /// Released when the connection ends, which for a WebSocket is when it is handed to the
    /// proxy: an open WebSocket (always authenticated) is not counted.
    _held: (AddressSlot, OwnedSemaphorePermit),
}

impl Connection {
    async fn serve(self, stream: TcpStream, stop: CancellationToken) {
        let Connection {
            app,
            peer,
            head_timeout,
            health_only,
            _held,
        } = self;
        let service = tower::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            async move {
                if health_only && req.uri().path() != HEALTH_PATH {
                    return Ok(
                        (StatusCode::SERVICE_UNAVAILABLE, "the server is full\n").into_response()
                    );
                }
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req.map(Body::new)).await
            }
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
            .enable_connect_protocol()
            .keep_alive_interval(head_timeout)
            .keep_alive_timeout(head_timeout);
        let conn = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        tokio::pin!(conn);
        let done = tokio::select! {
            r = conn.as_mut() => r,
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
