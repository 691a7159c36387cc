//! The task that drains one sink's queue, and the count of events that never reached a sink.

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

use super::UsageEvent;

/// A write that takes longer has failed: the queue behind it must move on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub sink: String,
    /// `queue_full` (the sink is too slow) or `write_failed` (it refused or did not answer).
    pub reason: &'static str,
}

#[async_trait]
pub trait Writer: Send {
    async fn write(&mut self, event: &UsageEvent) -> anyhow::Result<()>;
}

pub async fn run(
    sink: String,
    mut writer: Box<dyn Writer>,
    mut queue: mpsc::Receiver<UsageEvent>,
    dropped_count: Family<DropLabels, Counter>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(event) = queue.recv().await {
        let outcome = tokio::time::timeout(WRITE_TIMEOUT, writer.write(&event)).await;
        pending.fetch_sub(1, Ordering::SeqCst);
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
        };
        dropped(&dropped_count, &sink, "write_failed", &error);
    }
}

/// Counts a lost event, and logs it. The count is what operators alert on; the log says why.
pub fn dropped(count: &Family<DropLabels, Counter>, sink: &str, reason: &'static str, why: &str) {
    let before = count
        .get_or_create(&DropLabels {
            sink: sink.to_string(),
            reason,
        })
        .inc();
    // A sink that is down for long drops every event: the first few say why, then one line
    // in a thousand keeps the log readable (the counter has them all).
    if before < 10 || before % 1000 == 0 {
        tracing::warn!(
            sink,
            reason,
            error = why,
            dropped_so_far = before + 1,
            "a usage statistics event was dropped"
        );
    }
}
