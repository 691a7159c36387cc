//! The built-in demo app, so that vestibule's default configuration works with no other
//! runtime installed.
//!
//! It behaves like the real frameworks vestibule serves, so it exercises the same proxy paths:
//! one HTML page whose every URL is relative (it is served under `/app_proxy/<id>/` with the
//! prefix stripped), and a WebSocket at the relative path `ws` that carries the interaction.
//! The page reads the user name from `SHINYPROXY_USERNAME`, as ShinyProxy apps do.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest magnitude accepted as input: keeps every square (and the chart) within `i64`.
pub const MAX_INPUT: i64 = 1_000_000;

/// Number of bars in the chart of `x²` the page draws.
const BARS: i64 = 10;

/// A browser sends one short number per message; anything larger is a misbehaving client.
const MAX_MESSAGE_BYTES: usize = 4096;

/// How long `serve` waits for open WebSockets to say goodbye after shutdown was requested.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Settings of one demo app process.
#[derive(Debug, Clone, Default)]
pub struct DemoConfig {
    /// Shown on the page; `None` shows a generic greeting.
    pub username: Option<String>,
}

impl DemoConfig {
    /// Reads the settings ShinyProxy-style backends pass to an app through its environment.
    pub fn from_env() -> Self {
        let username = std::env::var("SHINYPROXY_USERNAME")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        Self { username }
    }
}

/// Serves the demo app on `listener` until `shutdown` completes, configured from the
/// environment (`SHINYPROXY_USERNAME`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, DemoConfig::from_env(), shutdown).await
}

/// Like [`serve`], with explicit settings (tests use it instead of mutating the environment).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    // Upgraded WebSockets outlive the HTTP connection that axum's graceful shutdown tracks, so
    // they are tracked here and told to close when shutdown starts.
    let sockets = TaskTracker::new();
    let state = AppState {
        page: Arc::from(render_page(config.username.as_deref())),
        stop: stop.clone(),
        sockets: sockets.clone(),
    };

    let trigger = stop.clone();
    let watcher = tokio::spawn(async move {
        tokio::select! {
            () = shutdown => trigger.cancel(),
            () = trigger.cancelled() => {}
        }
    });

    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await;

    // If serving failed on its own, the WebSockets must still be closed and the watcher ended.
    stop.cancel();
    sockets.close();
    if tokio::time::timeout(CLOSE_GRACE, sockets.wait())
        .await
        .is_err()
    {
        tracing::warn!("demo app: WebSockets still open {CLOSE_GRACE:?} after shutdown");
    }
    watcher.abort();
    result
}

#[derive(Clone)]
struct AppState {
    page: Arc<str>,
    stop: CancellationToken,
    sockets: TaskTracker,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/ws", get(websocket))
        .with_state(state)
}

async fn index(State(state): State<AppState>) -> Response {
    // The greeting is per user, so shared caches between proxy and browser must not keep it.
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(state.page.to_string()),
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok"
}

async fn websocket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let AppState { stop, sockets, .. } = state;
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| sockets.track_future(converse(socket, stop)))
}

/// Answers each number the page sends with its square, until either side closes.
async fn converse(mut socket: WebSocket, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            () = stop.cancelled() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                // The peer may already be gone; there is nothing left to do either way.
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            // Pings are answered by the WebSocket layer itself; binary frames carry nothing
            // the page sends.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
        };
        let reply = match serde_json::to_string(&answer(text.as_str())) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::error!(%error, "demo app: could not encode a reply");
                return;
            }
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
    }
}

/// What the server sends back for one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// The input was a number in range.
    Result {
        value: i64,
        square: i64,
        /// `x²` (rounded down) at `BARS` evenly spaced points up to `value`, for the chart.
        bars: Vec<i64>,
    },
    /// The input was not a number in range; the text is meant for the person at the page.
    Error { error: String },
}

/// Computes the reply to one message from the page.
pub fn answer(input: &str) -> Reply {
    let value = match input.trim().parse::<i64>() {
        Ok(value) if (-MAX_INPUT..=MAX_INPUT).contains(&value) => value,
        _ => {
            return Reply::Error {
                error: format!("expected a whole number from -{MAX_INPUT} to {MAX_INPUT}"),
            };
        }
    };
    let bars = (1..=BARS)
        // Scaling after squaring keeps the curve smooth for small inputs; |value| <= MAX_INPUT
        // keeps (value * BARS)² within i64.
        .map(|step| {
            let x = value * step;
            x * x / (BARS * BARS)
        })
        .collect();
    Reply::Result {
        value,
        square: value * value,
        bars,
    }
}

