//! The admin console for a Docker container: the engine's stats give a busy container's CPU
//! and memory, and the container's output reaches the live log.

use crate::common::docker::*;
use crate::common::*;
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test]
async fn a_busy_containers_cpu_and_memory_and_its_log_reach_the_console() {
    // A busy loop beside the file server keeps a core busy; each loop also prints a line.
    let spec = shell_spec(
        "busy",
        "mkdir -p /www && echo ok > /www/index.html && /bin/busybox httpd -p 3838 -h /www && \
         while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo tick-$i; done",
    );
    let cfg = docker_config("admin", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("busy").await;
    assert_running(&view);
    let id = id_of(&view);
    let root = Browser::login(&server, "root").await;

    let usage: serde_json::Value = root
        .get(&format!("/admin/instances/{id}/resources"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(usage["measured"], true, "{usage}");
    assert!(
        usage["cpu_percent"].as_f64().unwrap_or(0.0) > 5.0,
        "{usage}"
    );
    assert!(usage["memory_bytes"].as_u64().unwrap_or(0) > 0, "{usage}");

    let resp = root
        .get(&format!("/admin/instances/{id}/logs?follow=true&lines=0"))
        .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let live = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("data: tick-20000") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(live, Ok(true), "{seen}");
    server.shutdown().await;
    remove_realm(&cfg);
}
