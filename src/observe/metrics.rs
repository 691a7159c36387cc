//! The counters and gauges vestibule exposes. Recording is an atomic increment; nothing here is
//! on the proxy's per-request path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

use super::micrometer::Micrometer;
use super::proxy_meters::{ProxyFamilies, ProxyMeters};
use super::usage::{DropLabels, EventType, Usage, UsageEvent};

/// Finds who owns an instance, for the usage events of app starts and stops.
pub type OwnerLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What listens to the same points as the metrics: usage-statistics sinks and ShinyProxy's
/// metric names. Attached once the server has its config.
struct Observers {
    usage: Usage,
    micrometer: Option<Micrometer>,
    owner_of: OwnerLookup,
    /// Instances whose launch failed: removing them later is no stop of a running app, for
    /// ShinyProxy's events and metrics (a ProxyStop with no ProxyStart would skew usage times).
    failed: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// Failed launches remembered at most; past it the set starts over (the culler forgets failed
/// instances without a stop, so the set must not grow for ever).
const FAILED_REMEMBERED: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaunchLabels {
    app: String,
    /// `started` or `failed`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StopLabels {
    app: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    app: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabels {
    app: String,
    /// `starting`, `ready` or `draining`.
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    app: String,
    /// `out` or `in`.
    direction: &'static str,
    /// `load`, `burst` or `idle`.
    reason: &'static str,
}

/// A pool as its gauges show it, counted when the metrics are read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PoolGauges {
    pub app: String,
    pub starting: i64,
    pub ready: i64,
    pub draining: i64,
    pub in_flight: i64,
    pub queued: i64,
    /// Requests that were held, how long they waited in all, and how many were refused.
    pub held: u64,
    pub held_seconds: f64,
    pub refused: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `applied` or `refused` (the file has errors; the running config is kept).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    /// `form`, `openid` or `header`.
    method: &'static str,
    outcome: &'static str,
}

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    /// Wrong user name or password.
    Refused,
    /// Too many attempts: refused without asking the login service.
    Throttled,
    /// The login service (LDAP, a web service) could not be asked.
    Unavailable,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Refused => "refused",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::Unavailable => "unavailable",
        }
    }
}

