//! What the proxy counts for the dashboard: requests by status class, bytes each way, the time
//! until the app's response headers, and WebSockets. The data path never looks a label up: each
//! route takes its app's handles once ([`ProxyFamilies::meters`]), and a request then costs a few
//! atomic adds (and the histogram's short lock).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    app: String,
    /// `1xx` … `5xx` as the app answered, or `error` when it could not be reached (a 502).
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    app: String,
    /// `to_client` (responses, WebSocket messages from the app) or `to_app`.
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// From 1 ms (a cached asset) to about 16 s (a slow report).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The proxy's metric families, registered with the others.
pub(super) struct ProxyFamilies {
    requests: Family<StatusLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    latency: Family<AppLabels, Histogram, fn() -> Histogram>,
    websockets_open: Family<AppLabels, Gauge>,
    websockets: Family<AppLabels, Counter>,
}

impl ProxyFamilies {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let f = Self {
            requests: Family::default(),
            bytes: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            websockets_open: Family::default(),
            websockets: Family::default(),
        };
        registry.register(
            "proxy_requests",
            "Requests proxied to apps, by app and status class (error: the app could not be reached)",
            f.requests.clone(),
        );
        registry.register(
            "proxy_bytes",
            "Body bytes proxied, by app and direction (to_client, to_app), WebSocket traffic included",
            f.bytes.clone(),
        );
        registry.register(
            "proxy_response_seconds",
            "From a request reaching the proxy until the app's response headers",
            f.latency.clone(),
        );
        registry.register(
            "proxy_websockets_open",
            "WebSockets open now, by app",
            f.websockets_open.clone(),
        );
        registry.register(
            "proxy_websockets",
            "WebSockets opened, by app",
            f.websockets.clone(),
        );
        f
    }

    /// The handles of one app, taken once per route.
    pub(super) fn meters(&self, app: &str) -> ProxyMeters {
        let app_labels = AppLabels { app: app.into() };
        let direction = |direction| DirectionLabels {
            app: app.into(),
            direction,
        };
        // One statement each: `get_or_create`'s guard lives to the end of its statement, and a
        // second call on the same family while it is held would wait for itself.
        let requests = STATUS_CLASSES.map(|status| {
            self.requests
                .get_or_create(&StatusLabels {
                    app: app.into(),
                    status,
                })
                .clone()
        });
        let to_client = self.bytes.get_or_create(&direction("to_client")).clone();
        let to_app = self.bytes.get_or_create(&direction("to_app")).clone();
        let latency = self.latency.get_or_create(&app_labels).clone();
        let websockets_open = self.websockets_open.get_or_create(&app_labels).clone();
        let websockets = self.websockets.get_or_create(&app_labels).clone();
        ProxyMeters {
            requests,
            to_client,
            to_app,
            latency,
            websockets_open,
            websockets,
        }
    }
}

/// One app's proxy metrics: clones of the registered handles (each an `Arc` to atomics).
#[derive(Clone, Debug)]
pub struct ProxyMeters {
    requests: [Counter; 6],
    to_client: Counter,
    to_app: Counter,
    latency: Histogram,
    websockets_open: Gauge,
    websockets: Counter,
}

impl Default for ProxyMeters {
    /// Handles registered nowhere: for routes built where no metrics are kept (unit tests).
    fn default() -> Self {
        Self {
            requests: Default::default(),
            to_client: Default::default(),
            to_app: Default::default(),
            latency: latency_histogram(),
            websockets_open: Default::default(),
            websockets: Default::default(),
        }
    }
}

impl ProxyMeters {
    /// The app answered with `status` after `took`.
    pub fn answered(&self, status: http::StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[class].inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// The app could not be reached (the client gets a 502).
    pub fn unreachable(&self) {
        self.requests[5].inc();
    }

    pub fn sent_to_client(&self, bytes: usize) {
        self.to_client.inc_by(bytes as u64);
    }

    pub fn sent_to_app(&self, bytes: usize) {
        self.to_app.inc_by(bytes as u64);
    }

    /// Counts a WebSocket as open until the guard is dropped.
    pub fn websocket_opened(&self) -> WebSocketOpen {
        self.websockets.inc();
        self.websockets_open.inc();
        WebSocketOpen(self.websockets_open.clone())
    }
}

pub struct WebSocketOpen(Gauge);

impl Drop for WebSocketOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_unreachable_apps_are_counted_apart() {
        let mut registry = Registry::with_prefix("vestibule");
        let families = ProxyFamilies::register(&mut registry);
        let m = families.meters("app");
        m.answered(http::StatusCode::OK, Duration::from_millis(3));
        m.answered(http::StatusCode::NOT_FOUND, Duration::from_millis(3));
        m.unreachable();
        let open = m.websocket_opened();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"vestibule_proxy_requests_total{app="app",status="2xx"} 1"#,
            r#"vestibule_proxy_requests_total{app="app",status="4xx"} 1"#,
            r#"vestibule_proxy_requests_total{app="app",status="error"} 1"#,
            r#"vestibule_proxy_websockets_open{app="app"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        drop(open);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains(r#"vestibule_proxy_websockets_open{app="app"} 0"#));
    }
}
