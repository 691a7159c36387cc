//! A replica shutting down in a rolling update: it stops taking connections, lets requests in
//! flight finish against apps that still run, tells each WebSocket it is going away (1001) so the
//! page reconnects through another replica, and only then stops the instances.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_says_going_away_to_websockets_and_stops_apps_last() {
    let demo = vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs
        .remove(0);
    let mut cfg = config(vec![echo_spec("echo"), demo]);
    cfg.proxy.stop_proxies_on_shutdown = true;
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let echo = alice.launch_id("echo").await;
    let demo = alice.launch_id("demo").await;

    let mut req = format!("ws://{}/app_proxy/{demo}/ws", server.addr)
        .into_client_request()
        .expect("request");
    let cookie = session_cookie(&server, "alice").await;
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    ws.send(Message::text("3")).await.expect("send");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer in time");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");

    let slow_url = server.url(&format!("/app_proxy/{echo}/slow"));
    let http = alice.http.clone();
    let slow = tokio::spawn(async move { http.get(slow_url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(server.shutdown());

    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the WebSocket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame within 5 s");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));

    let resp = slow
        .await
        .expect("join")
        .expect("the request in flight is answered");
    assert_eq!(resp.status(), 200, "the app was not stopped under it");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["slow"], "done");
    stopping.await.expect("clean shutdown");
}

/// A launch that reaches the server while it drains is refused with 503 and says why, rather
/// than starting an instance the shutdown would stop (or leave behind) a moment later. The
/// launch request is sent before the shutdown, but its body is finished only once the drain
/// has begun, which the open WebSocket's going-away frame shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_that_arrives_during_the_drain_is_refused_with_503() {
    let demo = vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs
        .remove(0);
    let server = TestServer::start(config(vec![echo_spec("echo"), demo])).await;
    let alice = Browser::login(&server, "alice").await;
    let demo = alice.launch_id("demo").await;

    let mut req = format!("ws://{}/app_proxy/{demo}/ws", server.addr)
        .into_client_request()
        .expect("request");
    let cookie = session_cookie(&server, "alice").await;
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("header"));
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("the WebSocket handshake timed out")
    .expect("websocket");

    // The launch's headers and the first byte of its body now; the rest once the drain runs.
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let body = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let launch = alice
        .http
        .post(server.url("/api/proxy/echo"))
        .header("X-CSRF-Token", &alice.csrf)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let launch = tokio::spawn(launch);
    body_tx
        .send(Ok(bytes::Bytes::from_static(b"{")))
        .await
        .expect("first byte");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = tokio::spawn(server.shutdown());
    let away = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the WebSocket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the drain did not begin within 10 s");
    assert_eq!(away.map(|f| f.code), Some(CloseCode::Away));

    body_tx
        .send(Ok(bytes::Bytes::from_static(b"}")))
        .await
        .expect("last byte");
    drop(body_tx);
    let resp = tokio::time::timeout(Duration::from_secs(10), launch)
        .await
        .expect("the launch was not answered within 10 s")
        .expect("join")
        .expect("the launch in flight is answered");
    assert_eq!(resp.status(), 503, "a launch during the drain");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["data"], "the server is shutting down", "{body}");
    stopping.await.expect("clean shutdown");
}
