//! Usage statistics, as ShinyProxy records them: one row per login, logout, app start, stop and
//! failure, written to PostgreSQL, a CSV file or InfluxDB.
//!
//! Recording never waits: an event goes into a bounded queue per sink, and each sink's task
//! writes at its own pace. A slow or broken sink loses events (counted in
//! `vestibule_usage_events_dropped_total` and logged) instead of slowing a login or a launch.

mod csv;
mod influx;
mod postgres;
mod worker;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::{UsageSink, UsageStatsConfig};

pub use worker::DropLabels;

/// Events waiting for one sink. At a few events per user action this is minutes of backlog.
const QUEUE: usize = 4096;

/// ShinyProxy's event types, spelled as it writes them in the `type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Login,
    Logout,
    ProxyStart,
    ProxyStop,
    ProxyStartFailed,
    AuthFailed,
    AppCrashed,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::Login => "Login",
            EventType::Logout => "Logout",
            EventType::ProxyStart => "ProxyStart",
            EventType::ProxyStop => "ProxyStop",
            EventType::ProxyStartFailed => "ProxyStartFailed",
            EventType::AuthFailed => "AuthFailed",
            EventType::AppCrashed => "AppCrashed",
        }
    }
}

/// One row: ShinyProxy's `event_time`, `username`, `type` and `data` (the app id for app events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// Milliseconds since the epoch, taken when the event happened (not when it is written).
    pub time_ms: u64,
    pub user: String,
    pub kind: EventType,
    pub data: Option<String>,
}

impl UsageEvent {
    pub fn now(kind: EventType, user: &str, data: Option<&str>) -> Self {
        Self {
            time_ms: crate::clock::now_unix_ms(),
            user: user.to_string(),
            kind,
            data: data.map(str::to_string),
        }
    }
}

/// Where events are sent: one queue per writing sink. Cheap to clone; empty when no sink writes.
#[derive(Clone, Default)]
pub struct Usage {
    queues: Vec<(String, mpsc::Sender<UsageEvent>)>,
    dropped: Family<DropLabels, Counter>,
    /// Events queued or being written, so that shutdown can wait for the last ones.
    pending: Arc<AtomicUsize>,
}

impl Usage {
    /// Starts one writer task per sink of `config` (micrometer is not a writer: it is metrics).
    /// Must be called inside a tokio runtime.
    pub fn start(config: &UsageStatsConfig, dropped: Family<DropLabels, Counter>) -> Self {
        let mut queues = Vec::new();
        let pending = Arc::new(AtomicUsize::new(0));
        for sink in &config.sinks {
            let name = sink.name();
            let (tx, rx) = mpsc::channel(QUEUE);
            let writer: Box<dyn worker::Writer> = match sink {
                UsageSink::Micrometer => continue,
                UsageSink::Csv(path) => Box::new(csv::CsvWriter::new(path.clone())),
                UsageSink::Influx {
                    url,
                    user,
                    password,
                } => Box::new(influx::InfluxWriter::new(
                    url.clone(),
                    user.clone(),
                    password.clone(),
                )),
                UsageSink::Postgres { .. } => Box::new(postgres::PostgresWriter::new(sink)),
            };
            tracing::info!(sink = %name, "sending usage statistics");
            tokio::spawn(worker::run(
                name.clone(),
                writer,
                rx,
                dropped.clone(),
                pending.clone(),
            ));
            queues.push((name, tx));
        }
        Self {
            queues,
            dropped,
            pending,
        }
    }

    /// Hands `event` to every sink without waiting; a full queue drops it for that sink.
    pub fn record(&self, event: UsageEvent) {
        for (name, queue) in &self.queues {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = queue.try_send(event.clone()) {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                worker::dropped(&self.dropped, name, "queue_full", &e.to_string());
            }
        }
    }

    /// Waits until every recorded event is written (or given up on), for at most `limit`: the
    /// events of a shutdown (its ProxyStops) would otherwise die with the process.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    events = self.pending.load(Ordering::SeqCst),
                    "usage statistics events not written before shutdown"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
