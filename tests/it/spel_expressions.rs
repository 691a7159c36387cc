//! ShinyProxy's `#{...}` expressions as users meet them: a title and apps that depend on the
//! host name (shinyproxy-config-examples/22), and app settings filled in for each launch.

use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{Config, load_str};

fn load(yaml: &str) -> Config {
    load_str(Path::new("application.yml"), yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config loads:\n{e}"))
        .config
}

/// Example 22 of shinyproxy-config-examples, on local processes.
fn example_22() -> Config {
    let echo = repo_path("tests/apps/echo/app.py");
    load(&format!(
        "proxy:
  title: \"#{{serverName == 'shinyproxy-demo.local' ? 'ShinyProxy Demo' : 'ShinyProxy Demo 2'}}\"
  logo-url: \"#{{serverName == 'shinyproxy-demo.local' ? 'https://www.openanalytics.eu/shinyproxy/logo.png' : null}}\"
  authentication: simple
  container-backend: process
  admin-groups: admins
  users:
    - name: jack
      password: {PASSWORD}
      groups: admins
    - name: jeff
      password: {PASSWORD}
  specs:
    - id: app1
      display-name: App 1
      container-cmd: [python3, \"{echo}\"]
      access-strict-expression: \"#{{serverName == 'shinyproxy-demo.local'}}\"
      access-users: jack
    - id: app2
      display-name: App 2
      container-cmd: [python3, \"{echo}\"]
      access-strict-expression: \"#{{serverName == 'shinyproxy-demo2.local'}}\"
",
        echo = echo.display()
    ))
}

/// A browser that reaches the server under `host`, as if DNS pointed the name at it.
async fn browser_at(server: &TestServer, host: &str, user: &str) -> Browser {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, server.addr)
        .build()
        .expect("client");
    let mut b = Browser {
        http,
        base: format!("http://{host}:{}", server.addr.port()),
        csrf: String::new(),
    };
    assert_eq!(
        b.try_login(user, PASSWORD).await.status(),
        303,
        "{user} logs in at {host}"
    );
    let page = b.get("/").await.text().await.expect("portal");
    b.csrf = hidden_field(&page, "_csrf").expect("csrf");
    b
}

#[tokio::test]
async fn the_title_logo_and_apps_depend_on_the_host_name() {
    let server = TestServer::start(example_22()).await;
    let demo = browser_at(&server, "shinyproxy-demo.local", "jack").await;
    let demo2 = browser_at(&server, "shinyproxy-demo2.local", "jack").await;

    let page = demo.get("/").await.text().await.expect("portal");
    assert!(
        page.contains("ShinyProxy Demo<") || page.contains("ShinyProxy Demo </"),
        "{page}"
    );
    assert!(page.contains("logo.png"), "{page}");
    assert!(page.contains("App 1") && !page.contains("App 2"), "{page}");

    let page = demo2.get("/").await.text().await.expect("portal");
    assert!(page.contains("ShinyProxy Demo 2"), "{page}");
    assert!(!page.contains("logo.png"), "null gives no logo");
    assert!(page.contains("App 2") && !page.contains("App 1"), "{page}");

    // The rule holds at launch too: app1 cannot be started through the other name.
    let refused = demo2.api(reqwest::Method::POST, "/api/proxy/app1").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(demo.launch("app1").await["status"], "Up");
    // jeff is not among app1's users: the strict rule alone does not let him in.
    let jeff = browser_at(&server, "shinyproxy-demo.local", "jeff").await;
    let refused = jeff.api(reqwest::Method::POST, "/api/proxy/app1").await;
    assert_eq!(refused.status(), 403);
    server.shutdown().await;
}

#[tokio::test]
async fn launch_settings_read_the_user_and_the_instances_runtime_values() {
    let echo = repo_path("tests/apps/echo/app.py");
    let server = TestServer::start(load(&format!(
        "proxy:
  authentication: simple
  container-backend: process
  users:
    - {{name: ann, password: {PASSWORD}, groups: [analysts, ROLE_dev]}}
  specs:
    - id: echo
      container-cmd: [python3, \"{echo}\"]
      container-env:
        APP_BASE: \"#{{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH').replaceFirst('/$','')}}\"
        APP_WHO: \"#{{proxy.userId.toUpperCase()}}-#{{proxy.specId}}\"
        APP_GROUPS: \"#{{groups}}\"
        APP_ADMIN: \"#{{groups.contains('ADMINS') ? 'yes' : 'no'}}\"
",
        echo = echo.display()
    )))
    .await;
    let ann = Browser::login(&server, "ann").await;
    let view = ann.launch("echo").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id");
    let seen: serde_json::Value = ann
        .get(&format!("/app_proxy/{id}/"))
        .await
        .json()
        .await
        .expect("echo");
    let env = &seen["env"];
    assert_eq!(env["APP_BASE"], format!("/app_proxy/{id}"), "{seen}");
    assert_eq!(env["APP_WHO"], "ANN-echo");
    assert_eq!(env["APP_GROUPS"], "[ANALYSTS, DEV]");
    assert_eq!(env["APP_ADMIN"], "no");
    server.shutdown().await;
}

#[test]
fn expressions_that_cannot_run_are_refused_at_their_line() {
    let err = load_str(
        Path::new("application.yml"),
        "proxy:
  container-backend: process
  specs:
    - id: a
      container-cmd: [\"true\"]
      container-env:
        BASE: \"#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PAHT')}\"
        HOST: \"#{serverName}\"
        RUN: \"#{T(java.lang.Runtime).getRuntime().exec('id')}\"
",
        &HashMap::new(),
    )
    .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("application.yml:7:")
            && text.contains("did you mean 'SHINYPROXY_PUBLIC_PATH'"),
        "{text}"
    );
    assert!(
        text.contains("application.yml:8:") && text.contains("not available when an app starts"),
        "{text}"
    );
    assert!(
        text.contains("application.yml:9:") && text.contains("type references"),
        "{text}"
    );
}
