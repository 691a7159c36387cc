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
}

impl Usage {
    /// Starts one writer task per sink of `config` (micrometer is not a writer: it is metrics).
    /// Must be called inside a tokio runtime.
    pub fn start(config: &UsageStatsConfig, dropped: Family<DropLabels, Counter>) -> Self {
        let mut queues = Vec::new();
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
            tokio::spawn(worker::run(name.clone(), writer, rx, dropped.clone()));
            queues.push((name, tx));
        }
        Self { queues, dropped }
    }

    /// Hands `event` to every sink without waiting; a full queue drops it for that sink.
    pub fn record(&self, event: UsageEvent) {
        for (name, queue) in &self.queues {
            if let Err(e) = queue.try_send(event.clone()) {
                worker::dropped(&self.dropped, name, "queue_full", &e.to_string());
            }
        }
    }
}
