//! The one clock. Deadlines and durations use tokio's `Instant`, so tests can pause time and
//! advance it; what is stored, labelled or shown uses wall-clock Unix time.

use std::time::{SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// `t` in milliseconds since the Unix epoch (0 for a time before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Now, in seconds since the Unix epoch (what JWT claims use).
pub fn now_unix_secs() -> u64 {
    now_unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn before_the_epoch_is_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
    }
}
