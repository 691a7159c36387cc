//! ShinyProxy's own metric names (its Micrometer collector, `usage-stats-url: micrometer`), so
//! that dashboards built for ShinyProxy keep working: `userLogins`, `userLogouts`, `authFailed`,
//! and per app (`spec_id`) `appStarts`, `appStops`, `appCrashes`, `startFailed`, `startupTime`
//! and `absolute_apps_running`, each behind `usage-stats-micrometer-prefix`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpecLabels {
    /// Micrometer's `spec.id`, as Prometheus names it.
    spec_id: String,
}

fn startup_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

pub struct Micrometer {
    registry: Registry,
    user_logins: Counter,
    user_logouts: Counter,
    auth_failed: Counter,
    app_starts: Family<SpecLabels, Counter>,
    app_stops: Family<SpecLabels, Counter>,
    app_crashes: Family<SpecLabels, Counter>,
    start_failed: Family<SpecLabels, Counter>,
    startup_time: Family<SpecLabels, Histogram, fn() -> Histogram>,
    running: Family<SpecLabels, Gauge>,
}

impl Micrometer {
    /// `prefix` as ShinyProxy takes it (`usage-stats-micrometer-prefix`); `apps` are shown at 0
    /// from the start, as ShinyProxy registers them.
    pub fn new(prefix: &str, apps: &[String]) -> Self {
        // Micrometer's Prometheus naming turns dots (and anything else not allowed) into `_`.
        let prefix: String = prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut registry = if prefix.is_empty() {
            Registry::default()
        } else {
            Registry::with_prefix(prefix)
        };
        let m = Self {
            user_logins: Counter::default(),
            user_logouts: Counter::default(),
            auth_failed: Counter::default(),
            app_starts: Family::default(),
            app_stops: Family::default(),
            app_crashes: Family::default(),
            start_failed: Family::default(),
            startup_time: Family::new_with_constructor(startup_histogram),
            running: Family::default(),
            registry: Registry::default(),
        };
        registry.register("userLogins", "Logins", m.user_logins.clone());
        registry.register("userLogouts", "Logouts", m.user_logouts.clone());
        registry.register("authFailed", "Failed logins", m.auth_failed.clone());
        registry.register("appStarts", "Apps started", m.app_starts.clone());
        registry.register("appStops", "Apps stopped", m.app_stops.clone());
        registry.register(
            "appCrashes",
            "Apps that stopped on their own",
            m.app_crashes.clone(),
        );
        registry.register(
            "startFailed",
            "App launches that failed",
            m.start_failed.clone(),
        );
        registry.register_with_unit(
            "startupTime",
            "From the launch request until the app answered",
            Unit::Seconds,
            m.startup_time.clone(),
        );
        registry.register(
            "absolute_apps_running",
            "Apps running now",
            m.running.clone(),
        );
        for app in apps {
            let l = SpecLabels {
                spec_id: app.clone(),
            };
            for family in [&m.app_starts, &m.app_stops, &m.app_crashes, &m.start_failed] {
                let _ = family.get_or_create(&l);
            }
        }
        Self { registry, ..m }
    }

    pub fn login(&self) {
        self.user_logins.inc();
    }

    pub fn logout(&self) {
        self.user_logouts.inc();
    }

    pub fn auth_failed(&self) {
        self.auth_failed.inc();
    }

    pub fn started(&self, app: &str, took: Duration) {
        let l = labels(app);
        self.app_starts.get_or_create(&l).inc();
        self.startup_time
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    pub fn start_failed(&self, app: &str) {
        self.start_failed.get_or_create(&labels(app)).inc();
    }

    pub fn stopped(&self, app: &str) {
        self.app_stops.get_or_create(&labels(app)).inc();
    }

    pub fn crashed(&self, app: &str) {
        self.app_crashes.get_or_create(&labels(app)).inc();
    }

    /// Sets the running gauge from `running` (app → instances running now).
    pub fn set_running(&self, running: impl IntoIterator<Item = (String, i64)>) {
        self.running.clear();
        for (app, n) in running {
            self.running.get_or_create(&labels(&app)).set(n);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

fn labels(app: &str) -> SpecLabels {
    SpecLabels {
        spec_id: app.to_string(),
    }
}
