//! Watches as the API server serves them: from a resourceVersion (its history replayed), or
//! from now with the current objects as ADDED; 410 Gone for a version older than the
//! compacted history; bookmarks when asked for; ended by its timeout or when the server drops
//! its watches (a restart, a load balancer's idle timeout).

use super::store::{Change, Store};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a list or watch asks for.
pub struct Selection {
    pub namespace: Option<String>,
    pub resource: String,
    pub labels: Option<String>,
    pub fields: Option<String>,
}

impl Selection {
    pub fn matches(&self, namespace: &str, resource: &str, object: &Value) -> bool {
        let selected = |selector: &Option<String>, at: &dyn Fn(&str) -> Value| {
            selector.as_ref().is_none_or(|sel| {
                sel.split(',')
                    .filter(|p| !p.is_empty())
                    .all(|pair| match pair.split_once("!=") {
                        Some((k, v)) => at(k) != json!(v),
                        None => pair
                            .split_once('=')
                            .is_some_and(|(k, v)| at(k.trim_end_matches('=')) == json!(v)),
                    })
            })
        };
        resource == self.resource
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && selected(&self.labels, &|k| object["metadata"]["labels"][k].clone())
            && selected(&self.fields, &|k| {
                object
                    .pointer(&format!("/{}", k.replace('.', "/")))
                    .cloned()
                    .unwrap_or(Value::Null)
            })
    }
}

pub struct WatchAsk {
    pub selection: Selection,
    pub since: Option<u64>,
    pub timeout: Duration,
    pub bookmarks: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(json!({"type": kind, "object": object}).to_string() + "\n")
}

fn gone(message: String) -> Bytes {
    line(
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": "Expired", "code": 410}),
    )
}

fn bookmark(resource: &str, rv: u64) -> Bytes {
    let (api_version, kind) = match resource {
        "pods" => ("v1", "Pod"),
        "services" => ("v1", "Service"),
        "events" => ("v1", "Event"),
        _ => ("v1", "PersistentVolumeClaim"),
    };
    line(
        "BOOKMARK",
        &json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": rv.to_string()}}),
    )
}

/// A watch answered at once with 410 Gone.
pub fn expired(compacted: u64) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(gone(format!(
            "too old resource version: ({compacted})"
        ))))
        .unwrap_or_default()
}

/// Opens a watch on `store` (under its lock, so no change falls between the replay and the
/// live events).
pub fn open(
    store: &Store,
    ask: WatchAsk,
    ended: CancellationToken,
    bookmark_every: Duration,
) -> Response {
    let WatchAsk {
        selection,
        since,
        timeout,
        bookmarks,
    } = ask;
    let mut first: Vec<Bytes> = Vec::new();
    let mut expired = false;
    match since {
        Some(v) if v < store.compacted => {
            first.push(gone(format!(
                "too old resource version: {v} ({})",
                store.compacted
            )));
            expired = true;
        }
        Some(v) => first.extend(
            store
                .history
                .iter()
                .filter(|c| c.rv > v && selection.matches(&c.namespace, &c.resource, &c.object))
                .map(|c| line(c.kind, &c.object)),
        ),
        None => first.extend(
            store
                .objects
                .iter()
                .filter(|((ns, r, _), o)| selection.matches(ns, r, o))
                .map(|(_, o)| line("ADDED", o)),
        ),
    }
    let mut changes = store.broadcast.subscribe();
    let mut latest = store.version();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let until = tokio::time::sleep(timeout);
        let mut until = std::pin::pin!(until);
        let mut ticks = tokio::time::interval(bookmark_every);
        ticks.tick().await;
        loop {
            // Biased: once the watches are ended, no change made after that is sent.
            let out = tokio::select! {
                biased;
                _ = ended.cancelled() => return,
                _ = &mut until => return,
                _ = ticks.tick(), if bookmarks => bookmark(&selection.resource, latest),
                change = changes.recv() => match change {
                    Ok(Change { rv, kind, namespace, resource, object }) => {
                        latest = rv;
                        if !selection.matches(&namespace, &resource, &object) {
                            continue;
                        }
                        line(kind, &object)
                    }
                    // A watcher too slow for the server's buffer is cut off with 410.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(gone("the watch fell behind".into())).await;
                        return;
                    }
                    Err(_) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}
