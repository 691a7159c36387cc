//! Support for tests against the real Docker engine: a locally built test image (nothing can be
//! pulled here) and Docker-backed app specs.
#![allow(dead_code)]

use crate::common::failed;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vestibule::config::{AppSpec, BackendKind, Config};

use super::{Browser, TestServer, config, eventually, session_cookie, vestibule_exe};
use std::time::Duration;

/// The port every test app listens on inside its container.
pub const APP_PORT: u16 = 3838;

/// Runs `docker` and returns its stdout; panics with its stderr, so a missing engine fails
/// the test clearly instead of skipping it.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker` (is Docker installed?): {e}"));
    assert!(
        out.status.success(),
        "`docker {}` failed (is the Docker engine running?): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker` that may fail (e.g. inspecting a container that should be gone).
pub fn docker_ok(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An image holding the vestibule binary (its demo app) with the shared libraries it links, and
/// a static busybox for small shell apps. Built once per binary and reused while it exists.
pub fn test_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(build_test_image).clone()
}

fn build_test_image() -> String {
    let exe = vestibule_exe();
    let busybox = PathBuf::from("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: run scripts/install-test-deps.sh (busybox-static)"
    );
    let fingerprint = |p: &Path| {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}-{mtime}", m.len())
    };
    let tag = format!(
        "vestibule-test-app:{:016x}",
        fnv(&format!("{}{}", fingerprint(&exe), fingerprint(&busybox)))
    );
    if docker_ok(&["image", "inspect", &tag]).is_some() {
        return tag;
    }
    let ctx = std::env::temp_dir().join(format!("vestibule-image-{}", std::process::id()));
    let root = ctx.join("root");
    let _ = std::fs::remove_dir_all(&ctx);
    let mut files = vec![
        (exe.clone(), PathBuf::from("/vestibule")),
        (busybox.clone(), busybox),
    ];
    for lib in shared_libs(&exe) {
        files.push((lib.clone(), lib));
    }
    for (from, to) in files {
        let dest = root.join(to.strip_prefix("/").unwrap_or(&to));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        // Hard links keep a large debug binary from being copied; fall back to a copy across
        // file systems.
        // Loaders and libraries are often symlinks: link the file they name.
        let from = std::fs::canonicalize(&from).unwrap_or(from);
        if std::fs::hard_link(&from, &dest).is_err() {
            std::fs::copy(&from, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
    std::fs::create_dir_all(root.join("tmp")).expect("tmp");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY root/ /\n").expect("Dockerfile");
    docker(&["build", "-q", "-t", &tag, ctx.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_dir_all(&ctx);
    // Each build of vestibule makes a new ~200 MB image; the older ones are of no further use.
    let older = docker_ok(&[
        "images",
        "vestibule-test-app",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    for old in older.unwrap_or_default().lines().filter(|t| *t != tag) {
        let _ = docker_ok(&["rmi", old]);
    }
    tag
}

/// The libraries `ldd` lists for `exe`, with the dynamic loader, resolved to real files.
fn shared_libs(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).output().expect("run ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A spec whose container runs `cmd` from the test image.
pub fn docker_spec(id: &str, cmd: &[&str]) -> AppSpec {
    let mut spec = super::process_spec(id, cmd);
    spec.container_image = Some(test_image());
    spec.port = APP_PORT;
    spec.container_env = BTreeMap::new();
    spec
}

/// vestibule's demo app (a page and a WebSocket) in a container.
pub fn demo_spec(id: &str) -> AppSpec {
    docker_spec(
        id,
        &[
            "/vestibule",
            "demo-app",
            "--port",
            "3838",
            "--bind",
            "0.0.0.0",
        ],
    )
}

/// A busybox shell script in a container; `/bin/busybox httpd` serves files.
pub fn shell_spec(id: &str, script: &str) -> AppSpec {
    docker_spec(id, &["/bin/busybox", "sh", "-c", script])
}

/// A tiny file server: `/token` holds a value drawn when the container started, so a test can
/// tell the same container from a new one.
pub fn token_spec(id: &str) -> AppSpec {
    shell_spec(
        id,
        "mkdir -p /www && echo ok > /www/index.html && echo $RANDOM$RANDOM$RANDOM > /www/token && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    )
}

/// A Docker-backed config with its own realm and port range, so tests running side by side
/// never adopt, remove or collide with each other's containers.
pub fn docker_config(realm: &str, specs: Vec<AppSpec>) -> Config {
    let mut cfg = config(specs);
    cfg.proxy.container_backend = BackendKind::Docker;
    cfg.proxy.docker.realm_id = format!("test-{realm}-{}", std::process::id());
    cfg.proxy.docker.port_range_start = super::ports::block();
    cfg
}

/// Ids of the running containers of a realm.
pub fn containers_of(cfg: &Config) -> Vec<String> {
    let filter = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    docker(&["ps", "-q", "--filter", &filter])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Removes whatever a test left in its realm, even after a failed assertion.
pub fn remove_realm(cfg: &Config) {
    let filter = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    for id in docker(&["ps", "-aq", "--filter", &filter]).lines() {
        let _ = docker_ok(&["rm", "-f", id]);
    }
}

/// Removes a test's containers or services when dropped, so a failed assertion leaves none
/// behind.
pub struct RealmGuard(pub Config);

impl Drop for RealmGuard {
    fn drop(&mut self) {
        remove_instances(&self.0);
    }
}

/// Joins this engine to a swarm when it is not in one yet (and leaves it active). Tests call it
/// side by side, so it runs once per binary, and a swarm that appeared meanwhile (another test
/// binary, or an earlier run) counts as success.
pub fn ensure_swarm() {
    static JOINED: std::sync::Once = std::sync::Once::new();
    JOINED.call_once(|| {
        let state = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
        if state == "active" {
            return;
        }
        // With several interfaces Docker asks which address to advertise; one node needs none
        // in particular.
        for args in [
            &["swarm", "init"][..],
            &["swarm", "init", "--advertise-addr", "127.0.0.1"],
        ] {
            let out = Command::new("docker").args(args).output().expect("docker");
            let said = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || said.contains("already part of a swarm") {
                return;
            }
        }
        panic!("docker swarm init failed: this engine cannot become a swarm manager");
    });
}

/// A Swarm-backed config, as [`docker_config`].
pub fn swarm_config(realm: &str, specs: Vec<AppSpec>) -> Config {
    ensure_swarm();
    let mut cfg = docker_config(realm, specs);
    cfg.proxy.container_backend = BackendKind::DockerSwarm;
    cfg.proxy.docker.service_wait_time = std::time::Duration::from_secs(30);
    cfg
}

/// Ids of the services of a realm.
pub fn services_of(cfg: &Config) -> Vec<String> {
    let filter = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    docker(&["service", "ls", "-q", "--filter", &filter])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Removes whatever services a test left in its realm.
pub fn remove_services(cfg: &Config) {
    for id in services_of(cfg) {
        let _ = docker_ok(&["service", "rm", &id]);
    }
}

fn is_swarm(cfg: &Config) -> bool {
    cfg.proxy.container_backend == BackendKind::DockerSwarm
}

/// What one instance runs in, for assertion messages.
fn instance_noun(cfg: &Config) -> &'static str {
    if is_swarm(cfg) {
        "service"
    } else {
        "container"
    }
}

/// Ids of the running containers or services of a realm, whichever `cfg`'s backend makes.
pub fn instances_of(cfg: &Config) -> Vec<String> {
    if is_swarm(cfg) {
        services_of(cfg)
    } else {
        containers_of(cfg)
    }
}

/// Removes whatever containers or services a test left in its realm.
pub fn remove_instances(cfg: &Config) {
    if is_swarm(cfg) {
        remove_services(cfg);
    } else {
        remove_realm(cfg);
    }
}

pub fn id_of(view: &serde_json::Value) -> String {
    view["id"].as_str().expect("instance id").to_string()
}

pub fn assert_running(view: &serde_json::Value) {
    assert_eq!(view["status"], "Up", "launch failed: {view:#}");
}

/// Launches `spec` as `user`, checks that it fails with a reason naming each of `words`, and
/// returns the final view.
pub async fn assert_launch_fails(user: &Browser, spec: &str, words: &[&str]) -> serde_json::Value {
    let view = user.launch(spec).await;
    assert!(failed(&view), "{view:#}");
    let reason = view["reason"].as_str().unwrap_or_default();
    for word in words {
        assert!(reason.contains(word), "{reason}");
    }
    view
}

/// Sends 7 over the demo app's WebSocket through the proxy, as alice, and expects its square.
async fn assert_demo_websocket_squares(server: &TestServer, id: &str) {
    let mut req = format!("ws://{}/app_proxy/{id}/ws", server.addr)
        .into_client_request()
        .expect("ws request");
    req.headers_mut().insert(
        "cookie",
        session_cookie(server, "alice")
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
}

/// Alice launches `cfg`'s "demo" app ([`demo_spec`]), whose page and WebSocket must answer
/// through the proxy; `inspect` looks at the one container or service it runs in, given the
/// instance id and the container's or service's id. Stopping the instance must remove it.
pub async fn demo_is_proxied_and_removed_on_stop(cfg: &Config, inspect: impl FnOnce(&str, &str)) {
    let noun = instance_noun(cfg);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("demo").await;
    assert_running(&view);
    let id = id_of(&view);

    let page = alice.get(&format!("/app_proxy/{id}/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("<html"));
    assert_demo_websocket_squares(&server, &id).await;

    let instances = instances_of(cfg);
    assert_eq!(instances.len(), 1, "one {noun} per instance");
    inspect(&id, &instances[0]);

    let stop = alice
        .api(reqwest::Method::DELETE, &format!("/api/proxy/{id}"))
        .await;
    assert!(stop.status().is_success(), "stop: {}", stop.status());
    let removed = if is_swarm(cfg) {
        services_of(cfg).is_empty()
    } else {
        // `containers_of` lists running containers only: a stopped one left behind would pass.
        docker_ok(&["inspect", &instances[0]]).is_none()
    };
    assert!(removed, "the {noun} is removed once stopped");
    server.shutdown().await;
    remove_instances(cfg);
}

/// Alice launches `cfg`'s first app (a [`token_spec`]) and vestibule restarts with recovery on:
/// the second server must adopt the running container or service, which proves itself the same
/// by its token. `more` checks further, as alice on the second server, given the instance id,
/// before that server's shutdown removes the instance.
pub async fn a_restarted_server_adopts_the_instance(
    mut cfg: Config,
    more: impl AsyncFnOnce(&TestServer, &Browser, &str),
) {
    let noun = instance_noun(&cfg);
    let app = cfg.proxy.specs[0].id.clone();
    cfg.proxy.recover_running_proxies = true;
    cfg.proxy.stop_proxies_on_shutdown = false;
    let first = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&first, "alice").await;
    let view = alice.launch(&app).await;
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
        instances_of(&cfg).len(),
        1,
        "the {noun} outlives the server"
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
        "same {noun}, same state"
    );
    more(&second, &alice, &id).await;
    second.shutdown().await;
    assert!(
        instances_of(&cfg).is_empty(),
        "stop-proxies-on-shutdown removes it"
    );
    remove_instances(&cfg);
}

/// A file server that first writes a line a user would recognise in its log.
pub fn last_words_spec(id: &str) -> AppSpec {
    shell_spec(
        id,
        "echo 'loaded 3 models from /data'; mkdir -p /www && echo ok > /www/index.html && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    )
}

/// The containers of a realm, Swarm tasks included (their labels are the service's, under the
/// task's own names; the realm label is on both).
fn realm_containers(cfg: &Config) -> Vec<String> {
    let realm = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    let mut ids: Vec<String> = docker(&["ps", "-q", "--filter", &realm])
        .lines()
        .map(str::to_string)
        .collect();
    if is_swarm(cfg) {
        for service in services_of(cfg) {
            let task = format!("label=com.docker.swarm.service.id={service}");
            ids.extend(
                docker(&["ps", "-q", "--filter", &task])
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// An app whose container is killed from outside (the OOM killer, an operator) shows as failed,
/// with its last lines, and the user can start it again.
pub async fn a_killed_container_shows_as_failed_with_its_last_lines(cfg: Config) {
    let _cleanup = RealmGuard(cfg.clone());
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("doomed").await;
    assert_running(&view);
    let id = id_of(&view);
    let containers = realm_containers(&cfg);
    assert_eq!(containers.len(), 1, "{containers:?}");
    docker(&["kill", &containers[0]]);

    let view_of = || async {
        let resp = alice.get(&format!("/api/proxy/{id}")).await;
        resp.json::<serde_json::Value>()
            .await
            .map(|b| b["data"].clone())
            .unwrap_or_default()
    };
    let failed = eventually(Duration::from_secs(30), || async {
        failed(&view_of().await)
    })
    .await;
    let last = view_of().await;
    assert!(
        failed,
        "the killed {} is not shown as failed: {last:#}",
        instance_noun(&cfg)
    );
    let lines = last["logLines"].to_string();
    assert!(lines.contains("loaded 3 models from /data"), "{last:#}");
    let again = alice.launch("doomed").await;
    assert_running(&again);
    server.shutdown().await;
}
