//! The data path of a pool: the ready instances a request may go to, the least-loaded pick, and
//! the queue that holds requests while no instance is ready (vestibule is its own activator, so
//! a pool can scale from zero without losing the first request).
//!
//! Lifecycle is the only writer of the member list; the data path only reads it and counts.

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

use super::Route;
use crate::clock::Instant;

/// The cookie that keeps a browser on one member of a pool with `session-affinity`, followed
/// by the app's id. The proxy strips it before the app sees the request.
pub const AFFINITY_COOKIE_PREFIX: &str = "vestibule_pool_";

/// Why a held request was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The queue was full: answered at once.
    QueueFull,
    /// No instance became ready in time; the last start failure says why, if one failed.
    TimedOut(Option<String>),
}

pub struct Pool {
    pub spec_id: String,
    members: ArcSwap<Vec<Arc<Route>>>,
    /// Bumped on every change of the members, to wake held requests.
    changed: watch::Sender<u64>,
    queued: AtomicUsize,
    queue_limit: usize,
    /// Tells the scaler a request is waiting, so it need not wait for its next tick.
    poke: Notify,
    /// Where ties between equally loaded instances start, so they take turns.
    turn: AtomicUsize,
    last_failure: Mutex<Option<String>>,
    waits: Mutex<WaitStats>,
    /// `client-rate-limit`: requests per minute per client address.
    clients: Option<governor::DefaultKeyedRateLimiter<IpAddr>>,
}

/// How long held requests waited, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct WaitStats {
    pub count: u64,
    pub total_secs: f64,
    pub refused: u64,
}

impl Pool {
    pub fn new(spec_id: &str, queue_limit: usize) -> Self {
        Self::with_client_limit(spec_id, queue_limit, None)
    }

    pub fn with_client_limit(
        spec_id: &str,
        queue_limit: usize,
        per_minute: Option<std::num::NonZeroU32>,
    ) -> Self {
        Self {
            spec_id: spec_id.to_string(),
            members: ArcSwap::from_pointee(Vec::new()),
            changed: watch::Sender::new(0),
            queued: AtomicUsize::new(0),
            queue_limit,
            poke: Notify::new(),
            turn: AtomicUsize::new(0),
            last_failure: Mutex::new(None),
            waits: Mutex::new(WaitStats::default()),
            clients: per_minute
                .map(|n| governor::RateLimiter::keyed(governor::Quota::per_minute(n))),
        }
    }

    /// Whether `client` may make another request now; if not, how long until it may.
    pub fn admit_client(&self, client: IpAddr) -> Result<(), Duration> {
        use governor::clock::Clock;
        let Some(limiter) = &self.clients else {
            return Ok(());
        };
        limiter
            .check_key(&client)
            .map_err(|wait| wait.wait_time_from(governor::clock::DefaultClock::default().now()))
    }