/// Launch times from 50 ms (a pre-started process) to about 7 minutes (a large image pull).
fn launch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    launches: Family<LaunchLabels, Counter>,
    launch_seconds: Family<AppLabels, Histogram, fn() -> Histogram>,
    stops: Family<StopLabels, Counter>,
    instances: Family<InstanceLabels, Gauge>,
    logins: Family<LoginLabels, Counter>,
    usage_dropped: Family<DropLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
    pool_instances: Family<PoolStateLabels, Gauge>,
    pool_in_flight: Family<AppLabels, Gauge>,
    pool_queued: Family<AppLabels, Gauge>,
    pool_held: Family<AppLabels, Gauge>,
    pool_held_seconds: Family<AppLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pool_refused: Family<AppLabels, Gauge>,
    pool_scale_events: Family<ScaleLabels, Counter>,
    seats: Family<PoolStateLabels, Gauge>,
    proxy: ProxyFamilies,
    active_users: Gauge,
    observers: OnceLock<Observers>,
    /// The last events, for the admin console.
    recent: super::recent::Recent,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vestibule");
        let launches = Family::<LaunchLabels, Counter>::default();
        let launch_seconds =
            Family::<AppLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                launch_histogram,
            );
        let stops = Family::<StopLabels, Counter>::default();
        let instances = Family::<InstanceLabels, Gauge>::default();
        let logins = Family::<LoginLabels, Counter>::default();
        let pool_instances = Family::<PoolStateLabels, Gauge>::default();
        let pool_in_flight = Family::<AppLabels, Gauge>::default();
        let pool_queued = Family::<AppLabels, Gauge>::default();
        let pool_held = Family::<AppLabels, Gauge>::default();
        let pool_held_seconds =
            Family::<AppLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let pool_refused = Family::<AppLabels, Gauge>::default();
        let pool_scale_events = Family::<ScaleLabels, Counter>::default();
        let seats = Family::<PoolStateLabels, Gauge>::default();
        registry.register(
            "seats",
            "Seats of apps with minimum-seats-available on this replica, by state (free, claimed, starting: seats in containers not ready yet, waiting: launches waiting for a seat)",
            seats.clone(),
        );
        registry.register(
            "pool_instances",
            "A pool's instances on this replica, by state (starting, ready, draining)",
            pool_instances.clone(),
        );
        registry.register(
            "pool_in_flight_requests",
            "Requests in flight on a pool's ready instances, WebSockets and event streams included",
            pool_in_flight.clone(),
        );
        registry.register(
            "pool_queued_requests",
            "Requests held while no instance of the pool is ready",
            pool_queued.clone(),
        );
        registry.register(
            "pool_held_requests",
            "Requests that were held and then served, since start",
            pool_held.clone(),
        );
        registry.register(
            "pool_held_seconds",
            "Time held requests waited for an instance in all, since start",
            pool_held_seconds.clone(),
        );
        registry.register(
            "pool_refused_requests",
            "Held requests answered 503 (queue full, or no instance in container-wait-time), since start",
            pool_refused.clone(),
        );
        registry.register(
            "pool_scale_events",
            "Pool scaling decisions, by direction (out, in) and reason (load, burst, idle)",
            pool_scale_events.clone(),
        );
        registry.register(
            "app_launches",
            "App launches, by app and whether the app became ready",
            launches.clone(),
        );
        registry.register(
            "app_launch_duration_seconds",
            "From the launch request until the app answered",
            launch_seconds.clone(),
        );
        registry.register(
            "app_stops",
            "Instances stopped, by app and why (user, admin, api, idle, max_lifetime, logout, shutdown, crashed)",
            stops.clone(),
        );
        registry.register(
            "instances",
            "Instances now known, by app and status",
            instances.clone(),
        );
        registry.register("logins", "Logins by method and outcome", logins.clone());
        let usage_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "usage_events_dropped",
            "Usage statistics events that never reached their sink, by sink and why \
             (queue_full: the sink is too slow; write_failed: it refused or did not answer)",
            usage_dropped.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config file reloads that changed something, by outcome (applied; refused: the file \
             has errors and the running config is kept)",
            config_reloads.clone(),
        );
        let proxy = ProxyFamilies::register(&mut registry);
        let active_users = Gauge::default();
        registry.register(
            "active_users",
            "Users with an instance starting or running on this replica",
            active_users.clone(),
        );
        Self {
            proxy,
            active_users,
            registry,
            config_reloads,
            launches,
            launch_seconds,
            stops,
            instances,
            logins,
            pool_instances,
            pool_in_flight,
            pool_queued,
            pool_held,
            pool_held_seconds,
            pool_refused,
            pool_scale_events,
            seats,
            usage_dropped,
            observers: OnceLock::new(),
            recent: Default::default(),
        }
    }

    /// The proxy's handles for one app's traffic, taken once per route.
    pub fn proxy_meters(&self, app: &str) -> ProxyMeters {
        self.proxy.meters(app)
    }

    /// Sets the active-users gauge, before [`Metrics::render`].
    pub fn set_active_users(&self, n: i64) {
        self.active_users.set(n);
    }

    /// The counter usage-statistics sinks count lost events in.
    pub fn usage_dropped(&self) -> Family<DropLabels, Counter> {
        self.usage_dropped.clone()
    }

    /// Sends what is recorded from now on to `usage` and, when set, `micrometer` as well.
    /// Only the first call counts: the server attaches its observers once.
    pub fn attach(&self, usage: Usage, micrometer: Option<Micrometer>, owner_of: OwnerLookup) {
        let _ = self.observers.set(Observers {
            usage,
            micrometer,
            owner_of,
            failed: Default::default(),
        });
    }

    fn event(&self, kind: EventType, user: &str, data: Option<&str>) {
        let event = UsageEvent::now(kind, user, data);
        self.recent.record(&event);
        if let Some(o) = self.observers.get() {
            o.usage.record(event);
        }
    }

    fn instance_event(&self, kind: EventType, instance: &str, app: &str) {
        let user = self
            .observers
            .get()
            .and_then(|o| (o.owner_of)(instance))
            .unwrap_or_default();
        self.event(kind, &user, Some(app));
    }

    /// The last `n` usage events, newest first.
    pub fn recent_events(&self, n: usize) -> Vec<super::recent::RecentEvent> {
        self.recent.newest(n)
    }

    /// Waits (at most `limit`) for usage events still being written.
    pub async fn flush_usage(&self, limit: Duration) {
        if let Some(o) = self.observers.get() {
            o.usage.flush(limit).await;
        }
    }

    fn micrometer(&self) -> Option<&Micrometer> {
        self.observers.get()?.micrometer.as_ref()
    }

    pub fn launch_started(&self, instance: &str, app: &str, took: Duration) {
        self.instance_event(EventType::ProxyStart, instance, app);
        if let Some(m) = self.micrometer() {
            m.started(app, took);
        }
        self.launch(app, "started");
        self.launch_seconds
            .get_or_create(&AppLabels { app: app.into() })
            .observe(took.as_secs_f64());
    }

    pub fn launch_failed(&self, instance: &str, app: &str) {
        self.instance_event(EventType::ProxyStartFailed, instance, app);
        self.remember_failed(instance);
        if let Some(m) = self.micrometer() {
            m.start_failed(app);
        }
        self.launch(app, "failed");
    }

    fn launch(&self, app: &str, outcome: &'static str) {
        self.launches
            .get_or_create(&LaunchLabels {
                app: app.into(),
                outcome,
            })
            .inc();
    }

    /// An instance stopped; `reason` `crashed` is an app that stopped on its own, which
    /// ShinyProxy counts as a stop and a crash.
    pub fn stopped(&self, instance: &str, app: &str, reason: &str) {
        self.stop(app, reason);
        let was_failed = self
            .observers
            .get()
            .is_some_and(|o| o.failed.lock().remove(instance));
        if was_failed {
            return;
        }
        self.instance_event(EventType::ProxyStop, instance, app);
        if reason == "crashed" {
            self.instance_event(EventType::AppCrashed, instance, app);
            // The crashed instance stays, shown as failed, until it is removed: that removal
            // is no second stop.
            self.remember_failed(instance);
        }
        if let Some(m) = self.micrometer() {
            m.stopped(app);
            if reason == "crashed" {
                m.crashed(app);
            }
        }
    }

    fn remember_failed(&self, instance: &str) {
        if let Some(o) = self.observers.get() {
            let mut failed = o.failed.lock();
            if failed.len() >= FAILED_REMEMBERED {
                failed.clear();
            }
            failed.insert(instance.to_string());
        }
    }

    /// vestibule's own stop count: every removal, failed launches included.
    fn stop(&self, app: &str, reason: &str) {
        self.stops
            .get_or_create(&StopLabels {
                app: app.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A login by `method` (`form`, `openid`, `header`). HTTP Basic on API calls is not
    /// counted: each call authenticates again, so it would count calls, not logins.
    pub fn login(&self, method: &'static str, outcome: LoginOutcome, user: &str) {
        match outcome {
            LoginOutcome::Success => {
                self.event(EventType::Login, user, None);
                if let Some(m) = self.micrometer() {
                    m.login();
                }
            }
            LoginOutcome::Refused | LoginOutcome::Throttled => {
                self.event(EventType::AuthFailed, user, None);
                if let Some(m) = self.micrometer() {
                    m.auth_failed();
                }
            }
            // The login service could not be asked: nothing is known about the user.
            LoginOutcome::Unavailable => {}
        }
        self.logins
            .get_or_create(&LoginLabels {
                method,
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn logout(&self, user: &str) {
        self.event(EventType::Logout, user, None);
        if let Some(m) = self.micrometer() {
            m.logout();
        }
    }

    /// The exposition text, with the instance gauges set from `counts` ((app, status) → n)
    /// first, so they describe this moment.
    /// The config file was read again: `applied`, or `refused` for a file with errors.
    pub fn config_reloaded(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.config_reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
    }

    /// A pool scaled out or in, and why.
    pub fn pool_scaled(&self, app: &str, direction: &'static str, reason: &'static str) {
        self.pool_scale_events
            .get_or_create(&ScaleLabels {
                app: app.into(),
                direction,
                reason,
            })
            .inc();
    }

    /// Sets the pools' gauges, before [`Metrics::render`].
    pub fn set_pools(&self, pools: &[PoolGauges]) {
        for p in pools {
            let app = AppLabels { app: p.app.clone() };
            for (state, n) in [
                ("starting", p.starting),
                ("ready", p.ready),
                ("draining", p.draining),
            ] {
                self.pool_instances
                    .get_or_create(&PoolStateLabels {
                        app: p.app.clone(),
                        state,
                    })
                    .set(n);
            }
            self.pool_in_flight.get_or_create(&app).set(p.in_flight);
            self.pool_queued.get_or_create(&app).set(p.queued);
            self.pool_held.get_or_create(&app).set(p.held as i64);
            self.pool_held_seconds
                .get_or_create(&app)
                .set(p.held_seconds);
            self.pool_refused.get_or_create(&app).set(p.refused as i64);
        }
    }

    /// Sets the seat gauges of one app, before [`Metrics::render`].
    pub fn set_seats(&self, app: &str, free: i64, claimed: i64, starting: i64, waiting: i64) {
        for (state, n) in [
            ("free", free),
            ("claimed", claimed),
            ("starting", starting),
            ("waiting", waiting),
        ] {
            self.seats
                .get_or_create(&PoolStateLabels {
                    app: app.into(),
                    state,
                })
                .set(n);
        }
    }

    pub fn render(&self, counts: impl IntoIterator<Item = ((String, String), i64)>) -> String {
        self.instances.clear();
        let mut running: std::collections::HashMap<String, i64> = Default::default();
        for ((app, status), n) in counts {
            if status == "running" {
                *running.entry(app.clone()).or_default() += n;
            }
            self.instances
                .get_or_create(&InstanceLabels { app, status })
                .set(n);
        }
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        let mut encoded = encode_registry(&mut text, &self.registry);
        if let Some(m) = self.micrometer() {
            m.set_running(running);
            encoded = encoded.and_then(|()| encode_registry(&mut text, m.registry()));
        }
        if let Err(e) = encoded.and_then(|()| encode_eof(&mut text)) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UsageSink, UsageStatsConfig};

    /// The usage events the metrics points produce, as a CSV sink writes them.
    #[tokio::test]
    async fn a_failed_or_crashed_instance_is_stopped_once_in_the_usage_events() {
        let dir = std::env::temp_dir().join(format!("vestibule-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let csv = dir.join("usage.csv");
        let _ = std::fs::remove_file(&csv);
        let m = Metrics::new();
        let config = UsageStatsConfig {
            sinks: vec![UsageSink::Csv(csv.clone())],
            micrometer_prefix: String::new(),
        };
        let usage = Usage::start(&config, m.usage_dropped());
        m.attach(usage, None, Box::new(|_| Some("alice".to_string())));
        m.launch_failed("i1", "broken");
        m.stopped("i1", "broken", "logout");
        m.launch_started("i2", "app", Duration::from_millis(5));
        m.stopped("i2", "app", "crashed");
        m.stopped("i2", "app", "logout");
        m.flush_usage(Duration::from_secs(5)).await;
        let text = std::fs::read_to_string(&csv).expect("csv");
        let types: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(2))
            .collect();
        assert_eq!(
            types,
            [
                "\"ProxyStartFailed\"",
                "\"ProxyStart\"",
                "\"ProxyStop\"",
                "\"AppCrashed\""
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
