//! The Docker Swarm backend against the real engine (a one-node swarm, started when needed):
//! each instance is a one-replica service, proxied with its WebSocket, limited, removed on stop,
//! failing in words, and adopted by a restarted server.

mod common;

use common::docker::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn id_of(view: &serde_json::Value) -> String {
    view["id"].as_str().expect("instance id").to_string()
}

fn assert_running(view: &serde_json::Value) {
    assert_eq!(view["status"], "running", "launch failed: {view:#}");
}

fn token_spec(id: &str) -> vestibule::config::AppSpec {
    shell_spec(
        id,
        "mkdir -p /www && echo ok > /www/index.html && echo $RANDOM$RANDOM$RANDOM > /www/token && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    )
}

async fn session_cookie(server: &TestServer, user: &str) -> String {
    let b = Browser::new(server);
    let resp = b.try_login(user, PASSWORD).await;
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vestibule_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string()
}

#[tokio::test]
async fn a_service_is_proxied_with_its_websocket_limited_and_removed_on_stop() {
    let mut spec = demo_spec("demo");
    spec.container.memory_limit = Some(vestibule::config::MemoryQuantity::parse("256m").unwrap());
    spec.container.cpu_limit = Some(vestibule::config::CpuQuantity::parse("0.5").unwrap());
    let cfg = swarm_config("proxy", 22000, vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("demo").await;
    assert_running(&view);
    let id = id_of(&view);
    assert_eq!(alice.get(&format!("/app_proxy/{id}/")).await.status(), 200);

    let mut req = format!("ws://{}/app_proxy/{id}/ws", server.addr)
        .into_client_request()
        .expect("ws request");
    req.headers_mut().insert(
        "cookie",
        session_cookie(&server, "alice")
            .await
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through the proxy");
    ws.send(Message::text("7")).await.expect("send");
    let answer = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no answer over the websocket: {other:?}"),
        }
    };
    assert!(answer.contains("49"), "7 squared, got {answer}");
    drop(ws);

    let services = services_of(&cfg);
    assert_eq!(services.len(), 1, "one service per instance");
    let facts = docker(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} \
         {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}} {{index .Spec.Labels \"vestibule.user\"}}",
        &services[0],
    ]);
    assert_eq!(facts, "1 268435456 500000000 alice");

    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert!(stop.status().is_success());
    assert!(
        services_of(&cfg).is_empty(),
        "the service is removed once stopped"
    );
    server.shutdown().await;
    remove_services(&cfg);
}

#[tokio::test]
async fn swarm_failures_are_told_in_words() {
    let mut missing = token_spec("missing");
    missing.container_image = Some("vestibule-test-missing:nope".into());
    let crash = shell_spec("crash", "echo missing-config-file >&2; exit 3");
    let mut nowhere = token_spec("nowhere");
    nowhere.docker.swarm_constraints = vec!["node.labels.vestibule-no-such-label == yes".into()];
    let cfg = swarm_config("failures", 22100, vec![missing, crash, nowhere]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;

    let view = alice.launch("missing").await;
    assert_eq!(view["status"], "failed");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("'vestibule-test-missing:nope'"), "{reason}");

    let view = alice.launch("crash").await;
    assert_eq!(view["status"], "failed");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exited with code 3"), "{reason}");

    let view = alice.launch("nowhere").await;
    assert_eq!(view["status"], "failed");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no suitable node"), "{reason}");

    let gone = eventually(Duration::from_secs(10), || async {
        services_of(&cfg).is_empty()
    })
    .await;
    assert!(gone, "failed services are removed");
    server.shutdown().await;
    remove_services(&cfg);
}

#[tokio::test]
async fn a_restarted_server_adopts_running_services() {
    let mut cfg = swarm_config("recover", 22200, vec![token_spec("tokens")]);
    cfg.proxy.recover_running_proxies = true;
    cfg.proxy.stop_proxies_on_shutdown = false;
    let first = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&first, "alice").await;
    let view = alice.launch("tokens").await;
    assert_running(&view);
    let id = id_of(&view);
    let token = alice
        .get(&format!("/app_proxy/{id}/token"))
        .await
        .text()
        .await
        .expect("token");
    first.shutdown().await;
    assert_eq!(
        services_of(&cfg).len(),
        1,
        "the service outlives the server"
    );

    let mut second_cfg = cfg.clone();
    second_cfg.proxy.stop_proxies_on_shutdown = true;
    let second = TestServer::start(second_cfg).await;
    let alice = Browser::login(&second, "alice").await;
    let again = alice.get(&format!("/app_proxy/{id}/token")).await;
    assert_eq!(again.status(), 200, "the adopted instance answers");
    assert_eq!(
        again.text().await.expect("token"),
        token,
        "same task, same state"
    );
    second.shutdown().await;
    assert!(
        services_of(&cfg).is_empty(),
        "stop-proxies-on-shutdown removes it"
    );
    remove_services(&cfg);
}
