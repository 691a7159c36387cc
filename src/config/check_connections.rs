//! `proxy.connections.*` (vestibule's own): how long a client may take to send a request head
//! and how many connections it may hold, so that a few clients cannot hold the server.

use std::time::Duration;

use super::convert::{self, Fields};
use super::report::Report;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `header-read-timeout` (ms): time to send a request head, counted from when a connection
    /// opens or falls idle after a response. So it is also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// `max-per-address`: open HTTP connections from one client address (a WebSocket stops
    /// counting once it is open: only a logged-in user gets that far).
    pub max_per_address: usize,
    /// `max-total`: open connections in all. A few more are kept for `/actuator/health`.
    pub max_total: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            // A classroom behind one NAT address is dozens of browsers with six connections
            // each; a load balancer in front is every user. Raise it there.
            max_per_address: 1024,
            max_total: 8192,
        }
    }
}

pub fn check_connection_limits(proxy: &Fields, report: &mut Report) -> ConnectionLimits {
    let f = Fields::of(
        proxy.get("connections").map(|(n, _)| n),
        "proxy.connections",
        report,
    );
    let defaults = ConnectionLimits::default();
    ConnectionLimits {
        header_read_timeout: positive(&f, "header-read-timeout", "milliseconds", report)
            .map_or(defaults.header_read_timeout, Duration::from_millis),
        max_per_address: positive(&f, "max-per-address", "a count", report)
            .map_or(defaults.max_per_address, |n| n as usize),
        max_total: positive(&f, "max-total", "a count", report)
            .map_or(defaults.max_total, |n| n as usize),
    }
}

fn positive(f: &Fields, name: &str, what: &str, report: &mut Report) -> Option<u64> {
    let (node, path) = f.get(name)?;
    match convert::int(node, &path, what, report)? {
        n if n > 0 => Some(n.unsigned_abs()),
        _ => {
            report.error(
                &node.at,
                &path,
                format!("must be more than 0, found {}", node.describe()),
            );
            None
        }
    }
}
