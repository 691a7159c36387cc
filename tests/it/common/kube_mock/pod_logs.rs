//! `GET .../pods/NAME/log`, as the kubelet serves it through the API server: per container,
//! the current run's lines (each stamped with when it was printed) and the previous run's;
//! `tailLines`, `sinceTime` (whole seconds, as metav1.Time), `sinceSeconds`, `timestamps`,
//! and `follow=true`, which streams the lines appended after it opened until the container
//! stops, the pod goes, the client leaves or the test ends the streams.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use super::store::Key;
use super::{State, param, refuse};

/// A container's output: the current run's lines and the one before (`previous=true`).
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub current: Vec<(Timestamp, String)>,
    pub previous: String,
}

impl Logs {
    pub fn stamped(text: &str) -> Vec<(Timestamp, String)> {
        text.lines()
            .map(|l| (Timestamp::now(), l.to_string()))
            .collect()
    }
}

/// (namespace, pod, container).
pub type LogKey = (String, String, String);

/// What one request asks for, once the pod and container are known.
struct Ask {
    at: LogKey,
    timestamps: bool,
    /// Where a follow goes on: the index in `current` after the lines already sent.
    next: usize,
}

fn bad(message: String) -> Response {
    refuse((400, "BadRequest", message))
}

/// Answers a log request; a follow is handed its own task, which reads `shared` as lines come.
pub fn answer(shared: &Arc<Mutex<State>>, state: &State, k: &Key, query: &str) -> Response {
    let pod = match state.store.get(k) {
        Ok(pod) => pod,
        Err(refusal) => return refuse(refusal),
    };
    let container = match container_of(&pod, query) {
        Ok(c) => c,
        Err(message) => return bad(message),
    };
    let timestamps = param(query, "timestamps").as_deref() == Some("true");
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(status) = statuses.iter().find(|s| s["name"] == container.as_str()) else {
        return bad(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
            k.2
        ));
    };
    let at = (k.0.clone(), k.2.clone(), container.clone());
    let stored = state.logs.get(&at).cloned().unwrap_or_default();
    if param(query, "previous").as_deref() == Some("true") {
        if status["lastState"]["terminated"].is_null() {
            return bad(format!(
                "previous terminated container \"{container}\" in pod \"{}\" not found",
                k.2
            ));
        }
        let lines = Logs::stamped(&stored.previous);
        return text(render(&select(&lines, query), timestamps));
    }
    if let Some(reason) = status["state"]["waiting"]["reason"].as_str() {
        return bad(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: {reason}",
            k.2
        ));
    }
    let ask = Ask {
        at,
        timestamps,
        next: stored.current.len(),
    };
    let first = render(&select(&stored.current, query), ask.timestamps);
    if param(query, "follow").as_deref() != Some("true") {
        return text(first);
    }
    follow(
        shared.clone(),
        state.log_streams.clone(),
        ask,
        first,
        k.clone(),
    )
}

/// The container asked for; the only one when none is named. `Err` is the 400's message.
fn container_of(pod: &Value, query: &str) -> Result<String, String> {
    if let Some(c) = param(query, "container") {
        let known = pod["spec"]["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x["name"] == c.as_str()));
        if !known {
            return Err(format!(
                "container {c} is not valid for pod {}",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
        return Ok(c);
    }
    match pod["spec"]["containers"].as_array() {
        Some(cs) if cs.len() == 1 => Ok(cs[0]["name"].as_str().unwrap_or_default().to_string()),
        _ => Err(format!(
            "a container name must be specified for pod {}",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )),
    }
}

/// The lines `sinceTime`/`sinceSeconds` and then `tailLines` keep.
fn select(lines: &[(Timestamp, String)], query: &str) -> Vec<(Timestamp, String)> {
    let since = param(query, "sinceTime")
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| {
            let seconds: i64 = param(query, "sinceSeconds")?.parse().ok()?;
            Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
                .ok()
        });
    let kept: Vec<_> = lines
        .iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .cloned()
        .collect();
    match param(query, "tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => kept[kept.len().saturating_sub(n)..].to_vec(),
        None => kept,
    }
}

fn render(lines: &[(Timestamp, String)], timestamps: bool) -> String {
    lines
        .iter()
        .map(|(t, l)| match timestamps {
            true => format!("{t} {l}\n"),
            false => format!("{l}\n"),
        })
        .collect()
}

fn text(body: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from(Bytes::from(body)))
        .unwrap_or_default()
}

/// Streams `first`, then each line appended, until the container no longer runs (or the pod
/// is gone), the test ends the streams, or the client has gone.
fn follow(
    shared: Arc<Mutex<State>>,
    ended: tokio_util::sync::CancellationToken,
    mut ask: Ask,
    first: String,
    k: Key,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = ended.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let (new, runs) = {
                let state = shared.lock();
                let lines = state
                    .logs
                    .get(&ask.at)
                    .map(|l| l.current.clone())
                    .unwrap_or_default();
                let new = lines
                    .get(ask.next..)
                    .map(|n| n.to_vec())
                    .unwrap_or_default();
                ask.next = lines.len();
                (new, container_runs(&state, &k, &ask.at.2))
            };
            if !new.is_empty()
                && tx
                    .send(Ok(Bytes::from(render(&new, ask.timestamps))))
                    .await
                    .is_err()
            {
                return;
            }
            if !runs {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) },
        )))
        .unwrap_or_default()
}

fn container_runs(state: &State, k: &Key, container: &str) -> bool {
    let Ok(pod) = state.store.get(k) else {
        return false;
    };
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .is_some_and(|c| !c["state"]["running"].is_null())
}
