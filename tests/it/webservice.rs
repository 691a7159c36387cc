//! `authentication: webservice` against a small real HTTP service started by the test.

use crate::common::ports::free_port;
use crate::common::*;
use axum::Json;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use std::sync::Arc;
use vestibule::config::{AuthMethod, Config, WebserviceConfig};

/// Accepts alice / alice-pw; records every body it receives.
async fn start_service() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new()
        .route(
            "/login",
            post(
                move |headers: HeaderMap, Json(body): Json<serde_json::Value>| {
                    let log = log.clone();
                    async move {
                        assert_eq!(headers["content-type"], "application/json");
                        log.lock().push(body.clone());
                        if body["username"] == "alice" && body["password"] == "alice-pw" {
                            StatusCode::OK
                        } else {
                            StatusCode::UNAUTHORIZED
                        }
                    }
                },
            ),
        )
        .route(
            "/broken",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn ws_config(url: String) -> Config {
    let mut cfg = config(vec![echo_spec("open")]);
    cfg.proxy.authentication = AuthMethod::Webservice;
    cfg.proxy.users.clear();
    cfg.proxy.webservice = Some(WebserviceConfig {
        url,
        body_template: r#"{"username": "%s", "password": "%s"}"#.into(),
    });
    cfg
}

#[tokio::test]
async fn the_web_service_decides_who_logs_in() {
    let (base, seen) = start_service().await;
    let server = TestServer::start(ws_config(format!("{base}/login"))).await;
    let b = Browser::new(&server);

    assert_eq!(b.try_login("alice", "wrong").await.status(), 401);
    // A quote in the name stays inside the JSON string: no extra fields reach the service.
    let sneaky = r#"x", "username": "alice"#;
    assert_eq!(b.try_login(sneaky, "alice-pw").await.status(), 401);
    assert_eq!(seen.lock()[1]["username"], sneaky);

    assert_eq!(b.try_login("alice", "alice-pw").await.status(), 303);
    let page = b.get("/").await.text().await.expect("portal");
    assert!(page.contains("App open"), "{page}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_failing_or_absent_service_is_unavailable_not_a_wrong_password() {
    let (base, _) = start_service().await;
    for url in [
        format!("{base}/broken"),
        format!("http://127.0.0.1:{}/login", free_port()),
    ] {
        let server = TestServer::start(ws_config(url.clone())).await;
        let resp = Browser::new(&server).try_login("alice", "alice-pw").await;
        assert_eq!(resp.status(), 503, "{url}");
        let page = resp.text().await.expect("html");
        assert!(page.contains("unavailable"), "{page}");
        server.shutdown().await;
    }
}
