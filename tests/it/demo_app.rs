//! The demo app served for real on a loopback port: page, health check and WebSocket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use vestibule::demo_app::{DemoConfig, serve_with};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Running {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(username: Option<&str>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let config = DemoConfig {
        username: username.map(str::to_owned),
    };
    let task = tokio::spawn(serve_with(listener, config, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

async fn next_text<S>(socket: &mut S) -> serde_json::Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("reply within timeout")
            .expect("socket still open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("reply is JSON");
        }
    }
}

#[tokio::test]
async fn serves_the_page_and_health() {
    let app = start(Some("<alice>")).await;
    let client = reqwest::Client::new();

    let page = client
        .get(format!("http://{}/", app.addr))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let body = page.text().await.expect("page body");
    for id in ["id=\"input\"", "id=\"output\"", "id=\"status\""] {
        assert!(body.contains(id), "page lacks {id}");
    }
    assert!(body.contains("&lt;alice&gt;"), "user name shown, escaped");
    // Served under a stripped prefix, so an absolute URL would miss the app.
    for absolute in ["src=\"/", "href=\"/", "\"/ws\"", "'/ws'"] {
        assert!(
            !body.contains(absolute),
            "page has an absolute URL: {absolute}"
        );
    }
    assert!(body.contains("new URL(\"ws\", location.href)"));

    let health = client
        .get(format!("http://{}/health", app.addr))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);

    let missing = client
        .get(format!("http://{}/nope", app.addr))
        .send()
        .await
        .expect("GET /nope");
    assert_eq!(missing.status(), 404);

    app.stop.send(()).expect("server still running");
    tokio::time::timeout(TIMEOUT, app.task)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server result");
}

#[tokio::test]
async fn websocket_answers_with_the_square_and_closes_on_shutdown() {
    let app = start(None).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .expect("WebSocket handshake");

    socket.send(Message::text("7")).await.expect("send 7");
    let reply = next_text(&mut socket).await;
    assert_eq!(reply["value"], 7);
    assert_eq!(reply["square"], 49);
    assert_eq!(reply["bars"].as_array().map(Vec::len), Some(10));
    assert_eq!(reply["bars"][9], 49);

    // A bad input gets an explanation, and the conversation goes on.
    socket
        .send(Message::text("seven"))
        .await
        .expect("send text");
    let reply = next_text(&mut socket).await;
    assert!(reply["error"].is_string(), "{reply}");
    socket.send(Message::text("-12")).await.expect("send -12");
    assert_eq!(next_text(&mut socket).await["square"], 144);

    // Shutdown must not hang on the open socket: the server says goodbye and returns.
    app.stop.send(()).expect("server still running");
    let goodbye = loop {
        match tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("close within timeout")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(goodbye.map(|frame| frame.code), Some(CloseCode::Away));
    drop(socket);
    tokio::time::timeout(TIMEOUT, app.task)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server result");
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let app = start(None).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .expect("WebSocket handshake");
    socket
        .send(Message::text("1".repeat(64 * 1024)))
        .await
        .expect("send");
    // The server drops the connection rather than buffering it.
    let ended = tokio::time::timeout(TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => panic!("answered an oversized message: {text}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection not closed");
    app.stop.send(()).expect("server still running");
    tokio::time::timeout(TIMEOUT, app.task)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server result");
}
