//! Cutting over from a running ShinyProxy: containers ShinyProxy 3.2 started, labelled exactly as
//! it labels them, are adopted with their owners by a vestibule started with
//! `recover-running-proxies: true`; those of another realm, and ShinyProxy's seats, are not.

use crate::common::docker::*;
use crate::common::ports::free_port;
use crate::common::shinyproxy::marks;
use crate::common::*;
use std::time::Duration;
use vestibule::config::AppSpec;

/// Removes the hand-started containers even after a failed assertion.
struct Started(Vec<String>);

impl Drop for Started {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = docker_ok(&["rm", "-f", id]);
        }
    }
}

/// Runs `spec`'s container as ShinyProxy's Docker backend does: its name, its runtime values as
/// labels, the app's port published on 127.0.0.1 at `host_port`, and its environment variables.
fn run_as_shinyproxy(spec: &AppSpec, labels: &[(String, String)], host_port: u16) -> String {
    let proxy_id = &labels
        .iter()
        .find(|(k, _)| k == "openanalytics.eu/sp-proxy-id")
        .expect("a proxy id")
        .1;
    let name = format!("sp-container-{proxy_id}-0");
    let publish = format!("127.0.0.1:{host_port}:{APP_PORT}");
    let mut args: Vec<String> = ["run", "-d", "--name", &name, "-p", &publish]
        .map(String::from)
        .to_vec();
    for (k, v) in labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    args.extend(["-e".into(), format!("SHINYPROXY_PROXY_ID={proxy_id}")]);
    args.push(spec.container_image.clone().expect("an image"));
    args.extend(spec.container_cmd.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args)
}

async fn token_at(port: u16) -> Option<String> {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/token"))
        .await
        .ok()?;
    resp.status().is_success().then_some(())?;
    resp.text().await.ok()
}

#[tokio::test]
async fn containers_started_by_shinyproxy_are_adopted_with_their_owners() {
    let mut cfg = docker_config("sp-cutover", vec![token_spec("tokens")]);
    cfg.proxy.recover_running_proxies = true;
    let realm = cfg.proxy.docker.realm_id.clone();
    let spec = cfg.proxy.specs[0].clone();
    let alices = "5c6f8a2e-3b1d-4f7a-9e0c-7d2b4a6c8e10";
    let others = "8e1d3c5b-7a9f-4b2e-8c6d-0f1a3b5c7d92";
    let seat = "a4b6c8d0-e2f4-4a6b-8c0d-2e4f6a8b0c1d";
    let (alice_port, other_port, seat_port) = (free_port(), free_port(), free_port());
    let mut seat_marks = marks(seat, "tokens", "shinyproxy-seat", Some(&realm));
    seat_marks.push(("openanalytics.eu/sp-delegate-proxy".into(), "true".into()));
    let started = Started(vec![
        run_as_shinyproxy(
            &spec,
            &marks(alices, "tokens", "alice", Some(&realm)),
            alice_port,
        ),
        run_as_shinyproxy(
            &spec,
            &marks(others, "tokens", "alice", Some("another-team")),
            other_port,
        ),
        run_as_shinyproxy(&spec, &seat_marks, seat_port),
    ]);
    let answered = eventually(Duration::from_secs(15), || async {
        token_at(alice_port).await.is_some()
    })
    .await;
    assert!(answered, "the app ShinyProxy started answers on its port");
    let token = token_at(alice_port).await;

    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let path = format!("/app_proxy/{alices}/token");
    let adopted = eventually(Duration::from_secs(15), || async {
        alice.get(&path).await.status() == 200
    })
    .await;
    assert!(
        adopted,
        "alice reaches her app at ShinyProxy's /app_proxy/<id>/"
    );
    let again = alice.get(&path).await.text().await.expect("token");
    assert_eq!(Some(again), token, "the same container, with its state");

    let mine = data_list(alice.get("/api/proxy").await).await;
    assert_eq!(
        mine.len(),
        1,
        "only this realm's app, and no seat: {mine:?}"
    );
    assert_eq!(mine[0]["id"], alices);
    assert_eq!(mine[0]["userId"], "alice");
    assert_eq!(mine[0]["specId"], "tokens");
    assert_eq!(mine[0]["status"], "Up");

    let bob = Browser::login(&server, "bob").await;
    assert_eq!(
        bob.get(&path).await.status(),
        403,
        "ownership is ShinyProxy's"
    );
    assert!(data_list(bob.get("/api/proxy").await).await.is_empty());

    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{alices}"))
        .await;
    assert!(stop.status().is_success(), "stop: {}", stop.status());
    let removed = eventually(Duration::from_secs(15), || async {
        docker_ok(&["inspect", &started.0[0]]).is_none()
    })
    .await;
    assert!(
        removed,
        "stopping it through vestibule removes the container"
    );
    assert!(
        token_at(other_port).await.is_some(),
        "another realm's container is left running"
    );
    assert!(
        token_at(seat_port).await.is_some(),
        "a seat is left running"
    );
    server.shutdown().await;
    assert!(
        token_at(other_port).await.is_some() && token_at(seat_port).await.is_some(),
        "vestibule's shutdown leaves what it did not adopt"
    );
}

/// Without `recover-running-proxies`, vestibule starts next to ShinyProxy's containers and never
/// touches them.
#[tokio::test]
async fn without_recovery_shinyproxys_containers_are_left_alone() {
    let cfg = docker_config("sp-no-cutover", vec![token_spec("tokens")]);
    let realm = cfg.proxy.docker.realm_id.clone();
    let spec = cfg.proxy.specs[0].clone();
    let proxy = "c3e5a7b9-1d3f-4a5b-9c7d-e1f3a5b7c9d1";
    let port = free_port();
    let _started = Started(vec![run_as_shinyproxy(
        &spec,
        &marks(proxy, "tokens", "alice", Some(&realm)),
        port,
    )]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    assert!(data_list(alice.get("/api/proxy").await).await.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.shutdown().await;
    let answered = eventually(Duration::from_secs(10), || async {
        token_at(port).await.is_some()
    })
    .await;
    assert!(answered, "ShinyProxy's container still runs");
}
