//! Headless Chromium through login → portal → app, for the demo app and for real Shiny for
//! Python, Dash, Streamlit and R Shiny apps run as local processes. In each app the test moves
//! the input and waits for the output to change, which only happens if the proxy carries the
//! app's WebSocket (or, for Dash, its callback POSTs).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vestibule::config::AppSpec;

const APP_TIMEOUT: Duration = Duration::from_secs(60);

struct Chrome {
    client: Client,
    driver: Child,
    _profile: PathBuf,
}

impl Chrome {
    async fn start() -> Self {
        common::chrome::install_tls_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run scripts/install-test-deps.sh");
        let profile =
            std::env::temp_dir().join(format!("vestibule-chrome-{}-{port}", std::process::id()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1366,800", format!("--user-data-dir={}", profile.display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..50 {
            let mut builder = ClientBuilder::rustls().expect("tls");
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Self {
            client: client.expect("could not start a Chromium session through chromedriver"),
            driver,
            _profile: profile,
        }
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits until the element's text satisfies `ok`; returns the text.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + APP_TIMEOUT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if ok(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = c.source().await.unwrap_or_default();
    panic!(
        "{css} never matched; last text {last:?}; page: {}",
        &page[..page.len().min(3000)]
    );
}

async fn screenshot(c: &Client, name: &str) {
    let dir = repo_path("target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

/// Fills in and submits the login form, as a person would.
async fn log_in(c: &Client, server: &TestServer, user: &str, shot: Option<&str>) {
    c.goto(&server.url("/login")).await.expect("login page");
    if let Some(prefix) = shot {
        screenshot(c, &format!("{prefix}-login")).await;
    }
    for (field, text) in [("username", user), ("password", PASSWORD)] {
        c.find(Locator::Id(field))
            .await
            .expect(field)
            .send_keys(text)
            .await
            .expect("type");
    }
    c.find(Locator::Id("login-button"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("click");
}

/// Logs in through the form and opens the app from its portal tile; returns inside the app's
/// iframe.
async fn open_app(c: &Client, server: &TestServer, user: &str, spec: &str, shot: Option<&str>) {
    log_in(c, server, user, shot).await;
    let tile = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(&format!("tile-{spec}")))
        .await
        .expect("the portal shows the app's tile");
    if let Some(prefix) = shot {
        screenshot(c, &format!("{prefix}-portal")).await;
    }
    tile.click().await.expect("open app");
    let deadline = tokio::time::Instant::now() + APP_TIMEOUT;
    loop {
        let frame = c.find(Locator::Id("appframe")).await.expect("iframe");
        if frame.attr("hidden").await.ok().flatten().is_none() {
            break;
        }
        if let Ok(failure) = c.find(Locator::Id("failure")).await
            && failure.attr("hidden").await.ok().flatten().is_none()
        {
            let text = failure.text().await.unwrap_or_default();
            panic!("{spec} failed to start: {text}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{spec} did not start in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.find(Locator::Id("appframe"))
        .await
        .expect("iframe")
        .enter_frame()
        .await
        .expect("enter frame");
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("VESTIBULE_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vestibule/venv"))
        })
        .expect("VESTIBULE_TEST_VENV or HOME");
    assert!(
        venv.join("bin/python").exists(),
        "no Python venv at {}: run scripts/install-test-deps.sh",
        venv.display()
    );
    venv
}

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
        wait_text(c, "#result", |t| t == "n*2 = 40").await;
        c.execute(
            "$('#n').data('ionRangeSlider').update({from: 42}); return true;",
            vec![],
        )
        .await
        .expect("move slider");
        wait_text(c, "#result", |t| t == "n*2 = 84").await;
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
        wait_text(c, "#result", |t| t == "n*3 = 60").await;
        c.execute(
            "$('#n').data('ionRangeSlider').update({from: 42}); return true;",
            vec![],
        )
        .await
        .expect("move slider");
        wait_text(c, "#result", |t| t == "n*3 = 126").await;
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
