//! Headless Chromium through login → portal → app, for the demo app and for real Shiny for
//! Python, Dash, Streamlit and R Shiny apps run as local processes. In each app the test moves
//! the input and waits for the output to change, which only happens if the proxy carries the
//! app's WebSocket (or, for Dash, its callback POSTs).

use crate::common::app_browser::*;
use crate::common::chrome::Chrome;
use crate::common::*;
use fantoccini::{Client, Locator};
use std::time::Duration;
use vestibule::config::AppSpec;

fn real_app(id: &str, dir: &str, cmd: &[&str]) -> AppSpec {
    let mut spec = process_spec(id, cmd);
    spec.process_workdir = Some(repo_path(&format!("tests/apps/{dir}")));
    spec
}

async fn with_app(spec: AppSpec, drive: impl AsyncFnOnce(&Client)) {
    let id = spec.id.clone();
    let mut cfg = config(vec![spec]);
    cfg.proxy.container_wait_time = APP_TIMEOUT;
    let server = TestServer::start(cfg).await;
    let chrome = Chrome::start().await;
    open_app(&chrome.client, &server, "alice", &id, None).await;
    drive(&chrome.client).await;
    screenshot(&chrome.client, &format!("app-{id}")).await;
    chrome.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn demo_app_through_login_portal_and_iframe_with_screenshots() {
    let demo = vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs[0]
        .clone();
    let server = TestServer::start(config(vec![demo])).await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    open_app(c, &server, "alice", "demo", Some("demo")).await;
    wait_text(c, "#status", |t| t == "connected").await;
    let before = wait_text(c, "#output", |t| t.contains('²')).await;
    let slider = c.find(Locator::Id("input")).await.expect("slider");
    slider.send_keys("\u{E014}").await.expect("arrow right");
    let after = wait_text(c, "#output", |t| t != before).await;
    assert_eq!(after, "13² = 169", "from {before}");
    c.enter_parent_frame().await.expect("leave frame");
    screenshot(c, "demo-app").await;
    c.goto(&server.url("/my-apps")).await.expect("my apps");
    wait_text(c, "#instances", |t| t.contains("running")).await;
    screenshot(c, "demo-my-apps").await;
    chrome.stop().await;

    // An admin sees alice's instance on the admin page.
    let admin = Chrome::start().await;
    let c = &admin.client;
    log_in(c, &server, "root", None).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".tiles"))
        .await
        .expect("portal");
    c.goto(&server.url("/admin")).await.expect("admin");
    let table = wait_text(c, "#instances", |t| t.contains("alice")).await;
    assert!(table.contains("Demo app"), "{table}");
    screenshot(c, "demo-admin").await;
    admin.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_launch_shows_the_reason_the_log_and_a_retry_button() {
    let broken = process_spec(
        "broken",
        &[
            "sh",
            "-c",
            "echo 'Error in library(shiny): there is no package called shiny' >&2; exit 1",
        ],
    );
    let server = TestServer::start(config(vec![broken])).await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    log_in(c, &server, "alice", None).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("tile-broken"))
        .await
        .expect("tile")
        .click()
        .await
        .expect("open");
    let reason = wait_text(c, "#reason", |t| !t.is_empty()).await;
    assert!(reason.contains("exited with code 1"), "{reason}");
    let log = wait_text(c, "#faillog", |t| !t.is_empty()).await;
    assert!(log.contains("there is no package called shiny"), "{log}");
    screenshot(c, "app-failed").await;
    // Retrying starts a new instance, which fails the same way: the page says so again.
    c.find(Locator::Id("retry"))
        .await
        .expect("retry")
        .click()
        .await
        .expect("click");
    wait_text(c, "#faillog", |t| t.contains("no package called shiny")).await;
    chrome.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shiny_for_python_slider_updates_the_output() {
    let shiny = venv().join("bin/shiny");
    let spec = real_app(
        "shiny-py",
        "shiny_py",
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
    with_app(spec, async |c| {
        move_shiny_slider_to_42(c, "n*2 = 40", "n*2 = 84").await;
    })
    .await;
}

#[tokio::test]
async fn r_shiny_slider_updates_the_output() {
    let spec = real_app(
        "r-shiny",
        "rshiny",
        &[
            "R",
            "--no-save",
            "--no-restore",
            "--quiet",
            "-e",
            "shiny::runApp('app.R', port=as.integer(Sys.getenv('PORT')), host='127.0.0.1', launch.browser=FALSE)",
        ],
    );
    with_app(spec, async |c| {
        move_shiny_slider_to_42(c, "n*3 = 60", "n*3 = 126").await;
    })
    .await;
}

#[tokio::test]
async fn dash_input_updates_the_greeting() {
    let python = venv().join("bin/python");
    let spec = real_app(
        "dash",
        "dash",
        &[python.to_str().unwrap_or_default(), "app.py"],
    );
    with_app(spec, async |c| {
        wait_text(c, "#greeting", |t| t == "Hello, world!").await;
        let input = c.find(Locator::Id("name")).await.expect("input");
        // Select all (Ctrl+A), release the modifier (NULL key), then type over the selection.
        input
            .send_keys("\u{E009}a\u{E000}vestibule")
            .await
            .expect("type");
        wait_text(c, "#greeting", |t| t == "Hello, vestibule!").await;
    })
    .await;
}

#[tokio::test]
async fn streamlit_slider_updates_the_result() {
    let streamlit = venv().join("bin/streamlit");
    let spec = real_app(
        "streamlit",
        "streamlit",
        &[
            streamlit.to_str().unwrap_or_default(),
            "run",
            "app.py",
            "--server.port",
            "{port}",
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
    );
    with_app(spec, async |c| {
        wait_text(c, "#result", |t| t.contains("400")).await;
        let slider = c
            .find(Locator::Css(".st-key-n input[type=range]"))
            .await
            .expect("slider");
        c.execute(
            "document.querySelector('.st-key-n input[type=range]').focus(); return true;",
            vec![],
        )
        .await
        .expect("focus");
        slider.send_keys("\u{E014}").await.expect("arrow right");
        wait_text(c, "#result", |t| t.contains("441")).await;
    })
    .await;
}
