//! Follows a container's output into a [`LogBuffer`], so the last lines are at hand when a
//! launch fails or the admin asks.

use bollard::Docker;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::watch;

use crate::backend::LogBuffer;

/// Streams the container's stdout and stderr until it ends; the returned receiver turns true
/// once every line is in the buffer.
pub fn follow(docker: Docker, container: String, log: Arc<LogBuffer>) -> watch::Receiver<bool> {
    let (done_tx, done_rx) = watch::channel(false);
    tokio::spawn(async move {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = docker.logs(&container, Some(options));
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
