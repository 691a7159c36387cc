//! A real Shiny for Python app in a Docker container, driven in headless Chromium through login,
//! portal and iframe. The container gets its Python from the host: /usr and the test virtualenv
//! are mounted read-only into the scratch test image.

use crate::common::app_browser::*;
use crate::common::chrome::Chrome;
use crate::common::docker::*;
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn shiny_for_python_in_a_container_follows_the_slider() {
    let venv = venv();
    let shiny = venv.join("bin/shiny");
    let mut spec = docker_spec(
        "shiny-py",
        &[
            shiny.to_str().unwrap_or_default(),
            "run",
            "--host",
            "0.0.0.0",
            "--port",
            "3838",
            "/app/app.py",
        ],
    );
    spec.display_name = "Shiny in Docker".into();
    spec.container_volumes = vec![
        "/usr:/usr:ro".into(),
        format!("{0}:{0}:ro", venv.display()),
        format!("{}:/app:ro", repo_path("tests/apps/shiny_py").display()),
    ];
    // The image's loader has no cache of the host's library folders.
    spec.container_env
        .insert("LD_LIBRARY_PATH".into(), "/usr/lib/x86_64-linux-gnu".into());
    spec.container_env.insert("HOME".into(), "/tmp".into());
    let mut cfg = docker_config("shiny", vec![spec]);
    cfg.proxy.container_wait_time = APP_TIMEOUT;
    let server = TestServer::start(cfg.clone()).await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    open_app(c, &server, "alice", "shiny-py", None).await;
    move_shiny_slider_to_42(c, "n*2 = 40", "n*2 = 84").await;
    chrome.stop().await;
    server.shutdown().await;
    remove_realm(&cfg);
}

/// The app page, in Chromium, tells the user what the container is doing while it starts.
#[tokio::test]
async fn the_app_page_shows_the_container_stages() {
    // The app sleeps before it listens, so "waiting for the app to answer" lasts seconds.
    let spec = shell_spec(
        "slow",
        "sleep 2; mkdir -p /www && echo ok > /www/index.html && \
         exec /bin/busybox httpd -f -p 3838 -h /www",
    );
    let cfg = docker_config("page-stages", vec![spec]);
    let _cleanup = RealmGuard(cfg.clone());
    let server = TestServer::start(cfg.clone()).await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    log_in(c, &server, "alice", None).await;
    chrome.wait_for("#tile-slow", Duration::from_secs(10)).await;
    c.goto(&server.url("/app/slow")).await.expect("app page");
    // Everything the page writes into its stage line from now on.
    c.execute(
        "window.__stages = [document.getElementById('stage').textContent];
         new MutationObserver(() => window.__stages.push(document.getElementById('stage').textContent))
           .observe(document.getElementById('stage'), { childList: true, characterData: true, subtree: true });",
        vec![],
    )
    .await
    .expect("observe the stage line");
    let deadline = tokio::time::Instant::now() + APP_TIMEOUT;
    loop {
        let frame = chrome.wait_for("#appframe", Duration::from_secs(5)).await;
        if frame.attr("hidden").await.ok().flatten().is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the app never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stages = c
        .execute("return window.__stages;", vec![])
        .await
        .expect("stages");
    let stages: Vec<String> = serde_json::from_value(stages).expect("a list of texts");
    assert!(
        stages
            .iter()
            .any(|s| s == "Starting: waiting for the app to answer…"),
        "the page never said it was waiting for the app: {stages:?}"
    );
    chrome.stop().await;
    server.shutdown().await;
}
