//! Follows a running pod's app container into the instance's [`LogBuffer`] (the admin console's
//! live log, the log files), as `kubectl logs -f` would, until the instance stops.
//!
//! A follow the API server ends while the pod still runs (its idle timeout, a restart) is
//! opened again from the time of the last line read: lines come with their timestamps, so the
//! ones read before are recognised and skipped rather than shown twice.

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::backend::LogBuffer;

/// The first pause before opening the log again; doubled while it keeps failing.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Which pod and container to follow.
pub struct Followed {
    pub pods: Api<Pod>,
    pub pod: String,
    pub container: Option<String>,
}

/// Follows until `stop` is cancelled (the instance stopped) or the pod has ended. The first
/// read starts at the container's start (at most `backlog` lines), so nothing printed before
/// the follow began is missed.
pub async fn follow(
    target: Followed,
    log: Arc<LogBuffer>,
    backlog: usize,
    stop: CancellationToken,
) {
    let mut seen = Seen::default();
    let mut retry = FIRST_RETRY;
    loop {
        let params = LogParams {
            container: target.container.clone(),
            follow: true,
            timestamps: true,
            tail_lines: seen.last.is_none().then_some(backlog as i64),
            since_time: seen.since(),
            ..LogParams::default()
        };
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = target.pods.log_stream(&target.pod, &params) => opened,
        };
        match opened {
            Ok(stream) => {
                seen.reconnected();
                let mut lines = stream.lines();
                loop {
                    let line = tokio::select! {
                        _ = stop.cancelled() => return,
                        line = lines.next() => line,
                    };
                    match line {
                        Some(Ok(line)) => {
                            retry = FIRST_RETRY;
                            if let Some(text) = seen.admit(&line) {
                                log.push(text);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(pod = %target.pod, error = %e, "the pod's log broke off");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::debug!(pod = %target.pod, error = %e, "cannot follow the pod's log")
            }
        }
        if !still_runs(&target).await {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Whether the pod may print more: it is there, not being deleted, and not finished. A pod
/// that cannot be read now is given the benefit of the doubt.
async fn still_runs(target: &Followed) -> bool {
    match target.pods.get(&target.pod).await {
        Ok(pod) => {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            pod.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Succeeded" | "Failed"))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(_) => true,
    }
}

/// The lines read so far, by time: where to resume, and which resumed lines were read before.
#[derive(Debug, Default)]
struct Seen {
    /// The timestamp of the last line read.
    last: Option<Timestamp>,
    /// How many lines read carry exactly that timestamp.
    at_last: usize,
    /// How many of those the resumed log has yet to repeat.
    to_skip: usize,
}

impl Seen {
    /// Where a resumed follow starts: the whole second of the last line, as the API server
    /// takes `sinceTime` in seconds (rounding up could lose lines; earlier ones are skipped).
    fn since(&self) -> Option<Timestamp> {
        let last = self.last?;
        Timestamp::from_second(last.as_second()).ok()
    }

    fn reconnected(&mut self) {
        self.to_skip = self.at_last;
    }

    /// The text of a line that was not read before, without its timestamp.
    fn admit<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let Some((stamp, text)) = line
            .split_once(' ')
            .and_then(|(s, t)| Some((s.parse::<Timestamp>().ok()?, t)))
        else {
            // Without a timestamp (a line the kubelet split, an API server that sent none):
            // shown as it is.
            return Some(line);
        };
        match self.last {
            Some(last) if stamp < last => return None,
            Some(last) if stamp == last && self.to_skip > 0 => {
                self.to_skip -= 1;
                return None;
            }
            Some(last) if stamp == last => self.at_last += 1,
            _ => {
                self.last = Some(stamp);
                self.at_last = 1;
                self.to_skip = 0;
            }
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_repeats_no_line_and_loses_none() {
        let mut seen = Seen::default();
        let first = [
            "2025-03-01T10:00:00.100000000Z one",
            "2025-03-01T10:00:00.500000000Z two",
            "2025-03-01T10:00:00.500000000Z three",
        ];
        let read: Vec<_> = first.iter().filter_map(|l| seen.admit(l)).collect();
        assert_eq!(read, ["one", "two", "three"]);
        assert_eq!(
            seen.since().map(|t| t.to_string()).as_deref(),
            Some("2025-03-01T10:00:00Z"),
            "resumes from the start of the last line's second"
        );
        seen.reconnected();
        let again = [
            "2025-03-01T10:00:00.100000000Z one",
            "2025-03-01T10:00:00.500000000Z two",
            "2025-03-01T10:00:00.500000000Z three",
            "2025-03-01T10:00:00.500000000Z four",
            "2025-03-01T10:00:01.000000000Z five",
        ];
        let read: Vec<_> = again.iter().filter_map(|l| seen.admit(l)).collect();
        assert_eq!(read, ["four", "five"]);
        assert_eq!(seen.admit("no stamp here"), Some("no stamp here"));
    }
}
