//! ShinyProxy's named instances: several instances of one app per user, each under its own
//! name (`/app_i/<app>/<name>/`, `/app_direct_i/<app>/<name>/`), up to `max-instances`.

use crate::common::*;
use crate::websocket::demo_spec;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn two_named_instances_run_side_by_side() {
    let mut echo = echo_spec("echo");
    echo.max_instances = Some(3);
    let server = TestServer::start(config(vec![echo])).await;
    let alice = Browser::login(&server, "alice").await;

    let one = alice.launch_named("echo", "one").await;
    let two = alice.launch_named("echo", "two").await;
    assert_eq!(one["status"], "Up", "{one}");
    assert_eq!(two["status"], "Up", "{two}");
    assert_ne!(one["id"], two["id"]);
    assert_eq!(one["runtimeValues"]["SHINYPROXY_APP_INSTANCE"], "one");
    assert_eq!(two["runtimeValues"]["SHINYPROXY_APP_INSTANCE"], "two");
    let env_of = |id: Value| {
        let alice = &alice;
        async move {
            let id = id.as_str().expect("id").to_string();
            let seen: Value = alice
                .get(&format!("/app_proxy/{id}/"))
                .await
                .json()
                .await
                .expect("echo");
            seen["env"]["SHINYPROXY_PROXY_ID"].clone()
        }
    };
    assert_eq!(env_of(one["id"].clone()).await, one["id"]);
    assert_eq!(env_of(two["id"].clone()).await, two["id"]);

    // /app_direct_i reaches the instance of that name, not another.
    let direct: Value = alice
        .get("/app_direct_i/echo/two/")
        .await
        .json()
        .await
        .expect("echo");
    assert_eq!(direct["env"]["SHINYPROXY_PROXY_ID"], two["id"]);

    let again = alice.api(Method::POST, "/app_i/echo/one").await;
    assert_eq!(again.status(), 400, "one instance per name");
    for bad in ["bad%20name", &"x".repeat(65)] {
        let resp = alice.api(Method::POST, &format!("/app_i/echo/{bad}")).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let default = alice.launch_named("echo", "Default").await;
    assert_eq!(default["runtimeValues"]["SHINYPROXY_APP_INSTANCE"], "_");
    let fourth = alice.api(Method::POST, "/app_i/echo/four").await;
    assert_eq!(fourth.status(), 409, "max-instances: 3");
    let names: Vec<Value> = data_list(alice.get("/api/proxy").await)
        .await
        .iter()
        .map(|p| p["runtimeValues"]["SHINYPROXY_APP_INSTANCE"].clone())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    server.shutdown().await;
}

/// In Chromium: the app page offers the switch dialog, and a name typed there opens a second
/// instance beside the first.
#[tokio::test]
async fn the_switch_dialog_opens_a_second_instance() {
    use crate::common::app_browser::{open_app, wait_text};
    use fantoccini::Locator;
    let mut demo = demo_spec();
    demo.max_instances = Some(2);
    let server = TestServer::start(config(vec![demo])).await;
    let chrome = crate::common::chrome::Chrome::start().await;
    let c = &chrome.client;
    open_app(c, &server, "alice", "demo", None).await;
    wait_text(c, "#status", |t| t == "connected").await;
    c.enter_parent_frame().await.expect("leave the app's frame");
    c.find(Locator::Id("switch-instance"))
        .await
        .expect("switch button")
        .click()
        .await
        .expect("click");
    c.find(Locator::Id("new-instance-name"))
        .await
        .expect("name field")
        .send_keys("second\u{E007}")
        .await
        .expect("type a name and press enter");
    let arrived = eventually(std::time::Duration::from_secs(10), || async {
        c.current_url()
            .await
            .is_ok_and(|u| u.path() == "/app_i/demo/second")
    })
    .await;
    assert!(arrived, "the page of the new instance");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let frame = c.find(Locator::Id("appframe")).await.expect("iframe");
        if frame.attr("hidden").await.ok().flatten().is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second instance never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let alice = Browser::login(&server, "alice").await;
    let running = eventually(std::time::Duration::from_secs(20), || async {
        data_list(alice.get("/api/proxy").await)
            .await
            .iter()
            .filter(|p| p["status"] == "Up")
            .count()
            == 2
    })
    .await;
    assert!(running, "two instances of the demo run");
    chrome.stop().await;
    server.shutdown().await;
}
