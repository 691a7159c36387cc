//! The portal's page settings, as ShinyProxy users write them: `landing-page`,
//! `hide-navbar`, `notification-message`, `template-groups` and `favicon-path`.

use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{Config, load_str};

/// Three apps: alice may open `one` and `two`, bob only `two`.
fn config(extra: &str) -> Config {
    let echo = repo_path("tests/apps/echo/app.py");
    let yaml = format!(
        "proxy:
  authentication: simple
  container-backend: process
{extra}
  users:
    - {{name: alice, password: {PASSWORD}, groups: [analysts]}}
    - {{name: bob, password: {PASSWORD}}}
  specs:
    - id: one
      display-name: First app
      container-cmd: [python3, \"{echo}\"]
      access-groups: analysts
      template-group: sales
    - id: two
      display-name: Second app
      container-cmd: [python3, \"{echo}\"]
      template-group: finance
    - id: three
      display-name: Third app
      container-cmd: [python3, \"{echo}\"]
      access-users: carol
",
        echo = echo.display()
    );
    load_str(Path::new("application.yml"), &yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config loads:\n{e}"))
        .config
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn landing_page_sends_users_to_their_app() {
    let server = TestServer::start(config("  landing-page: SingleApp")).await;
    let bob = Browser::login(&server, "bob").await;
    let alice = Browser::login(&server, "alice").await;
    let home = bob.get("/").await;
    assert_eq!(
        location(&home).as_deref(),
        Some("/app/two"),
        "bob may open one app"
    );
    let home = alice.get("/").await;
    assert_eq!(home.status(), 200, "alice may open two: the portal");
    server.shutdown().await;

    let server = TestServer::start(config("  landing-page: FirstApp")).await;
    let alice = Browser::login(&server, "alice").await;
    assert_eq!(location(&alice.get("/").await).as_deref(), Some("/app/one"));
    server.shutdown().await;

    let server = TestServer::start(config("  landing-page: /app/two")).await;
    let b = Browser::new(&server);
    let login = b.try_login("bob", PASSWORD).await;
    assert_eq!(
        location(&login).as_deref(),
        Some("/"),
        "login goes home first"
    );
    assert_eq!(location(&b.get("/").await).as_deref(), Some("/app/two"));
    server.shutdown().await;

    let refused = load_str(
        Path::new("application.yml"),
        "proxy:\n  landing-page: Portal\n",
        &HashMap::new(),
    )
    .expect_err("not a landing page");
    assert!(
        refused.to_string().contains("application.yml:2:")
            && refused.to_string().contains("SingleApp"),
        "{refused}"
    );
}

#[tokio::test]
async fn groups_notification_and_navbar_on_the_portal() {
    let server = TestServer::start(config(
        "  notification-message: '<b id=\"maint\">Maintenance on Friday</b>'
  template-groups:
    - id: finance
      properties:
        display-name: Finance apps
    - id: sales
      properties:
        display-name: Sales apps
    - id: empty
      properties:
        display-name: Nobody's apps",
    ))
    .await;
    let alice = Browser::login(&server, "alice").await;
    let page = alice.get("/").await.text().await.expect("portal");
    assert!(
        page.contains("<b id=\"maint\">Maintenance on Friday</b>"),
        "the message is the file's HTML: {page}"
    );
    let finance = page.find("Finance apps").expect("finance heading");
    let sales = page.find("Sales apps").expect("sales heading");
    assert!(finance < sales, "groups in the file's order");
    let two = page.find("tile-two").expect("tile two");
    let one = page.find("tile-one").expect("tile one");
    assert!(
        finance < two && two < sales && sales < one,
        "each app under its group"
    );
    assert!(
        !page.contains("Nobody's apps"),
        "an empty group is left out"
    );
    assert!(page.contains("class=\"navbar\""));
    let bare = alice
        .get("/?sp_hide_navbar=true")
        .await
        .text()
        .await
        .expect("portal");
    assert!(
        !bare.contains("class=\"navbar\""),
        "hidden for this request"
    );
    server.shutdown().await;

    let server = TestServer::start(config("  hide-navbar: true")).await;
    let alice = Browser::login(&server, "alice").await;
    let page = alice.get("/").await.text().await.expect("portal");
    assert!(!page.contains("class=\"navbar\""));
    assert!(
        !page.contains("Finance apps") && page.contains("tile-one"),
        "no groups: plain tiles"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn favicons_are_served_from_the_files_the_config_names() {
    let dir = std::env::temp_dir().join(format!("vestibule-favicons-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let site = dir.join("site.png");
    let app = dir.join("two.svg");
    std::fs::write(&site, b"\x89PNG site").expect("write");
    std::fs::write(&app, b"<svg/>").expect("write");
    let mut cfg = config(&format!("  favicon-path: {}", site.display()));
    cfg.proxy.specs[1].favicon_path = Some(app.clone());
    let server = TestServer::start(cfg).await;
    let bob = Browser::login(&server, "bob").await;

    let icon = bob.get("/favicon.ico").await;
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/png");
    assert_eq!(icon.bytes().await.expect("body").as_ref(), b"\x89PNG site");
    let own = bob.get("/favicon/two").await;
    assert_eq!(own.headers()["content-type"], "image/svg+xml");
    assert_eq!(own.bytes().await.expect("body").as_ref(), b"<svg/>");
    assert_eq!(bob.get("/favicon/one").await.status(), 403, "not bob's app");
    let page = bob.get("/app/two").await.text().await.expect("app page");
    assert!(
        page.contains("rel=\"icon\" href=\"&#x2f;favicon&#x2f;two\""),
        "{page}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn my_apps_mode_shows_the_users_instances_beside_the_apps_or_behind_a_button() {
    for (mode, marker) in [
        ("Inline", "<aside id=\"my-apps\">"),
        ("Modal", "<dialog id=\"my-apps\">"),
    ] {
        let server = TestServer::start(config(&format!("  my-apps-mode: {mode}"))).await;
        let alice = Browser::login(&server, "alice").await;
        let id = alice.launch_id("two").await;
        let page = alice.get("/").await.text().await.expect("portal");
        assert!(page.contains(marker), "{mode}: {page}");
        assert!(
            page.contains(&format!("instance-{id}")),
            "{mode}: the instance is listed"
        );
        server.shutdown().await;
    }
    let server = TestServer::start(config("")).await;
    let alice = Browser::login(&server, "alice").await;
    alice.launch_id("two").await;
    let page = alice.get("/").await.text().await.expect("portal");
    assert!(
        !page.contains("id=\"my-apps\""),
        "None: only the My apps page"
    );
    server.shutdown().await;
}

/// `track-app-url` in Chromium: a page opened inside the app shows in the browser's address,
/// and that address opens the app at the same page.
#[tokio::test]
async fn track_app_url_mirrors_the_apps_path_in_the_address() {
    use crate::common::app_browser::open_app;
    let mut demo = crate::websocket::demo_spec();
    demo.track_app_url = true;
    let server = TestServer::start(crate::common::config(vec![demo])).await;
    let chrome = crate::common::chrome::Chrome::start().await;
    let c = &chrome.client;
    open_app(c, &server, "alice", "demo", None).await;
    c.enter_parent_frame().await.expect("leave the frame");
    c.execute(
        "const f = document.getElementById('appframe'); f.contentWindow.location.href = f.src + 'deep/page?tab=2';",
        vec![],
    )
    .await
    .expect("navigate inside the app");
    let mirrored = eventually(std::time::Duration::from_secs(10), || async {
        c.current_url()
            .await
            .is_ok_and(|u| u.path() == "/app/demo/deep/page" && u.query() == Some("tab=2"))
    })
    .await;
    assert!(
        mirrored,
        "{:?}",
        c.current_url().await.map(|u| u.to_string())
    );

    c.goto(&server.url("/app/demo/deep/page?tab=2"))
        .await
        .expect("open the address");
    let reopened = eventually(std::time::Duration::from_secs(10), || async {
        c.execute("return document.getElementById('appframe').src", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .is_some_and(|src| src.ends_with("/deep/page?tab=2") && src.contains("/app_proxy/"))
    })
    .await;
    assert!(reopened, "the frame opens the app at that page");
    chrome.stop().await;
    server.shutdown().await;
}

#[test]
fn the_default_switch_instance_setting_applies_to_every_app() {
    let cfg = config("  default-always-switch-instance: true");
    assert!(
        cfg.proxy
            .specs
            .iter()
            .all(|s| s.always_show_switch_instance)
    );
    assert!(!config("").proxy.specs[0].always_show_switch_instance);
}

#[tokio::test]
async fn tiles_draw_logos_with_the_default_and_per_app_look_and_body_classes_apply() {
    let mut cfg = config(
        "  default-app-logo-url: /static/default.png
  default-app-logo-width: 64px
  default-app-logo-classes: round
  body-classes: [corp, dark]",
    );
    // One app has its own logo, height and classes; the others fall back to the defaults.
    let one = &mut cfg.proxy.specs[0];
    one.logo_url = Some("/static/one.png".into());
    one.logo.height = Some("3em".into());
    one.logo.classes = Some("framed".into());
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let page = alice.get("/").await.text().await.expect("portal");
    assert!(
        page.contains(
            r#"<img src="&#x2f;static&#x2f;one.png" alt="" class="framed" style="width: 64px; height: 3em; ">"#
        ),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<img src="&#x2f;static&#x2f;default.png" alt="" class="round" style="width: 64px; ">"#
        ),
        "{page}"
    );
    assert!(
        page.contains(r#"<body class=" corp dark">"#),
        "body-classes: {page}"
    );
    server.shutdown().await;
}
