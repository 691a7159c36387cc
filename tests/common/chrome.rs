//! Headless Chromium for tests that drive real apps (a copy of the helpers in tests/browser.rs,
//! kept apart so that file stays untouched; merge the two when convenient).
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{PASSWORD, TestServer};

pub const APP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: PathBuf,
}

impl Chrome {
    pub async fn start() -> Self {
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

    pub async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits until the element's text satisfies `ok`; returns the text.
pub async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
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

/// Fills in and submits the login form, as a person would.
pub async fn log_in(c: &Client, server: &TestServer, user: &str) {
    c.goto(&server.url("/login")).await.expect("login page");
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
pub async fn open_app(c: &Client, server: &TestServer, user: &str, spec: &str) {
    log_in(c, server, user).await;
    let tile = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(&format!("tile-{spec}")))
        .await
        .expect("the portal shows the app's tile");
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
