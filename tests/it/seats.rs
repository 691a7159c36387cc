//! Seats (ShinyProxy's `minimum-seats-available`) with real processes: a launch with a free seat
//! is running at once, users share a container yet cannot reach each other's instance, the
//! floor is refilled, containers are replaced without re-use, a dead container is never handed
//! out, and a Shiny app in a seat works in Chromium.

use crate::common::metrics::{management_port, sample, scrape};
use crate::common::*;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use vestibule::config::{AppSpec, SeatSettings};

fn with_seats(mut spec: AppSpec, min: u32, per_container: u32, reuse: bool) -> AppSpec {
    spec.max_instances = None;
    spec.seats = Some(SeatSettings {
        minimum_available: min,
        per_container,
        allow_reuse: reuse,
        scale_down_delay: Duration::from_secs(120),
    });
    spec
}

/// Waits until the app has `free` free seats (they are started in the background).
async fn free_seats(port: u16, app: &str, free: u32) {
    let key = format!(r#"vestibule_seats{{app="{app}",state="free"}}"#);
    let mut last = None;
    for _ in 0..150 {
        let url = format!("http://127.0.0.1:{port}/actuator/prometheus");
        if reqwest::get(&url).await.is_ok() {
            last = sample(&scrape(port).await, &key);
            if last == Some(f64::from(free)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{app} never had {free} free seats (last {last:?})");
}

/// Launches and returns the view the launch call itself answered with.
async fn launch_now(b: &Browser, app: &str) -> Value {
    let resp = b.api(Method::POST, &format!("/api/proxy/{app}")).await;
    assert_eq!(resp.status(), 201, "launch {app}");
    data(resp).await
}

/// What the echo app saw: the container it runs in, and the user the proxy named.
async fn echo(b: &Browser, id: &str) -> (String, String) {
    let resp = b.get(&format!("/app_proxy/{id}/")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("echo json");
    (
        v["env"]["SHINYPROXY_PROXY_ID"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        v["headers"]["x-sp-userid"][0]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn a_free_seat_is_running_at_once_shared_by_two_users_and_private_to_each() {
    let mut cfg = config(vec![with_seats(echo_spec("shared"), 2, 2, true)]);
    let port = management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    free_seats(port, "shared", 2).await;

    let alice = Browser::login(&server, "alice").await;
    let view = launch_now(&alice, "shared").await;
    assert_eq!(view["status"], "Up", "no start to wait for: {view}");
    let alice_id = view["id"].as_str().expect("id").to_string();
    let (alice_container, seen) = echo(&alice, &alice_id).await;
    assert_eq!(seen, "alice");

    let bob = Browser::login(&server, "bob").await;
    let view = launch_now(&bob, "shared").await;
    assert_eq!(view["status"], "Up");
    let bob_id = view["id"].as_str().expect("id").to_string();
    let (bob_container, seen) = echo(&bob, &bob_id).await;
    assert_eq!(seen, "bob", "the app is told who is asking, per request");
    assert_eq!(bob_container, alice_container, "two seats of one container");
    assert_eq!(
        bob.get(&format!("/app_proxy/{alice_id}/")).await.status(),
        403,
        "sharing a container does not give bob alice's instance"
    );
    // Both seats are taken: the floor of two free seats is restored with a new container.
    free_seats(port, "shared", 2).await;
    let root = Browser::login(&server, "root").await;
    let admin = root.get("/admin").await.text().await.expect("admin page");
    assert!(
        admin.contains(r#"<tr id="seats-shared"><td>shared</td><td>2</td><td>2</td>"#),
        "the admin page shows free and claimed seats: {admin}"
    );

    // ShinyProxy's admin call to replace seat containers (after an image update, say).
    let retire = "/admin/delegate-proxy?specId=shared";
    assert_eq!(alice.api(Method::DELETE, retire).await.status(), 403);
    let both = "/admin/delegate-proxy?specId=shared&id=x";
    assert_eq!(root.api(Method::DELETE, both).await.status(), 400);
    assert_eq!(root.api(Method::DELETE, retire).await.status(), 200);
    let (still, _) = echo(&alice, &alice_id).await;
    assert_eq!(
        still, alice_container,
        "a seated user keeps a retired container"
    );
    free_seats(port, "shared", 2).await;
    server.shutdown().await;
}

#[tokio::test]
async fn without_reuse_a_container_serves_one_user_and_a_dead_one_is_never_handed_out() {
    // Each container writes its pid, so the test can kill one.
    let script = repo_path("tests/apps/echo/app.py");
    let cmd = format!(
        "echo $$ > \"$VESTIBULE_INSTANCE_DIR/app.pid\"; exec python3 {}",
        script.display()
    );
    let spec = with_seats(process_spec("once", &["sh", "-c", &cmd]), 1, 1, false);
    let mut cfg = config(vec![spec]);
    let port = management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    free_seats(port, "once", 1).await;

    let alice = Browser::login(&server, "alice").await;
    let view = launch_now(&alice, "once").await;
    assert_eq!(view["status"], "Up");
    let id = view["id"].as_str().expect("id").to_string();
    let (first, _) = echo(&alice, &id).await;
    assert_eq!(
        alice
            .api(Method::DELETE, &format!("/api/proxy/{id}"))
            .await
            .status(),
        200
    );
    free_seats(port, "once", 1).await;
    let instances = server.work_dir.join("instances");
    assert!(
        !instances.join(&first).exists(),
        "alice's container was removed, not given to the next user"
    );

    // Kill the free container: its seat must not be handed out.
    let spare = std::fs::read_dir(&instances)
        .expect("instances dir")
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("app.pid").exists())
        .expect("the spare container's folder");
    let dead = spare.file_name().to_string_lossy().to_string();
    let pid: i32 = std::fs::read_to_string(spare.path().join("app.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bob = Browser::login(&server, "bob").await;
    let view = bob.launch("once").await;
    assert_eq!(view["status"], "Up", "{view}");
    let (container, _) = echo(&bob, view["id"].as_str().expect("id")).await;
    assert_ne!(container, dead, "bob was not seated in the dead container");
    server.shutdown().await;
}

#[tokio::test]
async fn a_shiny_app_in_a_seat_follows_the_slider_in_chromium() {
    use crate::common::app_browser::{move_shiny_slider_to_42, open_app, venv};
    use crate::common::chrome::Chrome;

    let shiny = venv().join("bin/shiny");
    let mut spec = process_spec(
        "shiny-seat",
        &[
            shiny.to_str().unwrap_or_default(),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "app.py",
        ],
    );
    spec.process_workdir = Some(repo_path("tests/apps/shiny_py"));
    let mut cfg = config(vec![with_seats(spec, 1, 1, true)]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let port = management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    free_seats(port, "shiny-seat", 1).await;
    let chrome = Chrome::start().await;
    open_app(&chrome.client, &server, "alice", "shiny-seat", None).await;
    move_shiny_slider_to_42(&chrome.client, "n*2 = 40", "n*2 = 84").await;
    chrome.stop().await;
    server.shutdown().await;
}