fn render_page(username: Option<&str>) -> String {
    let greeting = match username {
        Some(name) => format!("Hello, <span id=\"user\">{}</span>", escape_html(name)),
        None => "Hello".to_owned(),
    };
    PAGE.replace("{{GREETING}}", &greeting)
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

// Every URL below is relative: the page is served under a prefix the app never sees.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vestibule demo</title>
<!-- An inline icon, so the browser does not ask for /favicon.ico outside our prefix. -->
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; --accent: #2f6fde; --muted: #8a8f98; }
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin-bottom: .25rem; }
  .sub { color: var(--muted); margin-top: 0; }
  label { display: block; margin: 1.5rem 0 .5rem; }
  input[type=range] { width: 100%; accent-color: var(--accent); }
  #output { font-size: 2rem; font-variant-numeric: tabular-nums; margin: 1rem 0; min-height: 3rem; }
  #chart { display: flex; align-items: flex-end; gap: 4px; height: 120px;
           border-bottom: 1px solid var(--muted); }
  #chart div { flex: 1; background: var(--accent); opacity: .55; min-height: 1px;
               transition: height .15s ease-out; }
  #chart div:last-child { opacity: 1; }
  #status { font-size: .85rem; padding: .1rem .5rem; border-radius: 1rem; color: #fff;
            background: var(--muted); }
  #status.connected { background: #2a9d4b; }
  #status.disconnected { background: #c0392b; }
</style>
</head>
<body>
<h1>{{GREETING}}</h1>
<p class="sub">vestibule demo app &middot; <span id="status">connecting</span></p>
<label for="input">Pick a number: <strong id="value">12</strong></label>
<input id="input" type="range" min="0" max="100" value="12">
<div id="output" aria-live="polite">&nbsp;</div>
<div id="chart" aria-hidden="true"></div>
<script>
(() => {
  "use strict";
  const input = document.getElementById("input");
  const value = document.getElementById("value");
  const output = document.getElementById("output");
  const status = document.getElementById("status");
  const chart = document.getElementById("chart");
  let socket = null;
  let retryMs = 500;

  // Relative to the page, so it lands under whatever prefix the proxy serves us at.
  function socketUrl() {
    const url = new URL("ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    url.hash = "";
    return url.href;
  }

  function setStatus(text) {
    status.textContent = text;
    status.className = text;
  }

  function send() {
    value.textContent = input.value;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(input.value);
  }

  function draw(bars) {
    const max = Math.max(1, ...bars);
    chart.replaceChildren(...bars.map((y) => {
      const bar = document.createElement("div");
      bar.style.height = (100 * y / max) + "%";
      bar.title = String(y);
      return bar;
    }));
  }

  function connect() {
    setStatus("connecting");
    socket = new WebSocket(socketUrl());
    socket.onopen = () => { retryMs = 500; setStatus("connected"); send(); };
    socket.onmessage = (event) => {
      let reply;
      try { reply = JSON.parse(event.data); } catch (_) { return; }
      if (reply.error) { output.textContent = reply.error; return; }
      output.textContent = reply.value + "\u00b2 = " + reply.square;
      draw(reply.bars);
    };
    // Reconnect with backoff: the proxy or the app may restart under us.
    socket.onclose = () => {
      setStatus("disconnected");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  input.addEventListener("input", send);
  connect();
})();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squares_numbers_and_draws_the_curve_up_to_them() {
        assert_eq!(
            answer(" 10\n"),
            Reply::Result {
                value: 10,
                square: 100,
                bars: vec![1, 4, 9, 16, 25, 36, 49, 64, 81, 100],
            }
        );
    }

    #[test]
    fn bars_follow_the_curve_without_integer_steps() {
        let Reply::Result { bars, .. } = answer("13") else {
            panic!("13 refused");
        };
        assert_eq!(bars, vec![1, 6, 15, 27, 42, 60, 82, 108, 136, 169]);
    }

    #[test]
    fn rejects_what_is_not_a_number_in_range() {
        for input in [
            "",
            "abc",
            "1.5",
            "1000001",
            "-1000001",
            "99999999999999999999",
        ] {
            assert!(
                matches!(answer(input), Reply::Error { .. }),
                "{input:?} accepted"
            );
        }
        let Reply::Result { square, bars, .. } = answer("-1000000") else {
            panic!("the smallest input in range was refused");
        };
        assert_eq!(square, 1_000_000_000_000);
        assert_eq!(bars.last(), Some(&square));
    }

    #[test]
    fn escapes_the_user_name() {
        let page = render_page(Some("<b>\"x\"&'y'"));
        assert!(page.contains("&lt;b&gt;&quot;x&quot;&amp;&#39;y&#39;"));
        assert!(!page.contains("<b>"));
    }
}
