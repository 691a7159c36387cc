//! A bounded log per instance: the newest lines win, so a chatty app cannot exhaust memory.
//! Followers (the admin console's live log, the per-instance log files) subscribe and get each
//! new line as it is pushed.

use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::broadcast;

const MAX_LINE_BYTES: usize = 4096;
/// Lines a follower may fall behind before it misses some (it is told how many).
const FOLLOW_BACKLOG: usize = 1024;

#[derive(Debug)]
pub struct LogBuffer {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
    /// Dropped with the buffer, which ends every follower's stream: the instance is gone.
    new_lines: broadcast::Sender<String>,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
            new_lines: broadcast::channel(FOLLOW_BACKLOG).0,
        }
    }

    pub fn push(&self, line: &str) {
        let mut line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        let mut lines = self.lines.lock();
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        // Sent under the lock, so a follower's snapshot and its stream neither overlap nor
        // leave a gap. No follower is not an error.
        let _ = self.new_lines.send(line);
    }

    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock();
        let skip = lines.len().saturating_sub(n);
        lines.iter().skip(skip).cloned().collect()
    }

    /// The last `n` lines and every line pushed after them.
    pub fn follow(&self, n: usize) -> (Vec<String>, broadcast::Receiver<String>) {
        let lines = self.lines.lock();
        let skip = lines.len().saturating_sub(n);
        let receiver = self.new_lines.subscribe();
        (lines.iter().skip(skip).cloned().collect(), receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_lines() {
        let log = LogBuffer::new(3);
        for i in 0..5 {
            log.push(&format!("line {i}\n"));
        }
        assert_eq!(log.last(10), vec!["line 2", "line 3", "line 4"]);
        assert_eq!(log.last(1), vec!["line 4"]);
    }

    #[test]
    fn truncates_huge_lines_on_a_char_boundary() {
        let log = LogBuffer::new(2);
        log.push(&"é".repeat(5000));
        let line = &log.last(1)[0];
        assert!(line.len() <= MAX_LINE_BYTES + 4);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn a_follower_gets_the_tail_then_new_lines_and_the_end() {
        let log = LogBuffer::new(10);
        log.push("before 1");
        log.push("before 2");
        let (tail, mut rx) = log.follow(1);
        assert_eq!(tail, vec!["before 2"]);
        log.push("after\n");
        assert_eq!(rx.try_recv().ok().as_deref(), Some("after"));
        drop(log);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }
}
