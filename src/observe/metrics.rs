//! The counters and gauges vestibule exposes. Recording is an atomic increment; nothing here is
//! on the proxy's per-request path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

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
        Self {
            registry,
            launches,
            launch_seconds,
            stops,
            instances,
            logins,
        }
    }

    pub fn launch_started(&self, app: &str, took: Duration) {
        self.launch(app, "started");
        self.launch_seconds
            .get_or_create(&AppLabels { app: app.into() })
            .observe(took.as_secs_f64());
    }

    pub fn launch_failed(&self, app: &str) {
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

    pub fn stopped(&self, app: &str, reason: &str) {
        self.stops
            .get_or_create(&StopLabels {
                app: app.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A login by `method` (`form`, `openid`, `header`). HTTP Basic on API calls is not
    /// counted: each call authenticates again, so it would count calls, not logins.
    pub fn login(&self, method: &'static str, outcome: LoginOutcome) {
        self.logins
            .get_or_create(&LoginLabels {
                method,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// The exposition text, with the instance gauges set from `counts` ((app, status) → n)
    /// first, so they describe this moment.
    pub fn render(&self, counts: impl IntoIterator<Item = ((String, String), i64)>) -> String {
        self.instances.clear();
        for ((app, status), n) in counts {
            self.instances
                .get_or_create(&InstanceLabels { app, status })
                .set(n);
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}
