//! The admin console: every instance with its status, stage, CPU and memory, its log (tail and
//! live), the users online, the recent events and the config in effect with secrets masked.
//! Every route here is for administrators only; the one that changes state (stop) checks the
//! CSRF token like every form.

mod logs;
mod resources;
mod users;

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use std::sync::Arc;

use super::context::PageUser;
use super::pages::not_allowed;
use super::{AppState, v};

pub use logs::logs;
pub use resources::resources;

/// How many recent events the console lists.
const EVENTS_SHOWN: usize = 50;
/// Log lines on an instance's page before the live ones.
const LOG_TAIL: usize = 200;

/// `None` for an administrator; the 403 page for anyone else.
fn admin_only(st: &AppState, s: &PageUser) -> Option<Response> {
    (!s.0.identity.is_admin)
        .then(|| not_allowed(st, &s.0, "Only administrators may see the admin console."))
}

pub async fn page(State(st): State<Arc<AppState>>, user: PageUser) -> Response {
    if let Some(denied) = admin_only(&st, &user) {
        return denied;
    }
    let s = &user.0;
    let instances = st.manager.list(None).await;
    let events = st.manager.metrics().recent_events(EVENTS_SHOWN);
    let online = users::online(&instances, &events);
    let ctx = minijinja::context! {
        instances => v(&instances),
        max_total => st.config().proxy.max_total_instances,
        pools => v(&st.manager.pool_gauges()),
        seats => v(&st.manager.seat_counts().into_iter().map(|(app, c)| serde_json::json!({
            "app": app, "free": c.free, "claimed": c.claimed, "starting": c.starting, "waiting": c.waiting,
        })).collect::<Vec<_>>()),
        users => v(&online),
        events => v(&events.iter().map(|e| serde_json::json!({
            "time": clock_time(e.time_ms), "user": e.user, "kind": e.kind, "app": e.app,
        })).collect::<Vec<_>>()),
        config_text => &st.config().ops.masked,
        config_source => st.config().source.as_ref().map(|p| p.display().to_string()),
        ..st.page_ctx(Some(&s.identity), &s.csrf, "admin")
    };
    st.templates.render(StatusCode::OK, "admin.html", ctx)
}

/// One instance: its state, what it uses, and its log, followed live.
pub async fn instance(
    State(st): State<Arc<AppState>>,
    user: PageUser,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = admin_only(&st, &user) {
        return denied;
    }
    let s = &user.0;
    let Some(view) = st.manager.get(&id).await else {
        return super::pages::error_page(
            &st,
            Some(s),
            StatusCode::NOT_FOUND,
            "No such instance",
            "This instance is not running (any more).",
        );
    };
    let log = st.manager.log_of(&id).map(|l| l.last(LOG_TAIL));
    let ctx = minijinja::context! {
        i => v(&view),
        log_lines => v(&log.clone().unwrap_or_else(|| view.log_lines.clone())),
        live => log.is_some(),
        ..st.page_ctx(Some(&s.identity), &s.csrf, "admin")
    };
    st.templates
        .render(StatusCode::OK, "admin_instance.html", ctx)
}

/// `HH:MM:SS` (UTC) of a time in milliseconds since the epoch.
fn clock_time(ms: u64) -> String {
    let secs = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}
