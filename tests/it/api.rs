//! The JSON API as ShinyProxy 3.2's clients read it: the `{status, data}` envelope, the proxy
//! and spec fields (compared with the examples in containerproxy's controller annotations),
//! status changes, heartbeats, error bodies, and the OpenAPI document.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

fn broken_spec() -> vestibule::config::AppSpec {
    process_spec(
        "broken",
        &["sh", "-c", "echo 'cannot open data.csv' >&2; exit 3"],
    )
}

#[tokio::test]
async fn answers_have_shinyproxys_envelope_and_fields() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;

    // POST /api/proxy/{specId} answers once the app is up, with 201.
    let resp = alice.api(Method::POST, "/api/proxy/echo").await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(keys(&body), ["data", "status"], "{body}");
    assert_eq!(body["status"], "success");
    let proxy = &body["data"];
    // Every field of containerproxy's example proxy (ProxyController.java, GET /api/proxy),
    // but `targets`, which 3.2 no longer shows its users.
    for field in [
        "id",
        "status",
        "startupTimestamp",
        "createdTimestamp",
        "userId",
        "specId",
        "displayName",
        "containers",
        "targetId",
        "runtimeValues",
    ] {
        assert!(proxy.get(field).is_some(), "{field} missing: {proxy}");
    }
    assert_eq!(proxy["status"], "Up");
    assert_eq!(proxy["userId"], "alice");
    assert_eq!(proxy["specId"], "echo");
    assert!(proxy["startupTimestamp"].as_u64() >= proxy["createdTimestamp"].as_u64());
    assert!(proxy["createdTimestamp"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(proxy["containers"][0]["index"], 0);
    assert_eq!(
        proxy["containers"][0]["runtimeValues"]["SHINYPROXY_CONTAINER_INDEX"],
        0
    );
    let id = proxy["id"].as_str().expect("id");
    let runtime = &proxy["runtimeValues"];
    assert_eq!(
        runtime["SHINYPROXY_PUBLIC_PATH"],
        format!("/app_proxy/{id}/")
    );
    assert_eq!(runtime["SHINYPROXY_APP_INSTANCE"], "_");
    assert!(
        runtime["SHINYPROXY_CREATED_TIMESTAMP"].is_string(),
        "a string, as in 3.2"
    );
    assert_eq!(runtime["SHINYPROXY_HEARTBEAT_TIMEOUT"], -1);
    assert!(
        runtime.get("SHINYPROXY_USERNAME").is_none(),
        "3.2 keeps the user's variables out of the API"
    );

    let listed = data_list(alice.get("/api/proxy").await).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(
        data(alice.get(&format!("/api/proxy/{id}")).await).await["id"],
        id
    );

    // Specs in 3.2's user view (hide-spec-details), plus the logo.
    let specs = data_list(alice.get("/api/proxyspec").await).await;
    assert_eq!(
        keys(&specs[0]),
        [
            "description",
            "displayName",
            "id",
            "logoClasses",
            "logoHeight",
            "logoStyle",
            "logoUrl",
            "logoWidth"
        ]
    );
    let one = data(alice.get("/api/proxyspec/echo").await).await;
    assert_eq!(one["id"], "echo");
    let missing = alice.get("/api/proxyspec/nope").await;
    assert_eq!(missing.status(), 403);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"status": "fail", "data": "forbidden"})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn status_changes_and_heartbeats_as_in_shinyproxy() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let id = alice.launch_id("echo").await;
    let put = |b: &Browser, body: Value| {
        let req = b
            .http
            .put(server.url(&format!("/api/proxy/{id}/status")))
            .header("X-CSRF-Token", &b.csrf)
            .json(&body);
        async move { req.send().await.expect("put") }
    };
    let heartbeat = format!("/heartbeat/{id}");

    let info = data(alice.get(&heartbeat).await).await;
    assert_eq!(keys(&info), ["heartbeatRate", "lastHeartbeat"], "{info}");
    assert!(info["heartbeatRate"].as_u64().is_some_and(|r| r > 0));
    let beat = alice.api(Method::POST, &heartbeat).await;
    assert_eq!(data(beat).await, Value::Null);
    assert_eq!(bob.api(Method::POST, &heartbeat).await.status(), 410);

    let paused = put(&alice, serde_json::json!({"status": "Pausing"})).await;
    assert_eq!(paused.status(), 400);
    let body: Value = paused.json().await.expect("json");
    assert_eq!(body["status"], "fail");
    assert!(
        body["data"]
            .as_str()
            .is_some_and(|d| d.contains("cannot pause")),
        "{body}"
    );
    assert_eq!(
        put(&alice, serde_json::json!({"status": "Bogus"}))
            .await
            .status(),
        400
    );
    let no_body = alice
        .http
        .put(server.url(&format!("/api/proxy/{id}/status")))
        .header("X-CSRF-Token", &alice.csrf)
        .send()
        .await
        .expect("put");
    assert_eq!(no_body.status(), 400);
    assert_eq!(
        put(&bob, serde_json::json!({"status": "Stopping"}))
            .await
            .status(),
        403,
        "bob cannot stop alice's app"
    );
    let stopped = put(&alice, serde_json::json!({"status": "Stopping"})).await;
    assert_eq!(stopped.status(), 200);
    let gone = eventually(std::time::Duration::from_secs(10), || async {
        data(alice.get(&format!("/api/proxy/{id}/status")).await).await["status"] == "Stopped"
    })
    .await;
    assert!(gone, "the instance is not stopped");
    assert_eq!(alice.api(Method::POST, &heartbeat).await.status(), 410);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_start_says_why_in_shinyproxys_error_body() {
    let server = TestServer::start(config(vec![broken_spec()])).await;
    let alice = Browser::login(&server, "alice").await;
    let resp = alice.api(Method::POST, "/api/proxy/broken").await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "error", "{body}");
    let said = body["data"].as_str().expect("a message");
    assert!(said.starts_with("Failed to start proxy"), "{said}");
    assert!(
        body["proxy"]["logLines"]
            .to_string()
            .contains("cannot open data.csv"),
        "the app's last words: {body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_operation_in_the_openapi_document_is_served() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let root = Browser::login(&server, "root").await;
    let doc: Value = reqwest::get(server.url("/api/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{paths:?}");
    for (path, item) in paths {
        let url = path
            .replace("{id}", "nosuch")
            .replace("{specId}", "nosuch")
            .replace("{instance}", "_");
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp = root.api(m, &url).await;
            let status = resp.status();
            let json = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/json"));
            assert!(
                status != 405 && json,
                "{method} {path}: {status}, not a JSON answer of the API"
            );
        }
    }
    server.shutdown().await;
}
