//! The last usage events (logins, starts, stops, failures, crashes) kept in memory for the
//! admin console, whatever sinks the usage statistics have: a bounded ring, oldest out first.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;

use super::usage::UsageEvent;

/// Enough for a busy hour on a small server; the usage-stats sinks keep the full history.
const KEPT: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct RecentEvent {
    pub time_ms: u64,
    pub user: String,
    /// ShinyProxy's event name (Login, ProxyStart, AppCrashed, …).
    pub kind: &'static str,
    /// The app, for app events.
    pub app: Option<String>,
}

#[derive(Default)]
pub struct Recent {
    events: Mutex<VecDeque<RecentEvent>>,
}

impl Recent {
    pub fn record(&self, event: &UsageEvent) {
        let mut events = self.events.lock();
        if events.len() == KEPT {
            events.pop_front();
        }
        events.push_back(RecentEvent {
            time_ms: event.time_ms,
            user: event.user.clone(),
            kind: event.kind.name(),
            app: event.data.clone(),
        });
    }

    /// The newest first.
    pub fn newest(&self, n: usize) -> Vec<RecentEvent> {
        self.events.lock().iter().rev().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::usage::EventType;

    #[test]
    fn keeps_the_newest_events_newest_first() {
        let recent = Recent::default();
        for i in 0..(KEPT + 3) {
            recent.record(&UsageEvent::now(EventType::Login, &format!("u{i}"), None));
        }
        let shown = recent.newest(2);
        assert_eq!(shown[0].user, format!("u{}", KEPT + 2));
        assert_eq!(shown[1].user, format!("u{}", KEPT + 1));
        assert_eq!(recent.events.lock().len(), KEPT);
    }
}
