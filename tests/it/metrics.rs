//! Prometheus metrics on the management port: what an operator's dashboard shows after users
//! log in, launch apps (one of which fails) and stop them.

use crate::common::metrics::{management_port, sample, scrape};
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn launches_stops_instances_and_logins_are_counted() {
    let port = management_port();
    let broken = process_spec(
        "broken",
        &[
            "sh",
            "-c",
            "echo 'Error: package shiny is missing' >&2; exit 3",
        ],
    );
    let mut cfg = config(vec![echo_spec("echo"), broken]);
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;

    let stranger = Browser::new(&server);
    assert_eq!(stranger.try_login("alice", "wrong").await.status(), 401);
    let alice = Browser::login(&server, "alice").await;
    let running = alice.launch("echo").await;
    assert_eq!(running["status"], "Up");
    let broken = alice.launch("broken").await;
    assert!(failed(&broken));

    let text = scrape(port).await;
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    for expected in [
        r#"vestibule_app_launches_total{app="echo",outcome="started"}"#,
        r#"vestibule_app_launches_total{app="broken",outcome="failed"}"#,
        r#"vestibule_app_launch_duration_seconds_count{app="echo"}"#,
        r#"vestibule_instances{app="echo",status="running"}"#,
        r#"vestibule_logins_total{method="form",outcome="success"}"#,
        r#"vestibule_logins_total{method="form",outcome="refused"}"#,
    ] {
        assert_eq!(sample(&text, expected), Some(1.0), "{expected} in\n{text}");
    }

    let id = running["id"].as_str().expect("id");
    let stopped = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert_eq!(stopped.status(), 200);
    let gone = eventually(Duration::from_secs(5), || async {
        let text = scrape(port).await;
        sample(&text, r#"vestibule_instances{app="echo",status="running"}"#).is_none()
            && sample(
                &text,
                r#"vestibule_app_stops_total{app="echo",reason="api"}"#,
            ) == Some(1.0)
    })
    .await;
    assert!(
        gone,
        "the stop is counted and the instance no longer shown: {}",
        scrape(port).await
    );

    // Metrics are for the operator's network, not for users on the main port.
    assert_eq!(alice.get("/actuator/prometheus").await.status(), 404);
    server.shutdown().await;
}
