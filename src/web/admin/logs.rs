//! `GET /admin/instances/{id}/logs`: the instance's last lines as text, or with `?follow=true`
//! those lines and every new one as server-sent events (one `data:` per line; an `end` event
//! when the instance is gone).

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use http::{StatusCode, header};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

use super::admin_only;
use crate::web::AppState;
use crate::web::context::PageUser;

/// Lines given when `lines` is not said; at most what a buffer keeps anyway.
const DEFAULT_LINES: usize = 200;
const MAX_LINES: usize = 10_000;

#[derive(Deserialize)]
pub struct LogQuery {
    /// How many of the last lines come first.
    lines: Option<usize>,
    #[serde(default)]
    follow: bool,
}

pub async fn logs(
    State(st): State<Arc<AppState>>,
    user: PageUser,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    if let Some(denied) = admin_only(&st, &user) {
        return denied;
    }
    let n = q.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES);
    let Some(log) = st.manager.log_of(&id) else {
        // A failed instance keeps its last lines in its view after the backend let it go.
        return match st.manager.get(&id).await {
            Some(view) if !q.follow => text(view.log_lines.join("\n")),
            Some(_) => (
                StatusCode::NOT_FOUND,
                "this instance's log is not followed here: it has ended, or another replica runs it\n",
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "no such instance\n").into_response(),
        };
    };
    if !q.follow {
        return text(log.last(n).join("\n"));
    }
    let (earlier, receiver) = log.follow(n);
    // The stream must not keep the buffer alive: its end is how followers learn the instance
    // is gone.
    drop(log);
    Sse::new(follow(earlier, receiver))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn text(body: String) -> Response {
    let body = if body.is_empty() { body } else { body + "\n" };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn follow(
    earlier: Vec<String>,
    receiver: tokio::sync::broadcast::Receiver<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let earlier = futures_util::stream::iter(
        earlier
            .into_iter()
            .map(|line| Ok(Event::default().data(line))),
    );
    let live = futures_util::stream::unfold(Some(receiver), |state| async move {
        let mut receiver = state?;
        let event = match receiver.recv().await {
            Ok(line) => Event::default().data(line),
            Err(RecvError::Lagged(n)) => Event::default().data(format!(
                "[vestibule] {n} lines skipped: the reader fell behind"
            )),
            Err(RecvError::Closed) => {
                return Some((
                    Ok(Event::default().event("end").data("the instance ended")),
                    None,
                ));
            }
        };
        Some((Ok(event), Some(receiver)))
    });
    futures_util::StreamExt::chain(earlier, live)
}
