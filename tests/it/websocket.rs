//! WebSockets through the proxy: authorised like every other request, carried intact, and never
//! cut for being quiet.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn demo_spec() -> vestibule::config::AppSpec {
    vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs[0]
        .clone()
}

async fn connect(
    server: &TestServer,
    id: &str,
    cookie: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let mut req = format!("ws://{}/app_proxy/{id}/ws", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("header"));
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn square(
    ws: &mut (impl SinkExt<Message> + StreamExt<Item = Result<Message, WsError>> + Unpin),
    n: i64,
) -> serde_json::Value {
    let _ = ws.send(Message::text(n.to_string())).await;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_owner_talks_over_the_websocket_and_another_user_gets_403() {
    let server = TestServer::start(config(vec![demo_spec()])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("demo").await["id"]
        .as_str()
        .expect("id")
        .to_string();

    let mut ws = connect(&server, &id, &session_cookie(&server, "alice").await)
        .await
        .expect("alice connects");
    assert_eq!(square(&mut ws, 7).await["square"], 49);

    match connect(&server, &id, &session_cookie(&server, "bob").await).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!(
            "bob must be refused, got {:?}",
            other.map(|_| "a connection")
        ),
    }
    match connect(&server, &id, "vestibule_session=forged").await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!(
            "a forged session must be refused, got {:?}",
            other.map(|_| "a connection")
        ),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_quiet_websocket_is_not_cut_and_keeps_its_app_alive() {
    let mut spec = demo_spec();
    spec.heartbeat_timeout = Some(Duration::from_secs(1));
    let mut cfg = config(vec![spec]);
    cfg.proxy.heartbeat_rate = Duration::from_millis(200);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("demo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut ws = connect(&server, &id, &session_cookie(&server, "alice").await)
        .await
        .expect("connect");
    assert_eq!(square(&mut ws, 3).await["square"], 9);
    // Silent for three idle timeouts: the open socket counts as use.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(square(&mut ws, 4).await["square"], 16);
    drop(ws);
    // Once the socket is gone, the idle timeout applies again.
    let culled = eventually(Duration::from_secs(5), || async {
        alice.get(&format!("/api/proxy/{id}")).await.status() == 404
    })
    .await;
    assert!(
        culled,
        "the app outlived its idle timeout after the socket closed"
    );
    server.shutdown().await;
}
