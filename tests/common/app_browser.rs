//! Driving an app page in headless Chromium: log in through the form, open an app from its tile,
//! wait for an element's text. Used by tests that run real apps (e.g. in containers).
#![allow(dead_code)]

use fantoccini::{Client, Locator};
use std::time::Duration;

use super::{PASSWORD, TestServer};

pub const APP_TIMEOUT: Duration = Duration::from_secs(60);

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
