//! Driving an app page in headless Chromium: log in through the form, open an app from its tile,
//! wait for an element's text. Used by tests that run real apps (e.g. in containers).
#![allow(dead_code)]

use fantoccini::{Client, Locator};
use std::path::PathBuf;
use std::time::Duration;

use super::{PASSWORD, TestServer, repo_path};

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

/// Saves what the browser shows to target/screenshots/`name`.png, for a person to look at.
pub async fn screenshot(c: &Client, name: &str) {
    let dir = repo_path("target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

/// Fills in and submits the login form, as a person would; with `shot`, screenshots the login
/// page as `{shot}-login`.
pub async fn log_in(c: &Client, server: &TestServer, user: &str, shot: Option<&str>) {
    log_in_at(c, &server.url("/login"), user, shot).await;
}

/// [`log_in`] through the form at `login_url` (a server under a context path).
pub async fn log_in_at(c: &Client, login_url: &str, user: &str, shot: Option<&str>) {
    c.goto(login_url).await.expect("login page");
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
/// iframe. With `shot`, screenshots the login page and the portal on the way.
pub async fn open_app(c: &Client, server: &TestServer, user: &str, spec: &str, shot: Option<&str>) {
    open_app_at(c, &server.url("/login"), user, spec, shot).await;
}

/// [`open_app`] through the login form at `login_url`.
pub async fn open_app_at(c: &Client, login_url: &str, user: &str, spec: &str, shot: Option<&str>) {
    log_in_at(c, login_url, user, shot).await;
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

/// For the Shiny test apps (tests/apps/shiny_py, tests/apps/rshiny): waits for `#result` to read
/// `before`, moves the slider `#n` to 42 and waits for `after`, which only comes over the app's
/// WebSocket.
pub async fn move_shiny_slider_to_42(c: &Client, before: &str, after: &str) {
    wait_text(c, "#result", |t| t == before).await;
    c.execute(
        "$('#n').data('ionRangeSlider').update({from: 42}); return true;",
        vec![],
    )
    .await
    .expect("move slider");
    wait_text(c, "#result", |t| t == after).await;
}

/// The Python virtualenv that scripts/install-test-deps.sh makes for the real apps, with its
/// symlinks resolved, since containers mount it by this path (tests/docker_browser.rs).
pub fn venv() -> PathBuf {
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
    std::fs::canonicalize(&venv).unwrap_or(venv)
}
