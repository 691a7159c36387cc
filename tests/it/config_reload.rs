//! Live config reload: the server reads its file again when it changes (or on SIGHUP) and
//! applies what it can without a restart, as an operator editing a ConfigMap would expect.

use std::time::Duration;

use crate::common::log_capture::capture_logs;
use crate::common::metrics::{management_port, sample, scrape};
use crate::common::replica::{ConfigFile, ReplicaProcess};
use crate::common::{Browser, PASSWORD, TestServer, data, data_list, eventually, repo_path};

/// alice and bob (analysts) and root (admin), two echo apps, and `extra` lines under `proxy:`.
fn yaml(users: &[&str], apps: &[&str], extra: &str) -> String {
    let echo = repo_path("tests/apps/echo/app.py");
    let mut y = format!(
        "proxy:
  authentication: simple
  container-backend: process
  container-wait-time: 15000
  admin-groups: admins
  reload:
    interval: 150
{extra}  users:
"
    );
    for user in users {
        let group = if *user == "root" {
            "admins"
        } else {
            "analysts"
        };
        y += &format!("  - name: {user}\n    password: \"{PASSWORD}\"\n    groups: {group}\n");
    }
    y += "  specs:\n";
    for app in apps {
        y += &format!(
            "  - id: {app}\n    container-cmd: [\"python3\", \"{}\"]\n",
            echo.display()
        );
    }
    y
}

async fn start(file: &ConfigFile) -> TestServer {
    let loaded = vestibule::config::load_file(&file.path, &std::collections::HashMap::new())
        .expect("the first config is valid");
    TestServer::start(loaded.config).await
}

async fn app_ids(who: &Browser) -> Vec<String> {
    data_list(who.get("/api/proxyspec").await)
        .await
        .iter()
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect()
}

/// Rewrites the file and waits until the portal shows `apps`.
async fn rewrite_until(file: &ConfigFile, text: &str, who: &Browser, apps: &[&str]) {
    std::fs::write(&file.path, text).expect("rewrite the config");
    let reloaded = eventually(Duration::from_secs(10), || async {
        app_ids(who).await == apps
    })
    .await;
    assert!(reloaded, "the portal shows {apps:?} after the file changed");
}

