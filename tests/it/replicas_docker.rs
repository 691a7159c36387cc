//! Replicas as real processes sharing Redis, running apps as Docker containers: a replica killed
//! with SIGKILL takes none of its users' apps with it.

use crate::common::docker::*;
use crate::common::redis::RedisServer;
use crate::common::replica::{ConfigFile, ReplicaProcess};
use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Sends `n` over the demo app's WebSocket at `base` and returns the square it answers.
async fn square_through(port: u16, id: &str, cookie: &str, n: i64) -> Result<i64, String> {
    let mut req = format!("ws://127.0.0.1:{port}/app_proxy/{id}/ws")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("cookie", cookie.parse().map_err(|_| "cookie")?);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "handshake timed out")?
    .map_err(|e| e.to_string())?;
    ws.send(Message::text(n.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "no answer")?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            return v["square"]
                .as_i64()
                .ok_or_else(|| format!("no square in {t}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_session_leaves_the_container_and_its_user_goes_on_through_another() {
    let redis = RedisServer::start();
    let realm = docker_config("replica-kill", vec![demo_spec("demo")]);
    let _cleanup = RealmGuard(realm.clone());
    let spec = &realm.proxy.specs[0];
    let cmd: Vec<String> = spec
        .container_cmd
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    let config = ConfigFile::write(
        "replica-kill",
        &format!(
            "proxy:
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: docker
  realm-id: {realm_id}
  store-mode: Redis
  users:
  - name: alice
    password: \"{PASSWORD}\"
  docker:
    port-range-start: {ports}
  specs:
  - id: demo
    container-image: {image}
    container-cmd: [{cmd}]
    port: {port}
spring:
  data:
    redis:
      host: 127.0.0.1
      port: {redis}
",
            realm_id = realm.proxy.docker.realm_id,
            ports = realm.proxy.docker.port_range_start,
            image = spec.container_image.clone().unwrap_or_default(),
            cmd = cmd.join(", "),
            port = spec.port,
            redis = redis.port,
        ),
    );
    let mut a = ReplicaProcess::start(&config.path).await;
    let b = ReplicaProcess::start(&config.path).await;

    // alice logs in and opens the app through A.
    let cookie = session_cookie_at(&a.url(""), "alice").await;
    let id = a.launch("demo").await;
    let running = eventually(Duration::from_secs(30), || async {
        square_through(a.port, &id, &cookie, 7).await == Ok(49)
    })
    .await;
    assert!(running, "the app never answered through A");
    let before = containers_of(&realm);
    assert_eq!(before.len(), 1);

    a.kill();
    // The browser reconnects, and the balancer sends it to B: same session, same container.
    assert_eq!(square_through(b.port, &id, &cookie, 8).await, Ok(64));
    assert_eq!(containers_of(&realm), before, "the container was touched");

    // B takes the instance over (A's lease and sign of life run out), so it can also stop it.
    let adopted = eventually(Duration::from_secs(30), || async {
        let stopped = reqwest::Client::new()
            .delete(b.url(&format!("/api/proxy/{id}")))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        stopped && containers_of(&realm).is_empty()
    })
    .await;
    assert!(adopted, "B could not stop the app A started");
}