    /// Forgets clients whose limit has refilled, so the table does not grow for ever.
    pub fn forget_quiet_clients(&self) {
        if let Some(limiter) = &self.clients {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The instances new requests may go to.
    pub fn members(&self) -> Arc<Vec<Arc<Route>>> {
        self.members.load_full()
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Requests in flight on the ready instances plus those held: what the scaler sizes for.
    pub fn load(&self) -> usize {
        self.members
            .load()
            .iter()
            .map(|r| r.in_flight())
            .sum::<usize>()
            + self.queued()
    }

    pub fn wait_stats(&self) -> WaitStats {
        *self.waits.lock()
    }

    /// The ready instance with the fewest requests in flight; `prefer` (an affinity cookie's
    /// instance) wins while it is still a member.
    pub fn pick(&self, prefer: Option<&str>) -> Option<Arc<Route>> {
        let members = self.members.load();
        if let Some(id) = prefer
            && let Some(r) = members.iter().find(|r| r.instance_id == id)
        {
            return Some(r.clone());
        }
        if members.is_empty() {
            return None;
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % members.len();
        members
            .iter()
            .cycle()
            .skip(start)
            .take(members.len())
            .min_by_key(|r| r.in_flight())
            .cloned()
    }

    /// An instance for this request: at once when one is ready, else after holding the request
    /// until one is (at most `wait`). A client that goes away leaves the queue when this future
    /// is dropped.
    pub async fn acquire(&self, prefer: Option<&str>, wait: Duration) -> Result<Arc<Route>, Held> {
        if let Some(r) = self.pick(prefer) {
            return Ok(r);
        }
        // Subscribe before looking again, so a member added in between is not missed.
        let mut changed = self.changed.subscribe();
        let _place = Queued::enter(self);
        if self.queued() > self.queue_limit {
            self.waits.lock().refused += 1;
            return Err(Held::QueueFull);
        }
        self.poke.notify_one();
        let began = Instant::now();
        let deadline = began + wait;
        loop {
            if let Some(r) = self.pick(prefer) {
                let mut w = self.waits.lock();
                w.count += 1;
                w.total_secs += began.elapsed().as_secs_f64();
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    self.waits.lock().refused += 1;
                    return Err(Held::TimedOut(self.last_failure.lock().clone()));
                }
            }
        }
    }

    /// Resolves when a request has been queued since the last call.
    pub async fn poked(&self) {
        self.poke.notified().await;
    }

    pub(crate) fn add(&self, route: Arc<Route>) {
        *self.last_failure.lock() = None;
        self.members.rcu(|members| {
            let mut members = Vec::clone(members);
            members.retain(|r| r.instance_id != route.instance_id);
            members.push(route.clone());
            members
        });
        self.changed.send_modify(|v| *v += 1);
    }

    /// Takes an instance out of the rotation (it is draining, stopped or dead).
    pub(crate) fn remove(&self, instance_id: &str) -> Option<Arc<Route>> {
        let mut removed = None;
        self.members.rcu(|members| {
            let mut members = Vec::clone(members);
            if let Some(at) = members.iter().position(|r| r.instance_id == instance_id) {
                removed = Some(members.remove(at));
            }
            members
        });
        if removed.is_some() {
            self.changed.send_modify(|v| *v += 1);
        }
        removed
    }

    /// Why the last start failed, told to requests that time out waiting.
    pub(crate) fn start_failed(&self, reason: &str) {
        *self.last_failure.lock() = Some(reason.to_string());
    }
}

/// A request's place in the queue, given up when it is served, refused or its client leaves.
struct Queued<'a>(&'a Pool);

impl<'a> Queued<'a> {
    fn enter(pool: &'a Pool) -> Self {
        pool.queued.fetch_add(1, Ordering::Relaxed);
        Self(pool)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every pool, by app id. The set of pools is fixed by the config; members change.
#[derive(Default)]
pub struct PoolTable {
    pools: HashMap<String, Arc<Pool>>,
}

impl PoolTable {
    pub fn new<'a>(
        pools: impl IntoIterator<Item = (&'a str, &'a crate::config::PoolSettings)>,
    ) -> Self {
        Self {
            pools: pools
                .into_iter()
                .map(|(id, s)| {
                    let pool = Pool::with_client_limit(id, s.queue_limit, s.client_rate_limit);
                    (id.to_string(), Arc::new(pool))
                })
                .collect(),
        }
    }

    pub fn get(&self, spec_id: &str) -> Option<&Arc<Pool>> {
        self.pools.get(spec_id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::AppHeaders;

    fn route(id: &str) -> Arc<Route> {
        Arc::new(Route::new(
            id.into(),
            String::new(),
            "api".into(),
            "127.0.0.1:1".parse().expect("addr"),
            "",
            AppHeaders::default(),
        ))
    }

    #[test]
    fn the_least_loaded_member_is_picked_and_ties_take_turns() {
        let pool = Pool::new("api", 10);
        let (a, b) = (route("a"), route("b"));
        pool.add(a.clone());
        pool.add(b.clone());
        let _busy = a.begin();
        for _ in 0..4 {
            assert_eq!(
                pool.pick(None).map(|r| r.instance_id.clone()),
                Some("b".into())
            );
        }
        drop(_busy);
        let picks: std::collections::HashSet<String> = (0..4)
            .filter_map(|_| pool.pick(None))
            .map(|r| r.instance_id.clone())
            .collect();
        assert_eq!(picks.len(), 2, "equally loaded members take turns");
        assert_eq!(
            pool.pick(Some("a")).map(|r| r.instance_id.clone()),
            Some("a".into()),
            "an affinity cookie's member wins while it is a member"
        );
        pool.remove("a");
        assert_eq!(
            pool.pick(Some("a")).map(|r| r.instance_id.clone()),
            Some("b".into())
        );
    }

    #[test]
    fn a_client_over_its_rate_is_told_when_to_come_back_and_others_are_not_affected() {
        let pool = Pool::with_client_limit("api", 10, std::num::NonZeroU32::new(2));
        let (a, b): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        assert!(pool.admit_client(a).is_ok());
        assert!(pool.admit_client(a).is_ok());
        let wait = pool
            .admit_client(a)
            .expect_err("a third request within the minute");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(pool.admit_client(b).is_ok(), "limits are per client");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_is_served_when_a_member_is_added() {
        let pool = Arc::new(Pool::new("api", 10));
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(None, Duration::from_secs(20)).await })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(pool.queued(), 1);
        assert_eq!(pool.load(), 1, "a held request counts as load");
        pool.add(route("a"));
        let got = waiter.await.expect("joined").expect("served");
        assert_eq!(got.instance_id, "a");
        assert_eq!(pool.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once_and_a_timeout_says_why() {
        let pool = Arc::new(Pool::new("api", 1));
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(None, Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(
            pool.acquire(None, Duration::from_secs(5)).await.err(),
            Some(Held::QueueFull)
        );
        pool.start_failed("app 'api' exited with status 1");
        assert_eq!(
            first.await.expect("joined").err(),
            Some(Held::TimedOut(Some(
                "app 'api' exited with status 1".into()
            )))
        );
        assert_eq!(pool.queued(), 0);
    }
}
