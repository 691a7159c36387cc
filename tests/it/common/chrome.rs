//! Headless Chromium driven through chromedriver (Debian's packages), for tests that need a
//! real browser.
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Chrome {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Chrome {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Chrome::start`] with more command-line switches (`--host-resolver-rules=…`).
    pub async fn start_with(extra: &[&str]) -> Self {
        install_tls_provider();
        let port = super::ports::free_port();
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
        if let Some(args) = caps
            .get_mut("goog:chromeOptions")
            .and_then(|o| o.get_mut("args"))
            .and_then(|a| a.as_array_mut())
        {
            args.extend(extra.iter().map(|a| serde_json::Value::from(*a)));
        }
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..50 {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let Some(client) = client else {
            let mut driver = driver;
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("could not start a Chromium session through chromedriver");
        };
        Self {
            client,
            driver,
            profile,
        }
    }

    /// Waits up to `within` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                return el;
            }
            if tokio::time::Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!(
                    "no {css} within {within:?} at {url:?}; page: {}",
                    &page[..page.len().min(3000)]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn screenshot(&self, name: &str) {
        super::app_browser::screenshot(&self.client, name).await;
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Chrome {
    // A failed test never reaches stop(); chromedriver must not outlive it.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// fantoccini's TLS set-up needs a process-wide rustls provider when more than one is built in.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
