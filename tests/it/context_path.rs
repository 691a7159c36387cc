//! `server.servlet.context-path`: vestibule behind an ingress at `/sp/`. Logging in, the
//! portal's links, launching, the app and its WebSocket all work under the prefix, and
//! nothing answers outside it.

use crate::common::*;
use crate::websocket::{demo_spec, square};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn under_sp() -> vestibule::config::Config {
    let mut cfg = config(vec![demo_spec()]);
    cfg.server.context_path = "/sp".into();
    cfg
}

#[tokio::test]
async fn login_app_and_websocket_work_under_the_prefix() {
    let server = TestServer::start(under_sp()).await;
    let base = server.url("/sp");

    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = bare.get(server.url("/")).send().await.expect("root");
    assert_eq!(root.status(), 404, "nothing outside the prefix");
    let no_slash = bare.get(server.url("/sp")).send().await.expect("sp");
    assert_eq!(no_slash.headers()["location"], "/sp/");
    let home = bare.get(server.url("/sp/")).send().await.expect("home");
    assert_eq!(
        home.headers()["location"],
        "/sp/login?next=%2F",
        "a redirect keeps the prefix"
    );

    let b = Browser::at(&base);
    let login = b.try_login("alice", PASSWORD).await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/sp/");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("vestibule_session="))
        .expect("session cookie")
        .to_string();
    assert!(
        cookie.contains("Path=/sp;") || cookie.ends_with("Path=/sp"),
        "{cookie}"
    );

    let portal = b.get("/").await.text().await.expect("portal");
    assert!(
        portal.contains("href=\"&#x2f;sp/app/demo\""),
        "links carry the prefix: {portal}"
    );
    assert!(portal.contains("href=\"&#x2f;sp/static/style.css\""));
    let page = b.get("/my-apps").await.text().await.expect("my apps");
    let b = Browser {
        csrf: meta_csrf(&page).expect("csrf"),
        ..b
    };
    let view = b.launch("demo").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id");
    let public = format!("/sp/app_proxy/{id}/");
    assert_eq!(view["publicPath"], public.as_str());
    assert_eq!(
        view["runtimeValues"]["SHINYPROXY_PUBLIC_PATH"],
        public.as_str()
    );
    let app = b.get(&format!("/app_proxy/{id}/")).await;
    assert_eq!(app.status(), 200);
    assert!(app.text().await.expect("app").contains("vestibule demo"));

    let session = session_cookie_at(&base, "alice").await;
    let mut req = format!("ws://{}/sp/app_proxy/{id}/ws", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("cookie", session.parse().expect("header"));
    let (mut ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")
    .expect("the WebSocket opens under the prefix");
    assert_eq!(square(&mut ws, 9).await["square"], 81);
    drop(ws);
    server.shutdown().await;
}

/// The same in Chromium: the form, the portal's tile, the app page's script (which starts the
/// app and follows it through the API) and the app's WebSocket, all under `/sp/`.
#[tokio::test]
async fn the_app_page_works_in_a_browser_under_the_prefix() {
    use crate::common::app_browser::{open_app_at, wait_text};
    let server = TestServer::start(under_sp()).await;
    let chrome = crate::common::chrome::Chrome::start().await;
    let c = &chrome.client;
    open_app_at(c, &server.url("/sp/login"), "alice", "demo", None).await;
    wait_text(c, "#status", |t| t == "connected").await;
    let before = wait_text(c, "#output", |t| t.contains('²')).await;
    let slider = c
        .find(fantoccini::Locator::Id("input"))
        .await
        .expect("slider");
    slider.send_keys("\u{E014}").await.expect("arrow right");
    let after = wait_text(c, "#output", |t| t != before).await;
    assert_ne!(after, before);
    chrome.stop().await;
    server.shutdown().await;
}
