//! The admin console for apps in pods: CPU and memory come from the metrics API
//! (metrics-server), the live log follows the app container's log from the moment the pod
//! runs (surviving a follow the API server ends), and a cluster without metrics-server leaves
//! the figures unknown without breaking the console.

use super::*;
use crate::common::{Browser, TestServer, failed};
use futures_util::StreamExt;

/// Reads the event stream into `seen` until it holds `needle`; whether it did within `secs`.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
    secs: u64,
) -> bool {
    let found = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(needle) {
                return true;
            }
        }
        seen.contains(needle)
    })
    .await;
    found == Ok(true)
}

async fn resources(root: &Browser, id: &str) -> Value {
    let resp = root.get(&format!("/admin/instances/{id}/resources")).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn a_pods_cpu_memory_and_live_log_reach_the_console() {
    let (_client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.new_pods_print("app", "Listening on http://0.0.0.0:3838\n");
    let server = TestServer::start(server_config(&cluster, spec(), serve_app().await)).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("01_hello").await;
    let pod = format!("sp-pod-{id}");
    let root = Browser::login(&server, "root").await;

    // metrics-server's units: nanocores and kibibytes.
    cluster.set_pod_usage(&pod, &[("app", "125000000n", "98304Ki")]);
    let usage = resources(&root, &id).await;
    assert_eq!(usage["measured"], true, "{usage}");
    assert_eq!(usage["cpu_percent"].as_f64(), Some(12.5), "{usage}");
    assert_eq!(usage["memory_bytes"], 96 * 1024 * 1024, "{usage}");
    assert_eq!(
        usage["memory_limit_bytes"],
        2048u64 * 1024 * 1024,
        "the pod's limit (2g): {usage}"
    );

    // What the app printed before anyone followed it is in the log.
    let tail_has = |needle: &'static str| {
        let (root, id) = (&root, &id);
        async move {
            root.get(&format!("/admin/instances/{id}/logs?lines=50"))
                .await
                .text()
                .await
                .unwrap_or_default()
                .contains(needle)
        }
    };
    assert!(
        eventually(Duration::from_secs(5), || tail_has("Listening on")).await,
        "the app's first line is in its log"
    );

    let resp = root
        .get(&format!("/admin/instances/{id}/logs?follow=true&lines=0"))
        .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    cluster.append_log(&pod, "app", "session 1 opened");
    assert!(
        read_until(&mut stream, &mut seen, "data: session 1 opened", 10).await,
        "a line the pod printed after the follow opened: {seen}"
    );

    // The API server ends the pod's log stream (a restart, a proxy's timeout): vestibule
    // follows again from where it was, without showing a line twice.
    cluster.end_log_streams();
    cluster.append_log(&pod, "app", "session 2 opened");
    assert!(
        read_until(&mut stream, &mut seen, "data: session 2 opened", 10).await,
        "a line printed after the stream was cut: {seen}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.matches("session 1 opened").count(),
        1,
        "no line twice: {seen}"
    );
    assert!(!seen.contains("Listening on"), "lines=0: {seen}");

    // Once the app is stopped, the live log says so and ends.
    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert!(stop.status().is_success());
    assert!(
        read_until(&mut stream, &mut seen, "event: end", 15).await,
        "{seen}"
    );
    server.shutdown().await;
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn without_metrics_server_the_figures_are_unknown_and_the_console_works() {
    let (_client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.without_metrics_server();
    let server = TestServer::start(server_config(&cluster, spec(), serve_app().await)).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("01_hello").await;
    let root = Browser::login(&server, "root").await;
    for _ in 0..2 {
        let usage = resources(&root, &id).await;
        assert_eq!(usage["measured"], false, "{usage}");
        assert!(usage["cpu_percent"].is_null(), "{usage}");
        assert!(usage["memory_bytes"].is_null(), "{usage}");
    }
    for page in ["/admin".to_string(), format!("/admin/instances/{id}")] {
        let resp = root.get(&page).await;
        assert_eq!(resp.status(), 200, "{page}");
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains(&id), "{page} lists the instance");
    }
    server.shutdown().await;
    assert_role_covers(&cluster);
}

/// The pod runs but the app never answers: the failure shows what it printed, read from the
/// followed log (no crash to read a last run from).
#[tokio::test]
async fn an_app_that_never_answers_fails_with_its_output() {
    let (_client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.new_pods_print(
        "app",
        "Loading required package: shiny\nError in library(shinyjs): there is no package called 'shinyjs'\n",
    );
    // Nothing listens where the pod is said to be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut cfg = server_config(&cluster, spec(), closed);
    cfg.proxy.container_wait_time = Duration::from_secs(2);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("01_hello").await;
    assert!(failed(&view), "{view:#}");
    assert!(
        view["logLines"]
            .to_string()
            .contains("there is no package called 'shinyjs'"),
        "{view:#}"
    );
    server.shutdown().await;
}
