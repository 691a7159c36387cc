//! Instance lifecycle with real processes: launch failures, crashes, idle culling, limits,
//! stopping, logout and shutdown, and that no process outlives its instance.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// An app that records its pid and that of a background child, so tests can check both die.
fn pid_recording_spec(id: &str) -> vestibule::config::AppSpec {
    let script = repo_path("tests/apps/echo/app.py");
    let cmd = format!(
        "sleep 1000 & echo $! > \"$VESTIBULE_INSTANCE_DIR/child.pid\"; echo $$ > \"$VESTIBULE_INSTANCE_DIR/app.pid\"; exec python3 {}",
        script.display()
    );
    process_spec(id, &["sh", "-c", &cmd])
}

async fn app_pids(server: &TestServer, id: &str) -> Vec<i32> {
    let dir = server.work_dir.join("instances").join(id);
    let mut pids = Vec::new();
    for name in ["app.pid", "child.pid"] {
        let text = tokio::fs::read_to_string(dir.join(name))
            .await
            .expect("pid file");
        pids.push(text.trim().parse().expect("pid"));
    }
    pids
}

#[tokio::test]
async fn an_app_that_exits_at_once_gives_a_readable_error_with_its_log() {
    let spec = process_spec(
        "broken",
        &[
            "sh",
            "-c",
            "echo 'Error: package shiny is missing' >&2; exit 3",
        ],
    );
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("broken").await;
    assert!(failed(&view), "{view}");
    let reason = view["reason"].as_str().expect("reason");
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(reason.contains("before it answered"), "{reason}");
    let lines: Vec<String> = serde_json::from_value(view["logLines"].clone()).expect("lines");
    assert!(
        lines.iter().any(|l| l.contains("package shiny is missing")),
        "{lines:?}"
    );

    let missing = process_spec("missing", &["/nonexistent/app-binary"]);
    let server2 = TestServer::start(config(vec![missing])).await;
    let bob = Browser::login(&server2, "bob").await;
    let view = bob.launch("missing").await;
    assert!(failed(&view));
    let lines = view["logLines"].to_string();
    assert!(
        lines.contains("cannot start '/nonexistent/app-binary'"),
        "{lines}"
    );
    server.shutdown().await;
    server2.shutdown().await;
}

