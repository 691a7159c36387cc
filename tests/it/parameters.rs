//! App parameters (ShinyProxy's `parameters`): the user picks values before launch, only from
//! the value sets they may use, and the app starts with them.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{Config, load_str};

fn config() -> Config {
    let echo = repo_path("tests/apps/echo/app.py");
    let yaml = format!(
        "proxy:
  authentication: simple
  container-backend: process
  admin-groups: admins
  users:
    - {{name: alice, password: {PASSWORD}}}
    - {{name: root, password: {PASSWORD}, groups: admins}}
  specs:
    - id: report
      display-name: Report
      container-cmd: [python3, \"{echo}\"]
      max-instances: 2
      container-env:
        APP_ENV: \"#{{proxy.getRuntimeObject('SHINYPROXY_PARAMETERS').getValue('environment')}}\"
        APP_VERSION: \"#{{proxy.getRuntimeObject('SHINYPROXY_PARAMETERS').getValue('version')}}\"
        APP_SET: \"#{{proxy.getRuntimeObject('SHINYPROXY_PARAMETERS').getValueSetName()}}\"
      parameters:
        definitions:
          - id: environment
            display-name: Environment
            default-value: dev
            value-names:
              - {{value: dev, name: Development}}
              - {{value: prod, name: Production}}
          - id: version
            display-name: Version
            default-value: \"1\"
        value-sets:
          - name: everyone
            values:
              environment: [dev]
              version: [\"1\", \"2\"]
          - name: admins-only
            access-control:
              groups: admins
            values:
              environment: [prod]
              version: [\"2\"]
",
        echo = echo.display()
    );
    load_str(Path::new("application.yml"), &yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config loads:\n{e}"))
        .config
}

async fn start(b: &Browser, parameters: Value) -> reqwest::Response {
    b.http
        .post(format!("{}/api/proxy/report", b.base))
        .header("X-CSRF-Token", &b.csrf)
        .json(&json!({ "parameters": parameters }))
        .send()
        .await
        .expect("start")
}

async fn app_env(b: &Browser, proxy: &Value) -> Value {
    let id = proxy["id"].as_str().expect("id");
    let seen: Value = b
        .get(&format!("/app_proxy/{id}/"))
        .await
        .json()
        .await
        .expect("echo");
    seen["env"].clone()
}

#[tokio::test]
async fn the_app_gets_the_values_a_user_may_choose_and_no_others() {
    let server = TestServer::start(config()).await;
    let alice = Browser::login(&server, "alice").await;
    let root = Browser::login(&server, "root").await;

    let resp = start(
        &alice,
        json!({"environment": "Development", "version": "2"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let proxy = data(resp).await;
    let env = app_env(&alice, &proxy).await;
    assert_eq!(env["APP_ENV"], "dev", "the value behind the name: {env}");
    assert_eq!(env["APP_VERSION"], "2");
    assert_eq!(env["APP_SET"], "everyone");
    assert_eq!(
        proxy["runtimeValues"]["SHINYPROXY_PARAMETER_NAMES"][0],
        json!({"displayName": "Environment", "description": null, "value": "Development"})
    );

    // A value set alice may not use is refused however she asks for it.
    for forged in [
        json!({"environment": "Production", "version": "2"}),
        json!({"environment": "prod", "version": "2"}),
    ] {
        let resp = start(&alice, forged.clone()).await;
        assert_eq!(resp.status(), 400, "{forged}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(
            body,
            json!({"status": "fail", "data": "Provided parameter values are not allowed"})
        );
    }
    let no_body = alice.api(Method::POST, "/api/proxy/report").await;
    assert_eq!(no_body.status(), 400);
    let body: Value = no_body.json().await.expect("json");
    assert_eq!(
        body["data"],
        "No parameters provided, but proxy spec expects parameters"
    );
    let short = start(&alice, json!({"environment": "Development"})).await;
    assert_eq!(
        short.json::<Value>().await.expect("json")["data"],
        "Invalid number of parameters provided"
    );

    // An admin may use the second set.
    let resp = start(&root, json!({"environment": "Production", "version": "2"})).await;
    assert_eq!(resp.status(), 201);
    let env = app_env(&root, &data(resp).await).await;
    assert_eq!(
        (env["APP_ENV"].as_str(), env["APP_SET"].as_str()),
        (Some("prod"), Some("admins-only"))
    );
    server.shutdown().await;
}

#[test]
fn parameters_that_could_never_be_chosen_are_refused_at_load() {
    let refused = |block: &str| {
        let yaml = format!(
            "proxy:\n  container-backend: process\n  specs:\n    - id: a\n      container-cmd: [run]\n      parameters:\n{block}"
        );
        load_str(Path::new("application.yml"), &yaml, &HashMap::new())
            .expect_err("refused")
            .to_string()
    };
    let e = refused(
        "        definitions: [{id: x}, {id: y}]\n        value-sets: [{values: {x: [a]}}]\n",
    );
    assert!(
        e.contains("application.yml:7:")
            && e.contains("value set 0 is missing values for parameter with id 'y'"),
        "{e}"
    );
    let e = refused(
        "        definitions: [{id: x, default-value: b}]\n        value-sets: [{values: {x: [a]}}]\n",
    );
    assert!(
        e.contains("default value for parameter with id 'x' is not defined"),
        "{e}"
    );
    let e = refused(
        "        definitions: [{id: 'x y'}]\n        value-sets: [{values: {'x y': [a]}}]\n",
    );
    assert!(e.contains("parameter id 'x y' is invalid"), "{e}");
    let e = refused(
        "        definitions: [{id: x}]\n        value-sets: [{values: {x: [a]}}]\n      pool: {}\n",
    );
    assert!(e.contains("a shared app (pool or seats)"), "{e}");
}

/// In Chromium: the app page asks for the values first, offers only those of the value sets
/// the user may use, and the app starts with the chosen ones.
#[tokio::test]
async fn the_form_on_the_app_page_starts_the_app_with_the_chosen_values() {
    use crate::common::app_browser::log_in;
    use fantoccini::Locator;
    let server = TestServer::start(config()).await;
    let chrome = crate::common::chrome::Chrome::start().await;
    let c = &chrome.client;
    log_in(c, &server, "alice", None).await;
    c.wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Id("tile-report"))
        .await
        .expect("portal");
    c.goto(&server.url("/app/report")).await.expect("app page");
    let environment = c
        .wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Id("param-environment"))
        .await
        .expect("the form asks for the environment");
    let offered = environment.text().await.expect("options");
    assert!(
        offered.contains("Development") && !offered.contains("Production"),
        "only alice's value sets: {offered}"
    );
    c.find(Locator::Css("#param-version option[value='2']"))
        .await
        .expect("version 2")
        .click()
        .await
        .expect("choose 2");
    c.find(Locator::Id("start-app"))
        .await
        .expect("start button")
        .click()
        .await
        .expect("start");
    let alice = Browser::login(&server, "alice").await;
    let started = eventually(std::time::Duration::from_secs(20), || async {
        data_list(alice.get("/api/proxy").await)
            .await
            .iter()
            .any(|p| p["status"] == "Up")
    })
    .await;
    assert!(started, "the app started from the form");
    let proxy = data_list(alice.get("/api/proxy").await).await.remove(0);
    let env = app_env(&alice, &proxy).await;
    assert_eq!(
        (env["APP_ENV"].as_str(), env["APP_VERSION"].as_str()),
        (Some("dev"), Some("2")),
        "{env}"
    );
    chrome.stop().await;
    server.shutdown().await;
}
