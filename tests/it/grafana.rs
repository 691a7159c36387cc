//! The Grafana dashboard (deploy/grafana/vestibule.json) against a real Prometheus: Prometheus
//! scrapes a server while users log in (once wrongly), launch apps (one broken), browse them, talk
//! over a WebSocket, leave one idle until it is culled, and use a pool and a seat; then every
//! panel's query, with Grafana's variables filled in as Grafana would, must return data. A panel
//! naming a metric vestibule does not export shows nothing in Grafana, and fails here.

use crate::common::metrics::management_port;
use crate::common::prometheus::{Prometheus, value};
use crate::common::*;
use serde_json::Value;
use std::time::Duration;
use vestibule::config::{PoolSettings, SeatSettings};

/// Every panel's queries, as (panel title, PromQL with the dashboard's variables).
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut todo: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = todo.pop() {
        // Collapsed rows keep their panels inside.
        todo.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            let expr = target["expr"].as_str().unwrap_or_default().to_string();
            assert!(
                !expr.is_empty(),
                "panel {title:?} has a target without expr"
            );
            found.push((title, expr));
        }
    }
    found
}

/// The query as Grafana sends it with every replica and app selected: the multi-value
/// variables become their `allValue` regex, the interval macros durations that cover the test.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$app", ".*")
        .replace("$instance", ".*")
}

/// `label_values(metric, label)` of a variable → the query that lists those values.
fn variable_query(variable: &Value) -> Option<(String, String)> {
    let q = variable["query"]["query"]
        .as_str()
        .or(variable["query"].as_str())?;
    let inner = q.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (metric, label) = inner.split_once(',')?;
    Some((metric.trim().to_string(), label.trim().to_string()))
}

#[tokio::test]
async fn every_dashboard_panel_shows_data_from_a_real_prometheus() {
    let text = std::fs::read_to_string(repo_path("deploy/grafana/vestibule.json"))
        .expect("deploy/grafana/vestibule.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64() >= Some(36));
    let queries = panel_queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());

    let demo = crate::websocket::demo_spec();
    let broken = process_spec("broken", &["sh", "-c", "echo 'no shiny' >&2; exit 3"]);
    let mut idle = echo_spec("idle");
    idle.heartbeat_timeout = Some(Duration::from_secs(2));
    let mut pooled = echo_spec("pooled");
    pooled.max_instances = None;
    pooled.pool = Some(PoolSettings {
        min_instances: 0,
        max_instances: 1,
        target_concurrency: 10,
        scale_down_delay: Duration::from_secs(120),
        session_affinity: false,
        stable_window: Duration::from_secs(3),
        queue_limit: 100,
        client_rate_limit: None,
    });
    let mut seated = echo_spec("seated");
    seated.max_instances = None;
    seated.seats = Some(SeatSettings {
        minimum_available: 1,
        per_container: 2,
        allow_reuse: true,
        scale_down_delay: Duration::from_secs(120),
    });
    let mut cfg = config(vec![demo, broken, idle, pooled, seated]);
    let port = management_port();
    cfg.server.management_port = Some(port);
    cfg.proxy.heartbeat_rate = Duration::from_millis(200);
    let server = TestServer::start(cfg).await;
    let prometheus =
        Prometheus::start(&[format!("127.0.0.1:{port}")], "/actuator/prometheus").await;
    prometheus.targets_up(Duration::from_secs(20)).await;

    // The first round of traffic.
    let stranger = Browser::new(&server);
    assert_eq!(stranger.try_login("alice", "wrong").await.status(), 401);
    let alice = Browser::login(&server, "alice").await;
    let demo_id = alice.launch_id("demo").await;
    let page = format!("/app_proxy/{demo_id}/");
    assert_eq!(alice.get(&page).await.status(), 200);
    // A request with a body, for the bytes sent to the app.
    let _ = alice
        .http
        .post(server.url(&page))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("post to the app");
    let mut ws =
        crate::websocket::connect(&server, &demo_id, &session_cookie(&server, "alice").await)
            .await
            .expect("a WebSocket to the demo app");
    assert_eq!(crate::websocket::square(&mut ws, 7).await["square"], 49);
    assert!(failed(&alice.launch("broken").await));
    let idle_view = alice.launch("idle").await;
    assert_eq!(idle_view["status"], "Up", "{idle_view}");
    assert_eq!(alice.get("/app_direct/pooled/").await.status(), 200);
    let seat = alice.api(reqwest::Method::POST, "/api/proxy/seated").await;
    assert_eq!(seat.status(), 201, "a seat for alice");

    // Rates need two scrapes of a series: wait until Prometheus has the first round…
    prometheus
        .wait_for(
            r#"vestibule_app_launches_total{app="demo",outcome="started"}"#,
            Duration::from_secs(20),
            |v| v == 1.0,
        )
        .await;

    // …then a second round, so every counter and histogram has grown between scrapes.
    assert_eq!(stranger.try_login("bob", "wrong").await.status(), 401);
    let bob = Browser::login(&server, "bob").await;
    bob.launch_id("demo").await;
    for _ in 0..3 {
        assert_eq!(alice.get(&page).await.status(), 200);
    }
    assert_eq!(crate::websocket::square(&mut ws, 8).await["square"], 64);
    assert_eq!(alice.get("/app_direct/pooled/").await.status(), 200);
    prometheus
        .wait_for(
            r#"vestibule_app_launches_total{app="demo",outcome="started"}"#,
            Duration::from_secs(20),
            |v| v == 2.0,
        )
        .await;
    // The idle app, untouched since its launch, is culled after its heartbeat timeout; the
    // count of its culls needs two scrapes for an `increase`.
    prometheus
        .wait_for(
            r#"count_over_time(vestibule_app_stops_total{app="idle",reason="idle"}[1m])"#,
            Duration::from_secs(20),
            |v| v >= 2.0,
        )
        .await;

    let mut missing = Vec::new();
    for (title, expr) in &queries {
        let promql = as_grafana_sends(expr);
        match prometheus.query(&promql).await {
            Err(e) => missing.push(format!("panel {title:?}: {promql}: error {e}")),
            Ok(series) if series.is_empty() => {
                missing.push(format!("panel {title:?}: {promql}: no data"))
            }
            // NaN: a percentile with nothing observed in the window, which Grafana shows as
            // no value.
            Ok(series) if !series.iter().filter_map(value).any(|v| !v.is_nan()) => {
                missing.push(format!("panel {title:?}: {promql}: only NaN: {series:?}"))
            }
            Ok(_) => {}
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some((metric, label)) = variable_query(variable) else {
            continue;
        };
        let name = &variable["name"];
        match prometheus.query(&metric).await {
            Ok(series) if series.iter().any(|s| s["metric"][&label].is_string()) => {}
            other => missing.push(format!(
                "variable {name}: no {metric} series with label {label}: {other:?}"
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard would show empty panels:\n{}",
        missing.join("\n")
    );

    drop(ws);
    server.shutdown().await;
}
