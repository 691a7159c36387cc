//! What operators watch: Prometheus metrics served at `/actuator/prometheus` on the management
//! port, as ShinyProxy serves them.

mod metrics;

pub use metrics::{LoginOutcome, Metrics};
