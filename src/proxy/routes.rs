//! The route table the data path reads: instance id → where it listens and who owns it.
//!
//! Readers never lock: the table is an immutable map swapped atomically by the lifecycle manager
//! (the only writer: `insert` and `remove` are the crate's, and only lifecycle calls them), and
//! activity is recorded in atomics on each route. It lives beside the proxy so the data path
//! depends on nothing in the control plane.

use crate::clock::Instant;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Route {
    pub instance_id: String,
    pub owner: String,
    pub spec_id: String,
    pub target: SocketAddr,
    /// `target` as a URI authority, parsed once rather than per request.
    pub authority: http::uri::Authority,
    /// `target-path` without a trailing slash ("" for the app's root).
    pub target_path: String,
    /// Idle HTTP connections to the instance, reused by the proxy.
    pub upstream: super::upstream::UpstreamPool,
    /// Headers added to every request for the app.
    pub headers: super::headers::AppHeaders,
    epoch: Instant,
    last_activity_ms: AtomicU64,
    open_connections: AtomicUsize,
    /// Requests being answered, from dispatch until the response body ends; a WebSocket or an
    /// event stream counts for as long as it is open. Pools balance and scale on it.
    in_flight: AtomicUsize,
    /// Cancelled when the route is removed: the instance is stopping, failed or gone. Its
    /// WebSockets close then, not once the app has finally exited (which may take the backend's
    /// whole grace period, or never happen if the app ignores SIGTERM and is killed later).
    ended: tokio_util::sync::CancellationToken,
    /// The app's proxy metrics, looked up on the route's first request rather than on each.
    meters: std::sync::OnceLock<crate::observe::ProxyMeters>,
}

impl Route {
    pub fn new(
        instance_id: String,
        owner: String,
        spec_id: String,
        target: SocketAddr,
        target_path: &str,
        headers: super::headers::AppHeaders,
    ) -> Self {
        Self {
            instance_id,
            owner,
            spec_id,
            authority: http::uri::Authority::try_from(target.to_string().as_str())
                .unwrap_or_else(|_| http::uri::Authority::from_static("127.0.0.1")),
            target,
            target_path: target_path.trim_end_matches('/').to_string(),
            upstream: Default::default(),
            headers,
            epoch: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            open_connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            ended: Default::default(),
            meters: Default::default(),
        }
    }

    /// The app's proxy metrics from `metrics`, taken on the first call.
    pub fn meters(&self, metrics: &crate::observe::Metrics) -> &crate::observe::ProxyMeters {
        self.meters
            .get_or_init(|| metrics.proxy_meters(&self.spec_id))
    }

    /// The metrics taken by [`Route::meters`], if a request has taken them.
    pub(super) fn taken_meters(&self) -> Option<&crate::observe::ProxyMeters> {
        self.meters.get()
    }

    /// Completes once the route has been removed from the table.
    pub fn ended(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.ended.clone().cancelled_owned()
    }

    /// Records traffic; traffic counts as a heartbeat.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last traffic. An open long-lived connection (a WebSocket, a
    /// server-sent event stream) means someone is using the app, so it counts as activity.
    pub fn idle_for(&self) -> Duration {
        if self.open_connections.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Marks a long-lived connection open until the guard is dropped.
    pub fn hold_open(self: &Arc<Self>) -> OpenConnection {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// In-flight plain HTTP requests: those a drain waits for (long-lived connections are cut).
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight()
            .saturating_sub(self.open_connections.load(Ordering::Relaxed))
    }
}

pub struct InFlight(Arc<Route>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct OpenConnection(Arc<Route>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct RouteTable {
    routes: ArcSwap<HashMap<String, Arc<Route>>>,
}

impl RouteTable {
    pub fn get(&self, instance_id: &str) -> Option<Arc<Route>> {
        self.routes.load().get(instance_id).cloned()
    }

    pub(crate) fn insert(&self, route: Route) -> Arc<Route> {
        let route = Arc::new(route);
        self.routes.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(route.instance_id.clone(), route.clone());
            map
        });
        route
    }

    pub(crate) fn remove(&self, instance_id: &str) {
        let before = self.routes.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(instance_id);
            map
        });
        if let Some(route) = before.get(instance_id) {
            route.ended.cancel();
        }
    }

    pub fn all(&self) -> Vec<Arc<Route>> {
        self.routes.load().values().cloned().collect()
    }
}