#[tokio::test]
async fn an_app_that_never_answers_fails_at_the_wait_time() {
    let mut cfg = config(vec![process_spec("mute", &["sleep", "1000"])]);
    cfg.proxy.container_wait_time = Duration::from_secs(2);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("mute").await;
    assert!(failed(&view));
    assert!(
        view["reason"]
            .as_str()
            .expect("reason")
            .contains("did not answer"),
        "{view}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stopping_kills_the_app_and_its_children() {
    let server = TestServer::start(config(vec![pid_recording_spec("pids")])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("pids").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id");
    let pids = app_pids(&server, id).await;
    assert!(pids.iter().all(|p| pid_alive(*p)));

    let resp = alice.api(Method::DELETE, &format!("/api/proxy/{id}")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            pids.iter().all(|p| !pid_alive(*p))
        })
        .await,
        "left behind: {pids:?}"
    );
    assert_eq!(alice.get(&format!("/app_proxy/{id}/")).await.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_every_instance() {
    let server = TestServer::start(config(vec![pid_recording_spec("pids")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let a = alice.launch("pids").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b = bob.launch("pids").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut pids = app_pids(&server, &a).await;
    pids.extend(app_pids(&server, &b).await);
    server.shutdown().await;
    assert!(
        pids.iter().all(|p| !pid_alive(*p)),
        "left behind after shutdown: {pids:?}"
    );
}

#[tokio::test]
async fn an_idle_instance_is_culled_after_the_heartbeat_timeout() {
    let mut spec = echo_spec("echo");
    spec.heartbeat_timeout = Some(Duration::from_secs(2));
    let mut cfg = config(vec![spec]);
    cfg.proxy.heartbeat_rate = Duration::from_millis(200);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Traffic keeps it alive…
    for _ in 0..6 {
        assert_eq!(alice.get(&format!("/app_proxy/{id}/")).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // …and silence ends it.
    let gone = eventually(Duration::from_secs(6), || async {
        alice.get(&format!("/api/proxy/{id}")).await.status() == 403
    })
    .await;
    assert!(gone, "the idle instance is still there");
    server.shutdown().await;
}

#[tokio::test]
async fn a_crashed_app_is_marked_failed_and_can_be_started_again() {
    // One instance per user: the relaunch below only succeeds if the failed instance does not
    // count against the limit.
    let mut spec = pid_recording_spec("pids");
    spec.max_instances = Some(1);
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("pids").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let app_pid = app_pids(&server, &id).await[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let failed = eventually(Duration::from_secs(5), || async {
        let v: Value = data(alice.get(&format!("/api/proxy/{id}")).await).await;
        failed(&v)
    })
    .await;
    assert!(failed);
    let v: Value = data(alice.get(&format!("/api/proxy/{id}")).await).await;
    assert!(
        v["reason"]
            .as_str()
            .expect("reason")
            .contains("stopped unexpectedly"),
        "{v}"
    );
    let again = alice.launch("pids").await;
    assert_eq!(
        again["status"], "Up",
        "a failed instance does not block a new one"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn limits_per_user_and_in_total_are_enforced() {
    let mut spec = echo_spec("echo");
    spec.max_instances = Some(1);
    let mut cfg = config(vec![spec]);
    cfg.proxy.max_total_instances = Some(2);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let root = Browser::login(&server, "root").await;
    alice.launch("echo").await;
    let second = alice.api(Method::POST, "/api/proxy/echo").await;
    assert_eq!(
        second.status(),
        409,
        "an instance limit is no login throttle"
    );
    let msg: Value = second.json().await.expect("json");
    assert!(
        msg["data"]
            .as_str()
            .expect("message")
            .contains("stop one first"),
        "{msg}"
    );
    bob.launch("echo").await;
    let third = root.api(Method::POST, "/api/proxy/echo").await;
    assert_eq!(third.status(), 409, "global limit");
    server.shutdown().await;
}

#[tokio::test]
async fn logout_stops_the_users_apps() {
    let server = TestServer::start(config(vec![pid_recording_spec("pids")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("pids").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let pids = app_pids(&server, &id).await;
    let resp = alice
        .http
        .post(server.url("/logout"))
        .form(&[("_csrf", alice.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 303);
    assert!(
        pids.iter().all(|p| !pid_alive(*p)),
        "apps survive logout: {pids:?}"
    );
    assert_eq!(alice.get("/").await.status(), 303, "session is gone");
    server.shutdown().await;
}

#[tokio::test]
async fn access_groups_decide_who_may_open_an_app() {
    let mut secret = echo_spec("secret");
    secret.access_groups = vec!["admins".into()];
    let server = TestServer::start(config(vec![echo_spec("open"), secret])).await;
    let alice = Browser::login(&server, "alice").await;
    let specs: Vec<Value> = data_list(alice.get("/api/proxyspec").await).await;
    let ids: Vec<&str> = specs.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["open"]);
    assert_eq!(
        alice.api(Method::POST, "/api/proxy/secret").await.status(),
        403
    );
    let portal = alice.get("/").await.text().await.expect("portal");
    assert!(portal.contains("tile-open") && !portal.contains("tile-secret"));
    let root = Browser::login(&server, "root").await;
    assert_eq!(root.launch("secret").await["status"], "Up");
    server.shutdown().await;
}

#[tokio::test]
async fn an_instance_is_stopped_at_its_max_lifetime_even_while_in_use() {
    let mut spec = echo_spec("echo");
    spec.max_lifetime = Some(Duration::from_secs(2));
    let mut cfg = config(vec![spec]);
    cfg.proxy.heartbeat_rate = Duration::from_millis(200);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    // Timed from before the launch, so the instance is younger than this clock says.
    let launched = tokio::time::Instant::now();
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Used all along, so only the max lifetime can stop it, and not before 2 s.
    let mut stopped_after = None;
    while launched.elapsed() < Duration::from_secs(8) {
        if alice.get(&format!("/app_proxy/{id}/")).await.status() == 404 {
            stopped_after = Some(launched.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped_after = stopped_after.expect("still running past its max lifetime");
    assert!(
        stopped_after >= Duration::from_secs(2),
        "stopped after {stopped_after:?}, well before its max lifetime of 2 s"
    );
    server.shutdown().await;
}

/// An app that dies while a user is on it: the next page says so, with the app's last words,
/// instead of a bare 502.
#[tokio::test]
async fn an_app_that_crashes_after_starting_shows_its_last_output_on_the_next_page() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("echo").await;
    let id = view["id"].as_str().expect("id").to_string();
    let page = |path: String| {
        alice
            .http
            .get(server.url(&path))
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
    };
    let crashed = page(format!("/app_proxy/{id}/crash")).await.expect("crash");
    assert_eq!(crashed.status(), 502);
    let text = crashed.text().await.expect("page");
    assert!(text.contains("The app is not answering"), "{text}");

    let explained = eventually(std::time::Duration::from_secs(5), || async {
        let resp = page(format!("/app_proxy/{id}/")).await.expect("after");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        status.is_server_error()
            && text.contains("<html")
            && text.contains("cannot allocate vector of size 8.0 Gb")
    })
    .await;
    assert!(
        explained,
        "the page after the crash must show the app's last output"
    );
    server.shutdown().await;
}

/// A run killed with SIGKILL leaves its work folder; the next start removes it, and keeps a
/// folder whose process still lives.
#[tokio::test]
async fn the_work_folder_of_a_killed_run_is_removed_at_the_next_start() {
    let mut child = std::process::Command::new("true").spawn().expect("true");
    let dead_pid = child.id();
    child.wait().expect("reaped");
    let dead = std::env::temp_dir().join(format!("vestibule-{dead_pid}"));
    std::fs::create_dir_all(dead.join("instances/left-behind")).expect("dead run's folder");
    // pid 1 always lives.
    let alive = std::env::temp_dir().join("vestibule-1");
    let alive_existed = alive.exists();
    std::fs::create_dir_all(&alive).expect("live run's folder");

    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let removed = eventually(Duration::from_secs(10), || async { !dead.exists() }).await;
    assert!(removed, "{} is still there", dead.display());
    assert!(alive.exists(), "a folder of a live process is kept");
    server.shutdown().await;
    if !alive_existed {
        let _ = std::fs::remove_dir(&alive);
    }
}

/// SIGKILL of an instance's supervisor (the OOM killer, a stray kill -9) used to leave the app
/// and its children running with nobody to serve them, and the instance was said to have been
/// killed itself. Now the app's group goes down with it, and the user is told why.
#[tokio::test]
async fn a_killed_supervisor_takes_its_app_down_and_the_reason_says_so() {
    let server = TestServer::start(config(vec![pid_recording_spec("pids")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch_id("pids").await;
    let pids = app_pids(&server, &id).await;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).expect("app stat");
    let supervisor: i32 = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse().ok())
        .expect("the app's parent");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the supervisor");

    assert!(
        eventually(Duration::from_secs(10), || async {
            pids.iter().all(|p| !pid_alive(*p))
        })
        .await,
        "the app and its child outlived their supervisor: {pids:?}"
    );
    let view = || async {
        alice
            .get(&format!("/api/proxy/{id}"))
            .await
            .json::<Value>()
            .await
            .map(|b| b["data"].clone())
            .unwrap_or_default()
    };
    let told = eventually(Duration::from_secs(10), || async { failed(&view().await) }).await;
    let last = view().await;
    assert!(told, "the instance is not failed: {last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("supervisor was killed by SIGKILL"),
        "{last}"
    );
    server.shutdown().await;
}

/// An app that records its pid, then takes `delay_s` seconds before it listens.
fn slow_starting_spec(id: &str, delay_s: u32) -> vestibule::config::AppSpec {
    let script = repo_path("tests/apps/echo/app.py");
    let cmd = format!(
        "echo $$ > \"$VESTIBULE_INSTANCE_DIR/app.pid\"; sleep {delay_s}; exec python3 {}",
        script.display()
    );
    process_spec(id, &["sh", "-c", &cmd])
}

async fn status_of(b: &Browser, id: &str) -> (u16, Value) {
    let resp = b.get(&format!("/api/proxy/{id}")).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["data"].clone())
}

/// A user who gives up while their app is still starting: the app is killed, never becomes
/// running, and does not count against their limit.
#[tokio::test]
async fn stopping_an_instance_while_it_starts_kills_it() {
    let mut spec = slow_starting_spec("slow", 3);
    spec.max_instances = Some(1);
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    // The app page's start, which answers while the app is still starting.
    let resp = alice.api(Method::POST, "/app_i/slow/_").await;
    assert_eq!(resp.status(), 200);
    let view = data(resp).await;
    assert_eq!(view["status"], "New", "{view}");
    let id = view["id"].as_str().expect("id").to_string();
    let pid_file = server.work_dir.join("instances").join(&id).join("app.pid");
    assert!(
        eventually(Duration::from_secs(5), || async { pid_file.exists() }).await,
        "the app never started"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");

    let stop = alice.api(Method::DELETE, &format!("/api/proxy/{id}")).await;
    assert!(stop.status().is_success(), "stop: {}", stop.status());
    assert!(
        eventually(Duration::from_secs(10), || async {
            !pid_alive(pid) && status_of(&alice, &id).await.0 == 403
        })
        .await,
        "the starting app survived its stop: {:?}",
        status_of(&alice, &id).await
    );
    // Past the moment it would have answered, it has not come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status_of(&alice, &id).await.0, 403);
    let again = alice.launch("slow").await;
    assert_eq!(again["status"], "Up", "{again}");
    server.shutdown().await;
}

/// With `stop-on-logout: false`, logging out leaves the user's apps running.
#[tokio::test]
async fn with_stop_on_logout_false_apps_outlive_the_session() {
    let mut spec = pid_recording_spec("pids");
    spec.stop_on_logout = false;
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("pids").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let pids = app_pids(&server, &id).await;
    let resp = alice
        .http
        .post(server.url("/logout"))
        .form(&[("_csrf", alice.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 303);
    assert_eq!(alice.get("/").await.status(), 303, "the session is gone");
    // Give a stop every chance to happen before checking it did not.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pids.iter().all(|p| pid_alive(*p)), "logout stopped the app");
    let again = Browser::login(&server, "alice").await;
    let mine: Vec<Value> = data_list(again.get("/api/proxy").await).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(
        again.get(&format!("/app_proxy/{id}/")).await.status(),
        200,
        "the app still answers after logging in again"
    );
    server.shutdown().await;
}