#[tokio::test]
async fn an_edited_file_adds_and_removes_apps_and_users_without_a_restart() {
    let logs = capture_logs();
    let port = management_port();
    let management = format!("management:\n  server:\n    port: {port}\n");
    let file = ConfigFile::write(
        "reload-edit",
        &(yaml(&["alice", "bob", "root"], &["keep", "gone"], "") + &management),
    );
    let server = start(&file).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    assert_eq!(app_ids(&alice).await, ["keep", "gone"]);
    let running = alice.launch_id("gone").await;
    assert_eq!(
        alice.get("/admin").await.status(),
        403,
        "alice is no admin yet"
    );

    // bob leaves, carol joins, alice becomes an admin, `gone` goes, `added` comes, and the
    // port changes (which needs a restart).
    let next = yaml(
        &["alice", "carol", "root"],
        &["keep", "added"],
        "  port: 1\n",
    )
    .replace(
        "admin-groups: admins",
        "admin-groups: admins\n  admin-users: alice",
    ) + &management;
    rewrite_until(&file, &next, &alice, &["keep", "added"]).await;

    // The removed app's running instance still serves its user.
    let page = alice.get(&format!("/app_proxy/{running}/")).await;
    assert_eq!(page.status(), 200, "a removed app's instance runs on");
    // The new app starts.
    let added = alice.launch("added").await;
    assert_eq!(added["status"], "Up", "{added}");
    // Users and admins apply at once, to sessions already open too.
    assert_eq!(
        alice.get("/admin").await.status(),
        200,
        "alice is now an admin"
    );
    let bob_now = bob.get("/api/proxy").await;
    assert!(
        bob_now.status() == 401 || bob_now.status() == 403,
        "bob's session ends when he leaves the file: {}",
        bob_now.status()
    );
    let carol = Browser::new(&server);
    assert_eq!(
        carol.try_login("carol", PASSWORD).await.status(),
        303,
        "carol logs in"
    );
    let bob_again = Browser::new(&server);
    assert_ne!(
        bob_again.try_login("bob", PASSWORD).await.status(),
        303,
        "bob no longer logs in"
    );
    // The port is kept, and the log says a restart is needed.
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("proxy.port: changed, needs a restart")),
        "the log names the setting that waits for a restart"
    );
    assert!(
        text.contains("+ app added: added"),
        "the log names the new app"
    );

    // A file with an error is refused: the log points at it, and everything keeps serving.
    let broken = next.replace("interval: 150", "interval: 150\n  heartbeat-rate: soon");
    std::fs::write(&file.path, &broken).expect("write a broken config");
    let line = broken
        .lines()
        .position(|l| l.contains("heartbeat-rate"))
        .map(|i| i + 1)
        .unwrap_or_default();
    let at = format!("{}:{line}:", file.path.display());
    let refused = eventually(Duration::from_secs(10), || async {
        let text = logs.text();
        text.contains(&at) && text.contains("the running config is kept")
    })
    .await;
    assert!(refused, "the log names {at} and keeps the running config");
    assert_eq!(app_ids(&alice).await, ["keep", "added"]);
    assert_eq!(alice.get("/admin").await.status(), 200);

    let metrics = scrape(port).await;
    for outcome in ["applied", "refused"] {
        assert_eq!(
            sample(
                &metrics,
                &format!("vestibule_config_reloads_total{{outcome=\"{outcome}\"}}")
            ),
            Some(1.0),
            "one reload {outcome} is counted"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stop_removed_apps_ends_their_instances_at_once() {
    let with = "  reload:\n    interval: 150\n    stop-removed-apps: true\n";
    let file = ConfigFile::write(
        "reload-stop",
        &yaml(&["alice"], &["keep", "gone"], "").replace("  reload:\n    interval: 150\n", with),
    );
    let server = start(&file).await;
    let alice = Browser::login(&server, "alice").await;
    let kept = alice.launch_id("keep").await;
    let doomed = alice.launch_id("gone").await;
    let next = yaml(&["alice"], &["keep"], "").replace("  reload:\n    interval: 150\n", with);
    rewrite_until(&file, &next, &alice, &["keep"]).await;
    let stopped = eventually(Duration::from_secs(10), || async {
        alice.get(&format!("/app_proxy/{doomed}/")).await.status() != 200
    })
    .await;
    assert!(stopped, "the removed app's instance is stopped");
    assert_eq!(
        alice.get(&format!("/app_proxy/{kept}/")).await.status(),
        200,
        "other instances are untouched"
    );
    let unlisted = eventually(Duration::from_secs(10), || async {
        let listed = data_list(alice.get("/api/proxy").await).await;
        listed.iter().all(|p| p["id"] != doomed.as_str())
    })
    .await;
    assert!(unlisted, "the stopped instance is no longer listed");
    server.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_a_file_that_is_not_watched() {
    let file = ConfigFile::write(
        "reload-hup",
        &yaml(&["alice"], &["one"], "").replace("interval: 150", "interval: 150\n    watch: false"),
    );
    let replica = ReplicaProcess::start(&file.path).await;
    let http = reqwest::Client::new();
    let apps = || async {
        let resp = http
            .get(replica.url("/api/proxyspec"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .expect("proxyspec");
        data(resp)
            .await
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(Vec::<String>::new)
    };
    assert_eq!(apps().await, ["one"]);
    std::fs::write(
        &file.path,
        yaml(&["alice"], &["one", "two"], "")
            .replace("interval: 150", "interval: 150\n    watch: false"),
    )
    .expect("rewrite");
    // Not watched: the change waits for the signal.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(apps().await, ["one"], "an unwatched file waits for SIGHUP");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(replica.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("send SIGHUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        apps().await == ["one", "two"]
    })
    .await;
    assert!(reloaded, "SIGHUP reloads the file");
}
