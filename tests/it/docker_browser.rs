//! A real Shiny for Python app in a Docker container, driven in headless Chromium through login,
//! portal and iframe. The container gets its Python from the host: /usr and the test virtualenv
//! are mounted read-only into the scratch test image.

use crate::common::app_browser::*;
use crate::common::chrome::Chrome;
use crate::common::docker::*;
use crate::common::*;

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
