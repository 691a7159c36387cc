//! The admin console with real processes: the live log of an app (server-sent events) gets a
//! line the app prints after the stream opened, CPU and memory are measured, the config is
//! shown without its secrets, recent events and users online are listed, each instance's
//! output is kept in a file (`container-log-path`) or in S3 (moto's server), and nobody but an
//! administrator gets in.

use crate::common::*;
use futures_util::StreamExt;
use std::time::Duration;

/// An app that keeps one core busy and answers HTTP: its CPU figure cannot be zero.
const BUSY_APP: &str = "import http.server, os, threading\n\
def burn():\n    while True:\n        pass\n\
threading.Thread(target=burn, daemon=True).start()\n\
class H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        \
self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n\
print('busy app up', flush=True)\n\
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";

fn busy_spec(id: &str) -> vestibule::config::AppSpec {
    process_spec(id, &["python3", "-c", BUSY_APP])
}

#[tokio::test]
async fn every_admin_route_refuses_a_user_who_is_not_an_administrator() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("echo").await;
    let bob = Browser::login(&server, "bob").await;
    for path in [
        "/admin".to_string(),
        format!("/admin/instances/{id}"),
        format!("/admin/instances/{id}/logs"),
        format!("/admin/instances/{id}/logs?follow=true"),
        format!("/admin/instances/{id}/resources"),
    ] {
        let resp = bob.get(&path).await;
        assert_eq!(resp.status(), 403, "{path}");
        let body = resp.text().await.unwrap_or_default();
        assert!(!body.contains("echo-app:"), "{path} leaked the log");
    }
    let stop = bob
        .http
        .post(server.url(&format!("/admin/instances/{id}/stop")))
        .form(&[("_csrf", bob.csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(stop.status(), 403);
    // An administrator's stop without the form's token is refused too.
    let root = Browser::login(&server, "root").await;
    let forged = root
        .http
        .post(server.url(&format!("/admin/instances/{id}/stop")))
        .form(&[("_csrf", "not-the-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);
    let view = data(alice.get(&format!("/api/proxy/{id}")).await).await;
    assert_eq!(view["status"], "Up", "alice's app still runs: {view}");
    // Not logged in at all: sent to the login page.
    let anonymous = Browser::new(&server).get("/admin").await;
    assert_eq!(anonymous.status(), 303);
    // A malformed query is the caller's error.
    let bad = root
        .get(&format!("/admin/instances/{id}/logs?lines=many"))
        .await;
    assert_eq!(bad.status(), 400);
    server.shutdown().await;
}

#[tokio::test]
async fn the_live_log_gets_a_line_the_app_prints_after_it_opened() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("echo").await;
    let root = Browser::login(&server, "root").await;
    let resp = root
        .get(&format!("/admin/instances/{id}/logs?follow=true&lines=0"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    // The echo app logs every request it serves: this one is made after the stream opened.
    let marker = format!("marker-{}", std::process::id());
    let hit = alice.get(&format!("/app_proxy/{id}/{marker}")).await;
    assert_eq!(hit.status(), 200);
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&marker) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the stream so far: {seen}");
    assert!(
        seen.lines()
            .any(|l| l.starts_with("data: ") && l.contains(&marker)),
        "{seen}"
    );
    // The tail as text has it too.
    let tail = root
        .get(&format!("/admin/instances/{id}/logs?lines=50"))
        .await
        .text()
        .await
        .expect("tail");
    assert!(tail.contains(&marker), "{tail}");
    // Once the app is stopped, the stream says so and ends.
    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert!(stop.status().is_success());
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: end") {
                return true;
            }
        }
        true
    })
    .await;
    assert_eq!(ended, Ok(true));
    server.shutdown().await;
}

#[tokio::test]
async fn cpu_and_memory_of_a_running_process_are_measured() {
    let server = TestServer::start(config(vec![busy_spec("busy")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("busy").await;
    let root = Browser::login(&server, "root").await;
    let usage: serde_json::Value = root
        .get(&format!("/admin/instances/{id}/resources"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(usage["measured"], true, "{usage}");
    let cpu = usage["cpu_percent"].as_f64().unwrap_or(0.0);
    let memory = usage["memory_bytes"].as_u64().unwrap_or(0);
    assert!(cpu > 10.0, "a busy loop uses CPU: {usage}");
    assert!(memory > 1_000_000, "python holds megabytes: {usage}");
    let unknown = root.get("/admin/instances/nosuch/resources").await;
    assert_eq!(unknown.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn the_console_lists_users_events_and_the_config_without_its_secrets() {
    let dir = std::env::temp_dir().join(format!("vestibule-admin-cfg-{}", std::process::id()));
    let echo = repo_path("tests/apps/echo/app.py");
    let yaml = format!(
        "proxy:\n  authentication: simple\n  container-backend: process\n  admin-groups: admins\n  \
         container-log-path: {logs}\n  container-log-s3-access-key: AKIAEXAMPLEKEY77\n  \
         container-log-s3-access-secret: s3-secret-value-42\n  users:\n  - name: root\n    \
         password: {pw}\n    groups: admins\n  - name: alice\n    password: {pw}\n  specs:\n  \
         - id: echo\n    container-cmd: [\"python3\", \"{echo}\"]\n    container-env:\n      \
         DB_PASSWORD: db-secret-value-17\n      API_SETTING: ${{APP_TOKEN}}\n      MODE: fast\n",
        logs = dir.display(),
        pw = PASSWORD,
        echo = echo.display(),
    );
    let env: std::collections::HashMap<String, String> =
        [("APP_TOKEN".to_string(), "env-token-value-99".to_string())].into();
    let loaded = vestibule::config::load_str(std::path::Path::new("application.yml"), &yaml, &env)
        .expect("config");
    let server = TestServer::start(loaded.config).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("echo").await;
    let root = Browser::login(&server, "root").await;
    let page = root.get("/admin").await.text().await.expect("page");
    for secret in [
        PASSWORD,
        "AKIAEXAMPLEKEY77",
        "s3-secret-value-42",
        "db-secret-value-17",
        "env-token-value-99",
    ] {
        assert!(!page.contains(secret), "the page shows the secret {secret}");
    }
    for shown in [
        "container-log-s3-access-secret:",
        "DB_PASSWORD:",
        "MODE: fast",
    ] {
        assert!(page.contains(shown), "{shown} is missing from the config");
    }
    // Alice is online with her app, and her login and start are recent events.
    let users = section(&page, "id=\"users\"");
    assert!(users.contains("alice"), "{users}");
    let events = section(&page, "id=\"events\"");
    assert!(
        events.contains("Login") && events.contains("ProxyStart"),
        "{events}"
    );
    assert!(page.contains(&format!("/admin/instances/{id}")));

    // container-log-path: the instance's output is in a file of its own.
    let marker = format!("kept-{}", std::process::id());
    alice.get(&format!("/app_proxy/{id}/{marker}")).await;
    let kept = eventually(Duration::from_secs(10), || {
        let (dir, marker, id) = (dir.clone(), marker.clone(), id.clone());
        async move {
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|f| {
                    let name = f.file_name().to_string_lossy().to_string();
                    name.starts_with(&format!("echo_{id}_"))
                        && std::fs::read_to_string(f.path()).is_ok_and(|t| t.contains(&marker))
                })
        }
    })
    .await;
    assert!(kept, "no log file with {marker} in {}", dir.display());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The text of the element whose opening tag holds `marker`, up to its table's end.
fn section<'a>(page: &'a str, marker: &str) -> &'a str {
    let start = page.find(marker).unwrap_or(page.len());
    let end = page[start..]
        .find("</table>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[tokio::test]
async fn container_log_path_in_s3_keeps_each_instance_output_in_an_object() {
    let s3 = crate::common::s3::S3::start();
    s3.create_bucket("app-logs").await;
    let echo = repo_path("tests/apps/echo/app.py");
    let yaml = format!(
        "proxy:\n  authentication: simple\n  container-backend: process\n  \
         container-log-path: s3://app-logs/vestibule/run1\n  container-log-s3-endpoint: {endpoint}\n  \
         container-log-s3-access-key: testing\n  container-log-s3-access-secret: testing-secret\n  \
         container-log-s3-sse: true\n  users:\n  - name: alice\n    password: {pw}\n  specs:\n  \
         - id: echo\n    container-cmd: [\"python3\", \"{echo}\"]\n",
        endpoint = s3.endpoint(),
        pw = PASSWORD,
        echo = echo.display(),
    );
    let loaded = vestibule::config::load_str(
        std::path::Path::new("application.yml"),
        &yaml,
        &std::collections::HashMap::new(),
    )
    .expect("config");
    let server = TestServer::start(loaded.config).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("echo").await;
    let marker = format!("to-s3-{}", std::process::id());
    assert_eq!(
        alice
            .get(&format!("/app_proxy/{id}/{marker}"))
            .await
            .status(),
        200
    );
    // The object is complete once the instance has ended.
    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert!(stop.status().is_success());
    let mut found = None;
    for _ in 0..100 {
        if let Some(key) = s3
            .keys("app-logs", "vestibule/run1/", "testing", "testing-secret")
            .await
            .into_iter()
            .find(|k| k.contains(&id))
        {
            found = Some(key);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let key = found.expect("an object for the instance");
    assert!(
        key.starts_with(&format!("vestibule/run1/echo_{id}_")),
        "{key}"
    );
    let text = s3
        .object("app-logs", &key, "testing", "testing-secret")
        .await;
    assert!(text.contains(&marker), "{text}");
    server.shutdown().await;
}

/// The console in headless Chromium, as an administrator sees it: CPU and memory filled in,
/// and an instance's page whose log shows a line the app printed after the page opened.
/// Screenshots go to target/screenshots (docs/screenshots has the ones the docs show).
#[tokio::test]
async fn the_console_in_chromium_shows_resources_and_follows_a_log() {
    use crate::common::app_browser::{log_in, screenshot, wait_text};
    use crate::common::chrome::Chrome;
    let server = TestServer::start(config(vec![echo_spec("echo"), busy_spec("busy")])).await;
    let alice = Browser::login(&server, "alice").await;
    let echo = alice.launch_id("echo").await;
    let bob = Browser::login(&server, "bob").await;
    bob.launch_id("busy").await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    log_in(c, &server, "root", None).await;
    chrome.wait_for(".tiles", Duration::from_secs(10)).await;
    c.goto(&server.url("/admin")).await.expect("admin");
    wait_text(c, "#instances", |t| t.contains("%") && t.contains("MiB")).await;
    wait_text(c, "#events", |t| t.contains("ProxyStart")).await;
    screenshot(c, "admin-console").await;

    c.goto(&server.url(&format!("/admin/instances/{echo}")))
        .await
        .expect("instance page");
    wait_text(c, "#follow-state", |t| t == "following live").await;
    let marker = format!("after-the-page-opened-{}", std::process::id());
    alice.get(&format!("/app_proxy/{echo}/{marker}")).await;
    let log = wait_text(c, "#log", |t| t.contains(&marker)).await;
    assert!(log.contains("echo-app:"), "{log}");
    wait_text(c, "#mem", |t| t.contains("MiB")).await;
    screenshot(c, "admin-instance").await;
    chrome.stop().await;
    server.shutdown().await;
}
