//! What operators watch: Prometheus metrics served at `/actuator/prometheus` on the management
//! port, as ShinyProxy serves them; usage statistics (`usage`) written to a database, a CSV file
//! or InfluxDB; ShinyProxy's own metric names (`micrometer`); and the request id every log line
//! of a request carries (`request_id`).

mod metrics;
pub mod micrometer;
mod proxy_meters;
pub mod recent;
pub mod request_id;
pub mod usage;

pub use metrics::{LoginOutcome, Metrics, OwnerLookup, PoolGauges};
pub use proxy_meters::{ProxyMeters, WebSocketOpen};
