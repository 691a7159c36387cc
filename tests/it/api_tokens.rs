//! Personal API tokens: made on the page or through the API, used as `Authorization: Bearer`
//! on the API and on app URLs, revoked, and then refused.

use crate::common::*;
use reqwest::{Method, StatusCode};

async fn create_token(b: &Browser, name: &str) -> serde_json::Value {
    let resp = b
        .http
        .post(format!("{}/api/tokens", b.base))
        .header("X-CSRF-Token", &b.csrf)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .expect("create token");
    assert_eq!(resp.status(), 201, "create token {name}");
    resp.json().await.expect("token json")
}

fn bearer(server: &TestServer, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .request(method, server.url(path))
        .bearer_auth(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_created_used_on_the_api_and_apps_then_revoked_and_refused() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let created = create_token(&alice, "nightly report").await;
    let token = created["token"].as_str().expect("token").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert!(token.starts_with("vst_"), "{token}");
    assert_eq!(created["owner"], "alice");

    // The list shows the token but never its value.
    let list = alice.get("/api/tokens").await.text().await.expect("list");
    assert!(
        list.contains("nightly report") && !list.contains(&token),
        "{list}"
    );

    // Scripts use it without cookies or CSRF headers.
    let specs = bearer(&server, Method::GET, "/api/proxyspec", &token)
        .send()
        .await
        .expect("specs");
    assert_eq!(specs.status(), 200);
    let launched = bearer(&server, Method::POST, "/api/proxy/echo", &token)
        .send()
        .await
        .expect("launch");
    assert_eq!(
        launched.status(),
        201,
        "a bearer launch needs no CSRF token"
    );
    let view = data(launched).await;
    assert_eq!(view["userId"], "alice", "the token acts as its owner");
    let instance = view["id"].as_str().expect("id").to_string();
    let ok = eventually(std::time::Duration::from_secs(20), || {
        let r = bearer(
            &server,
            Method::GET,
            &format!("/app_proxy/{instance}/x"),
            &token,
        )
        .send();
        async move { r.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    assert!(ok, "the app answers a bearer request");
    let echo: serde_json::Value = bearer(
        &server,
        Method::GET,
        &format!("/app_proxy/{instance}/x"),
        &token,
    )
    .send()
    .await
    .expect("app")
    .json()
    .await
    .expect("echo");
    assert_eq!(echo["headers"]["x-sp-userid"][0], "alice");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "vestibule's token never reaches the app: {echo}"
    );
    let with_cookie_too: serde_json::Value = alice
        .http
        .get(server.url(&format!("/app_proxy/{instance}/x")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cookie and token")
        .json()
        .await
        .expect("echo");
    assert!(
        with_cookie_too["headers"].get("authorization").is_none(),
        "not even beside a session cookie: {with_cookie_too}"
    );

    // A token cannot mint its own successor, and another user cannot revoke it.
    let minted = bearer(&server, Method::POST, "/api/tokens", &token)
        .json(&serde_json::json!({ "name": "successor" }))
        .send()
        .await
        .expect("mint");
    assert_eq!(minted.status(), 403);
    let bob = Browser::login(&server, "bob").await;
    let resp = bob.api(Method::DELETE, &format!("/api/tokens/{id}")).await;
    assert_eq!(resp.status(), 403, "bob cannot revoke alice's token");

    // Revoked on the page (a CSRF-protected form) → refused everywhere at once.
    let no_csrf = alice
        .http
        .post(server.url(&format!("/tokens/{id}/revoke")))
        .form(&[("_csrf", "wrong")])
        .send()
        .await
        .expect("revoke without csrf");
    assert_eq!(no_csrf.status(), 403);
    let revoked = alice
        .http
        .post(server.url(&format!("/tokens/{id}/revoke")))
        .form(&[("_csrf", alice.csrf.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 303);
    for (method, path) in [
        (Method::GET, "/api/proxyspec".to_string()),
        (Method::POST, "/api/proxy/echo".to_string()),
        (Method::GET, format!("/app_proxy/{instance}/x")),
    ] {
        let resp = bearer(&server, method, &path, &token)
            .send()
            .await
            .expect("call");
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{path} after revocation"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_page_shows_a_new_token_once_and_admins_see_everyones() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let portal = alice.get("/").await.text().await.expect("portal");
    assert!(
        portal.contains("href=\"/tokens\""),
        "the navbar links the page"
    );

    let created = alice
        .http
        .post(server.url("/tokens"))
        .form(&[("_csrf", alice.csrf.as_str()), ("name", "laptop")])
        .send()
        .await
        .expect("create on the page");
    assert_eq!(created.status(), 200);
    assert_eq!(
        created
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let page = created.text().await.expect("page");
    let start = page.find("vst_").expect("the new token is shown");
    let token: String = page[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let me = bearer(&server, Method::GET, "/api/proxy", &token)
        .send()
        .await
        .expect("use");
    assert_eq!(me.status(), 200, "the token from the page works");

    let again = alice.get("/tokens").await.text().await.expect("page");
    assert!(again.contains("laptop"), "listed by name");
    assert!(!again.contains(&token), "but its value is shown only once");

    let forged = alice
        .http
        .post(server.url("/tokens"))
        .form(&[("_csrf", "forged"), ("name", "x")])
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 403, "the form is CSRF-protected");

    let root = Browser::login(&server, "root").await;
    let all: serde_json::Value = root
        .get("/api/tokens?all=true")
        .await
        .json()
        .await
        .expect("all");
    let owners: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["owner"].as_str())
        .collect();
    assert_eq!(owners, ["alice"], "admins see everyone's tokens");
    let mine: serde_json::Value = alice
        .get("/api/tokens?all=true")
        .await
        .json()
        .await
        .expect("mine");
    assert_eq!(
        mine.as_array().map(Vec::len),
        Some(1),
        "users only their own"
    );

    let for_bob = root
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &root.csrf)
        .json(&serde_json::json!({ "name": "bob's cron", "user": "bob" }))
        .send()
        .await
        .expect("admin creates for bob");
    assert_eq!(for_bob.status(), 201);
    let for_bob: serde_json::Value = for_bob.json().await.expect("json");
    let bob_token = for_bob["token"].as_str().expect("token");
    let view: serde_json::Value = data(
        bearer(&server, Method::POST, "/api/proxy/echo", bob_token)
            .send()
            .await
            .expect("launch as bob"),
    )
    .await;
    assert_eq!(view["userId"], "bob");
    let refused = alice
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &alice.csrf)
        .json(&serde_json::json!({ "name": "as bob", "user": "bob" }))
        .send()
        .await
        .expect("non-admin for bob");
    assert_eq!(refused.status(), 403, "only admins make tokens for others");
    server.shutdown().await;
}
