//! A bounded log per instance: the newest lines win, so a chatty app cannot exhaust memory.

use parking_lot::Mutex;
use std::collections::VecDeque;

const MAX_LINE_BYTES: usize = 4096;

#[derive(Debug)]
pub struct LogBuffer {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
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
        lines.push_back(line);
    }

    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock();
        let skip = lines.len().saturating_sub(n);
        lines.iter().skip(skip).cloned().collect()
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
}
