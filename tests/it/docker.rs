//! The Docker backend against the real engine: apps run as containers built from a local image,
//! are proxied with their WebSockets, keep users' folders apart, get their limits, are removed on
//! stop, report failures readably, and survive a restart of vestibule when asked to.

mod admin;
mod shinyproxy;

use crate::common::docker::*;
use crate::common::*;
use std::time::Duration;
use vestibule::config::PullPolicy;

#[tokio::test]
async fn a_container_app_is_proxied_with_its_websocket_and_stop_removes_it() {
    let cfg = docker_config("proxy", vec![demo_spec("demo")]);
    demo_is_proxied_and_removed_on_stop(&cfg, |id, container| {
        let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", container]);
        let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels");
        assert_eq!(labels["vestibule.instance-id"], id);
        assert_eq!(labels["vestibule.user"], "alice");
        assert_eq!(labels["vestibule.app-id"], "demo");
        assert!(
            labels["vestibule.spec-hash"]
                .as_str()
                .is_some_and(|h| h.len() == 16)
        );
    })
    .await;
}

#[tokio::test]
async fn each_user_sees_only_their_own_folder() {
    let base = std::env::temp_dir().join(format!("vestibule-docker-vol-{}", std::process::id()));
    let mut spec = shell_spec(
        "files",
        "echo ok > /www/index.html && echo $SHINYPROXY_USERNAME > /www/mine-$SHINYPROXY_USERNAME.txt && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    );
    spec.container_volumes = vec![format!("{}/#{{proxy.userId}}:/www", base.display())];
    let cfg = docker_config("volumes", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let a = alice.launch("files").await;
    let b = bob.launch("files").await;
    assert_running(&a);
    assert_running(&b);
    let (a, b) = (id_of(&a), id_of(&b));

    let mine = alice.get(&format!("/app_proxy/{a}/mine-alice.txt")).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.text().await.expect("body").trim(), "alice");
    let theirs = bob.get(&format!("/app_proxy/{b}/mine-alice.txt")).await;
    assert_eq!(theirs.status(), 404, "bob must not see alice's file");
    let his = bob.get(&format!("/app_proxy/{b}/mine-bob.txt")).await;
    assert_eq!(his.status(), 200);
    assert!(base.join("alice/mine-alice.txt").exists());
    assert!(!base.join("bob/mine-alice.txt").exists());

    server.shutdown().await;
    remove_realm(&cfg);
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn memory_and_cpu_limits_reach_the_container() {
    let mut spec = token_spec("limited");
    spec.container.memory_limit = Some(vestibule::config::MemoryQuantity::parse("256m").unwrap());
    spec.container.memory_request =
        Some(vestibule::config::MemoryQuantity::parse("128Mi").unwrap());
    spec.container.cpu_limit = Some(vestibule::config::CpuQuantity::parse("0.5").unwrap());
    spec.container.cpu_request = Some(vestibule::config::CpuQuantity::parse("250m").unwrap());
    spec.container
        .labels
        .insert("team".into(), "analytics".into());
    let cfg = docker_config("limits", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    assert_running(&alice.launch("limited").await);
    let containers = containers_of(&cfg);
    assert_eq!(containers.len(), 1);
    let limits = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} \
         {{.HostConfig.CpuShares}} {{index .Config.Labels \"team\"}}",
        &containers[0],
    ]);
    assert_eq!(limits, "268435456 134217728 500000000 256 analytics");
    server.shutdown().await;
    assert!(
        containers_of(&cfg).is_empty(),
        "shutdown removes the containers"
    );
    remove_realm(&cfg);
}

#[tokio::test]
async fn dns_runtime_ipc_and_groups_reach_the_container() {
    let mut spec = token_spec("tuned");
    spec.docker.dns = vec!["10.0.0.53".into()];
    spec.docker.runtime = Some("runc".into());
    spec.docker.ipc = Some("shareable".into());
    spec.docker.group_add = vec!["4242".into()];
    let cfg = docker_config("hostcfg", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    assert_running(&alice.launch("tuned").await);
    let containers = containers_of(&cfg);
    assert_eq!(containers.len(), 1);
    let seen = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Dns}} {{.HostConfig.Runtime}} {{.HostConfig.IpcMode}} {{.HostConfig.GroupAdd}}",
        &containers[0],
    ]);
    assert_eq!(seen, "[10.0.0.53] runc shareable [4242]");
    server.shutdown().await;
    remove_realm(&cfg);
}

