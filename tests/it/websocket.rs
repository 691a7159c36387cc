//! WebSockets through the proxy: authorised like every other request, carried intact, and never
//! cut for being quiet.

use crate::common::oidc_provider;
use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub(crate) fn demo_spec() -> vestibule::config::AppSpec {
    vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs[0]
        .clone()
}

/// How long any one WebSocket step may take: a failure must fail the test, not hang it.
const STEP: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(server: &TestServer, id: &str, cookie: &str) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}/app_proxy/{id}/ws", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("header"));
    tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("the WebSocket handshake timed out")
        .map(|(ws, _)| ws)
}

async fn send(ws: &mut Ws, message: Message) {
    tokio::time::timeout(STEP, ws.send(message))
        .await
        .expect("sending timed out")
        .expect("send");
}

/// The next text or binary message; pings and pongs are skipped.
async fn receive(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(STEP, ws.next()).await {
            Err(_) => panic!("no message within {STEP:?}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(message))) => return message,
            Ok(other) => panic!("no answer: {other:?}"),
        }
    }
}

pub(crate) async fn square(ws: &mut Ws, n: i64) -> serde_json::Value {
    send(ws, Message::text(n.to_string())).await;
    match receive(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("json"),
        other => panic!("expected a text answer, got {other:?}"),
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
        alice.get(&format!("/api/proxy/{id}")).await.status() == 403
    })
    .await;
    assert!(
        culled,
        "the app outlived its idle timeout after the socket closed"
    );
    server.shutdown().await;
}

/// The WebSocket echo app (tests/apps/ws_echo): sends back every message as it came.
fn ws_echo_spec() -> vestibule::config::AppSpec {
    ws_echo_spec_with(&[])
}

/// [`ws_echo_spec`] with extra arguments for the app.
fn ws_echo_spec_with(args: &[&str]) -> vestibule::config::AppSpec {
    let python = oidc_provider::venv_python();
    let script = repo_path("tests/apps/ws_echo/app.py");
    let mut cmd = vec![
        python.to_str().expect("venv path"),
        script.to_str().expect("script path"),
    ];
    cmd.extend_from_slice(args);
    process_spec("wsecho", &cmd)
}

/// Bytes that are not all alike, so a shifted, truncated or reordered frame shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

#[tokio::test]
async fn binary_and_large_frames_cross_the_proxy_intact() {
    let server = TestServer::start(config(vec![ws_echo_spec()])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("wsecho").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id").to_string();
    let mut ws = connect(&server, &id, &session_cookie(&server, "alice").await)
        .await
        .expect("connect");

    let every_byte: Vec<u8> = (0..=255).collect();
    let large = pattern(1 << 20, 7);
    let large_text: String = (0..(1 << 20))
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let sent = [
        Message::binary(every_byte),
        Message::binary(large),
        Message::text(large_text),
        Message::binary(pattern(70_000, 3)),
    ];
    for message in sent {
        let len = message.len();
        send(&mut ws, message.clone()).await;
        let echoed = receive(&mut ws).await;
        assert!(
            echoed == message,
            "a {len}-byte message came back as a different {}-byte {}",
            echoed.len(),
            if echoed.is_binary() { "binary" } else { "text" }
        );
    }
    tokio::time::timeout(STEP, ws.close(None))
        .await
        .expect("closing timed out")
        .expect("close");
    server.shutdown().await;
}

/// Stopping an instance closes the WebSockets open to it when the stop begins: the app here
/// ignores SIGTERM, as a slow-to-stop app does, so it would keep talking until the supervisor
/// kills it at the end of its grace period if only the app's exit closed them.
#[tokio::test]
async fn stopping_an_instance_closes_its_open_websockets_at_once() {
    use vestibule::backend::supervisor::STOP_GRACE;
    let server = TestServer::start(config(vec![ws_echo_spec_with(&["--ignore-sigterm"])])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("wsecho").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id").to_string();
    let mut ws = connect(&server, &id, &session_cookie(&server, "alice").await)
        .await
        .expect("connect");
    send(&mut ws, Message::text("before the stop")).await;
    assert_eq!(receive(&mut ws).await, Message::text("before the stop"));

    let asked = tokio::time::Instant::now();
    let path = format!("/api/proxy/{id}");
    let stop = alice.api(reqwest::Method::DELETE, &path);
    // The stop request itself lasts until the app has exited; the socket must not wait for it.
    let ended = async {
        loop {
            match tokio::time::timeout(STEP, ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => {
                    panic!("the app spoke after its instance was stopped: {message:?}")
                }
                // A close frame, the end of the stream, or a connection cut without one.
                Ok(_) => return Some(asked.elapsed()),
            }
        }
    };
    let (resp, ended) = tokio::join!(stop, ended);
    assert_eq!(resp.status(), 200, "the stop was refused");
    let after = ended.unwrap_or_else(|| {
        panic!("the WebSocket was still open {STEP:?} after its instance was stopped")
    });
    assert!(
        after < STOP_GRACE / 2,
        "the WebSocket closed {after:?} after the stop: when the app was killed at the end of \
         its {STOP_GRACE:?} grace period, not when the stop began"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            alice.get(&format!("/api/proxy/{id}")).await.status() == 403
        })
        .await,
        "the stopped instance is still listed"
    );
    server.shutdown().await;
}
