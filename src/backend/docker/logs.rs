//! Follows a container's (or a Swarm service's) output into a [`LogBuffer`], so the last lines
//! are at hand when a launch fails or the admin asks.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use tokio::sync::watch;

use crate::backend::LogBuffer;

fn options() -> bollard::query_parameters::LogsOptions {
    LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build()
}

/// Streams the container's stdout and stderr until it ends; the returned receiver turns true
/// once every line is in the buffer.
pub fn follow(docker: Docker, container: String, log: Arc<LogBuffer>) -> watch::Receiver<bool> {
    pump(async move { docker.logs(&container, Some(options())) }, log)
}

/// As [`follow`], for a Swarm service.
pub fn follow_service(
    docker: Docker,
    service: String,
    log: Arc<LogBuffer>,
) -> watch::Receiver<bool> {
    pump(
        async move { docker.service_logs(&service, Some(options())) },
        log,
    )
}

fn pump<S>(
    stream: impl std::future::Future<Output = S> + Send + 'static,
    log: Arc<LogBuffer>,
) -> watch::Receiver<bool>
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
{
    let (done_tx, done_rx) = watch::channel(false);
    tokio::spawn(async move {
        let stream = stream.await;
        futures_util::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(output) => log.push(&String::from_utf8_lossy(&output.into_bytes())),
                Err(_) => break,
            }
        }
        let _ = done_tx.send(true);
    });
    done_rx
}