#[tokio::test]
async fn a_missing_image_is_named_in_the_error() {
    let mut never = token_spec("never");
    never.container_image = Some("vestibule-test-missing:nope".into());
    let mut pull = token_spec("pull");
    pull.container_image = Some("vestibule-test-missing-too:nope".into());
    let mut cfg = docker_config("missing", vec![never]);
    cfg.proxy.docker.image_pull_policy = PullPolicy::Never;
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    assert_launch_fails(&alice, "never", &["'vestibule-test-missing:nope'"]).await;
    server.shutdown().await;

    // IfNotPresent tries a pull, which cannot succeed here, and says so.
    let cfg = docker_config("pull", vec![pull]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    assert_launch_fails(
        &alice,
        "pull",
        &["'vestibule-test-missing-too:nope'", "pulled"],
    )
    .await;
    assert!(containers_of(&cfg).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_container_that_exits_at_once_shows_why_with_its_last_lines() {
    let spec = shell_spec("crash", "echo missing-config-file >&2; exit 3");
    let cfg = docker_config("crash", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = assert_launch_fails(&alice, "crash", &["exited with code 3"]).await;
    let lines = view["logLines"].to_string();
    assert!(lines.contains("missing-config-file"), "{view:#}");
    let filter = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    let removed = eventually(Duration::from_secs(10), || async {
        docker(&["ps", "-aq", "--filter", &filter]).is_empty()
    })
    .await;
    assert!(removed, "the failed container is removed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_restarted_server_adopts_running_containers_and_the_app_keeps_its_state() {
    let cfg = docker_config("recover", vec![token_spec("tokens")]);
    a_restarted_server_adopts_the_instance(cfg, async |server, alice, id| {
        let mine: serde_json::Value = data(alice.get("/api/proxy").await).await;
        assert!(mine.to_string().contains(id), "listed as alice's: {mine}");
        let bob = Browser::login(server, "bob").await;
        assert_eq!(
            bob.get(&format!("/app_proxy/{id}/token")).await.status(),
            403,
            "ownership survives the restart"
        );
    })
    .await;
}

#[tokio::test]
async fn without_recovery_a_new_start_removes_leftovers() {
    let mut cfg = docker_config("leftovers", vec![token_spec("tokens")]);
    // As after a SIGKILL: the first server never removes its container.
    cfg.proxy.stop_proxies_on_shutdown = false;
    let first = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&first, "alice").await;
    assert_running(&alice.launch("tokens").await);
    first.shutdown().await;
    assert_eq!(containers_of(&cfg).len(), 1);

    let second = TestServer::start(cfg.clone()).await;
    let cleaned = eventually(Duration::from_secs(15), || async {
        containers_of(&cfg).is_empty()
    })
    .await;
    assert!(cleaned, "the leftover container is removed at start");
    second.shutdown().await;
    remove_realm(&cfg);
}

#[tokio::test]
async fn internal_networking_reaches_the_container_on_its_network() {
    let network = format!("vestibule-test-net-{}", std::process::id());
    let _ = docker_ok(&["network", "create", &network]);
    let mut spec = token_spec("internal");
    spec.docker.network = Some(network.clone());
    let mut cfg = docker_config("internal", vec![spec]);
    cfg.proxy.docker.internal_networking = true;
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("internal").await;
    assert_running(&view);
    let id = id_of(&view);
    let token = alice.get(&format!("/app_proxy/{id}/token")).await;
    assert_eq!(token.status(), 200);
    let containers = containers_of(&cfg);
    let published = docker(&["port", &containers[0]]);
    assert!(
        published.is_empty(),
        "nothing published on the host: {published}"
    );
    let networks = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        &containers[0],
    ]);
    assert_eq!(networks, network);
    server.shutdown().await;
    remove_realm(&cfg);
    let _ = docker_ok(&["network", "rm", &network]);
}

/// The status feed the app page follows (docker_browser.rs reads the page itself).
#[tokio::test]
async fn the_status_feed_reports_the_container_stages() {
    let spec = shell_spec(
        "slow",
        "sleep 1; mkdir -p /www && echo ok > /www/index.html && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    );
    let cfg = docker_config("stages", vec![spec]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    // The app page's start answers at once, so the stages can be followed.
    let resp = alice.api(reqwest::Method::POST, "/app_i/slow/_").await;
    let mut view = data(resp).await;
    let id = id_of(&view);
    let mut stages = Vec::new();
    for _ in 0..50 {
        if view["status"] != "New" {
            break;
        }
        stages.push(view["stage"].as_str().unwrap_or_default().to_string());
        view = data(
            alice
                .get(&format!("/api/proxy/{id}/status?watch=true&timeout=5"))
                .await,
        )
        .await;
    }
    assert_running(&view);
    assert!(
        stages
            .iter()
            .any(|s| s == "creating the container" || s == "starting the container"),
        "no container stage among {stages:?}"
    );
    assert!(
        stages.iter().any(|s| s == "waiting for the app to answer"),
        "{stages:?}"
    );
    server.shutdown().await;
    remove_realm(&cfg);
}

#[tokio::test]
async fn a_container_killed_from_outside_shows_as_failed_with_its_last_lines() {
    let cfg = docker_config("killed", vec![last_words_spec("doomed")]);
    a_killed_container_shows_as_failed_with_its_last_lines(cfg).await;
}

/// A container left running by a server whose next config no longer has its app: the new
/// server does not adopt it (no route, nothing listed) and removes it.
#[tokio::test]
async fn a_recovered_container_of_an_app_no_longer_configured_is_removed() {
    let mut cfg = docker_config("dropped-app", vec![token_spec("old"), token_spec("kept")]);
    cfg.proxy.recover_running_proxies = true;
    cfg.proxy.stop_proxies_on_shutdown = false;
    let _cleanup = RealmGuard(cfg.clone());
    let first = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&first, "alice").await;
    let view = alice.launch("old").await;
    assert_running(&view);
    let id = id_of(&view);
    first.shutdown().await;
    assert_eq!(
        containers_of(&cfg).len(),
        1,
        "the container outlives the server"
    );

    let mut second_cfg = cfg.clone();
    second_cfg.proxy.specs.retain(|s| s.id != "old");
    let second = TestServer::start(second_cfg).await;
    let alice = Browser::login(&second, "alice").await;
    let removed = eventually(Duration::from_secs(20), || async {
        containers_of(&cfg).is_empty()
    })
    .await;
    assert!(removed, "the container of a removed app is still running");
    assert_eq!(
        alice.get(&format!("/app_proxy/{id}/token")).await.status(),
        404
    );
    let mine: Vec<serde_json::Value> = data_list(alice.get("/api/proxy").await).await;
    assert!(mine.is_empty(), "{mine:?}");
    second.shutdown().await;
}
