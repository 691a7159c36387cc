//! vestibule itself in a container (deploy/docker's layout): the Docker socket mounted, internal
//! networking, apps as sibling containers on a shared network. The image is built here from the
//! test binary and its shared libraries, so nothing is pulled.

use crate::common::docker::*;
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn vestibule_in_a_container_launches_apps_beside_it() {
    let pid = std::process::id();
    let network = format!("vestibule-deploy-net-{pid}");
    let name = format!("vestibule-deploy-{pid}");
    let realm = format!("deploy-{pid}");
    let image = test_image();
    let _ = docker_ok(&["network", "create", &network]);

    let dir = std::env::temp_dir().join(format!("vestibule-deploy-{pid}"));
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(
        dir.join("application.yml"),
        format!(
            "proxy:
  port: 8080
  authentication: simple
  container-backend: docker
  realm-id: {realm}
  docker:
    internal-networking: true
    default-container-network: {network}
  users:
  - name: alice
    password: {PASSWORD}
  specs:
  - id: tokens
    container-image: {image}
    port: 3838
    container-cmd:
    - /bin/busybox
    - sh
    - -c
    - mkdir -p /www && echo ok > /www/index.html && echo deployed-$SHINYPROXY_USERNAME > /www/who && exec /bin/busybox httpd -f -p 3838 -h /www
"
        ),
    )
    .expect("write config");
    let config_mount = format!("{}:/etc/vestibule:ro", dir.display());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &network,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &config_mount,
        "-p",
        "127.0.0.1::8080",
        &image,
        "/vestibule",
        "serve",
        "--config",
        "/etc/vestibule/application.yml",
    ]);
    let port = docker(&["port", &name, "8080/tcp"]);
    let base = format!("http://{}", port.lines().next().unwrap_or_default());

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let up = eventually(Duration::from_secs(15), || {
        let http = http.clone();
        let url = format!("{base}/actuator/health");
        async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let logs = || docker_ok(&["logs", &name]).unwrap_or_default();
    assert!(up, "vestibule in its container never answered: {}", logs());

    let mut alice = Browser {
        http,
        base: base.clone(),
        csrf: String::new(),
    };
    assert_eq!(alice.try_login("alice", PASSWORD).await.status(), 303);
    let portal = alice.get("/").await.text().await.expect("portal");
    alice.csrf = hidden_field(&portal, "_csrf").expect("csrf");
    let view = alice.launch("tokens").await;
    assert_eq!(view["status"], "Up", "{view:#}\n{}", logs());
    let id = view["id"].as_str().expect("id");
    let who = alice.get(&format!("/app_proxy/{id}/who")).await;
    assert_eq!(who.status(), 200);
    assert_eq!(who.text().await.expect("body").trim(), "deployed-alice");

    // SIGTERM: vestibule stops its apps (stop-proxies-on-shutdown defaults to true).
    docker(&["stop", "-t", "20", &name]);
    let filter = format!("label=vestibule.realm={realm}");
    let left = docker(&["ps", "-aq", "--filter", &filter]);
    let _ = docker_ok(&["rm", "-f", &name]);
    for c in left.lines() {
        let _ = docker_ok(&["rm", "-f", c]);
    }
    let _ = docker_ok(&["network", "rm", &network]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(left.is_empty(), "apps left after vestibule stopped: {left}");
}
