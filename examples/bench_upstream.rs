//! The upstream app for `bench/run.sh`: one small server that the benchmark reaches directly,
//! through nginx and through vestibule, so the only difference between the three is the proxy.
//!
//! Listens on 127.0.0.1:$PORT (vestibule's process backend sets PORT) and serves:
//! `GET /` (200, for readiness checks), `GET /small` (a short body), `GET /100k` (100 KiB) and a
//! WebSocket echo at `/ws`.

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use std::net::SocketAddr;

const SMALL: &str = "hello from the bench upstream\n";
const BIG_LEN: usize = 100 * 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    // Built once: every response shares this buffer, so the upstream costs the same for all
    // three paths and as little as possible.
    let big = Bytes::from(vec![b'x'; BIG_LEN]);
    let app = Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route("/small", get(|| async { SMALL }))
        .route("/100k", get(move || async move { big }))
        .route("/ws", get(ws));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

/// Sends every text or binary message straight back.
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => break,
            // Pings are answered by axum itself.
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
