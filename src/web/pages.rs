//! The portal's pages: apps, one app, my apps, admin.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;

use super::context::{PageUser, RequestCtx};
use super::{AppState, v};
use crate::auth::csrf;
use crate::config::LandingPage;
use crate::lifecycle::{DEFAULT_INSTANCE, InstanceStatus, StopReason};

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

pub async fn portal(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
) -> Response {
    let proxy = &st.config().proxy;
    let open: Vec<&crate::config::AppSpec> = proxy
        .specs
        .iter()
        .filter(|a| crate::auth::access::may_open(&s.identity, a, req.server_name.as_deref()))
        .collect();
    if let Some(to) = landing(&proxy.landing_page, &open) {
        return Redirect::to(&to).into_response();
    }
    let mine = st.manager.list(Some(&s.identity.user)).await;
    let running: Vec<String> = mine
        .iter()
        .filter(|v| v.status == InstanceStatus::Running)
        .map(|v| v.spec_id.clone())
        .collect();
    let tile = |a: &crate::config::AppSpec| {
        minijinja::context! {
            id => v(&a.id), display_name => v(&a.display_name), description => v(&a.description),
            logo_url => v(&a.logo_url), logo => v(&a.logo), running => running.contains(&a.id),
            choose => a.always_show_switch_instance,
        }
    };
    let ctx = minijinja::context! {
        groups => tile_groups(&proxy.template_groups, &open, tile),
        notification => v(&proxy.notification_message),
        my_apps_mode => v(&proxy.my_apps_mode),
        instances => v(&mine),
        ..st.page_ctx(Some(&s.identity), &s.csrf, "apps")
    };
    st.templates.render(StatusCode::OK, "portal.html", ctx)
}

/// Where `landing-page` sends a user who opens `/`, if not to the portal.
fn landing(page: &LandingPage, open: &[&crate::config::AppSpec]) -> Option<String> {
    let app = |a: &crate::config::AppSpec| format!("/app/{}", urlencoding::encode(&a.id));
    match page {
        LandingPage::Portal => None,
        LandingPage::SingleApp if open.len() == 1 => open.first().map(|a| app(a)),
        LandingPage::SingleApp => None,
        LandingPage::FirstApp => open.first().map(|a| app(a)),
        LandingPage::Url(url) => Some(url.clone()),
    }
}

/// The tiles under their `template-groups` headings, in the file's order; apps of no group
/// under "Other" after them. Without groups: one untitled group. Empty groups are left out.
fn tile_groups(
    groups: &[crate::config::TemplateGroup],
    open: &[&crate::config::AppSpec],
    tile: impl Fn(&crate::config::AppSpec) -> minijinja::Value,
) -> Vec<minijinja::Value> {
    let known = |a: &&&crate::config::AppSpec| {
        a.template_group
            .as_ref()
            .is_some_and(|g| groups.iter().any(|t| &t.id == g))
    };
    groups
        .iter()
        .map(|g| {
            let apps: Vec<_> = open
                .iter()
                .filter(|a| a.template_group.as_deref() == Some(g.id.as_str()))
                .map(|a| tile(a))
                .collect();
            (Some(g.display_name.as_str()), apps)
        })
        .chain(std::iter::once((
            (!groups.is_empty()).then_some("Other"),
            open.iter().filter(|a| !known(a)).map(|a| tile(a)).collect(),
        )))
        .filter(|(_, apps)| !apps.is_empty())
        .map(|(title, apps)| minijinja::context! { title => title, apps => apps })
        .collect()
}

pub async fn app_page(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path(spec_id): Path<String>,
) -> Response {
    draw_app_page(&st, &req, &s, &spec_id, DEFAULT_INSTANCE, "").await
}

/// `/app/<app>/<path>`: the app page opening the app at its own `path` (`track-app-url`).
pub async fn app_page_at(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path((spec_id, sub)): Path<(String, String)>,
    uri: http::Uri,
) -> Response {
    let sub = with_query(&sub, &uri);
    draw_app_page(&st, &req, &s, &spec_id, DEFAULT_INSTANCE, &sub).await
}

/// `/app_i/<app>/<name>/<path>`.
pub async fn named_app_page_at(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path((spec_id, name, sub)): Path<(String, String, String)>,
    uri: http::Uri,
) -> Response {
    draw_named_app_page(&st, &req, &s, &spec_id, &name, &with_query(&sub, &uri)).await
}

/// The app's own path and query, as the frame should open them.
fn with_query(sub: &str, uri: &http::Uri) -> String {
    match uri.query() {
        Some(q) => format!("{sub}?{q}"),
        None => sub.to_string(),
    }
}

/// `/app_i/<app>/<name>/`: the app page of one of the user's named instances.
pub async fn named_app_page(
    State(st): State<Arc<AppState>>,
    Extension(req): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path((spec_id, name)): Path<(String, String)>,
) -> Response {
    draw_named_app_page(&st, &req, &s, &spec_id, &name, "").await
}

async fn draw_named_app_page(
    st: &AppState,
    req: &RequestCtx,
    s: &crate::auth::Session,
    spec_id: &str,
    name: &str,
    sub_path: &str,
) -> Response {
    match super::api::instance_name(name) {
        Ok(name) => draw_app_page(st, req, s, spec_id, &name, sub_path).await,
        Err(e) => error_page(
            st,
            Some(s),
            StatusCode::BAD_REQUEST,
            "Not an instance name",
            &e.message,
        ),
    }
}

async fn draw_app_page(
    st: &AppState,
    req: &RequestCtx,
    s: &crate::auth::Session,
    spec_id: &str,
    name: &str,
    sub_path: &str,
) -> Response {
    let config = st.config();
    let Some(spec) = config.proxy.spec(spec_id) else {
        return error_page(
            st,
            Some(s),
            StatusCode::NOT_FOUND,
            "No such app",
            "There is no app with this name.",
        );
    };
    if !crate::auth::access::may_open(&s.identity, spec, req.server_name.as_deref()) {
        return not_allowed(st, s, "You may not open this app.");
    }
    // Re-attach to the user's instance if there is one; the page starts one otherwise.
    // A pool's app is shared: the frame opens it directly, and the pool holds the first
    // request until an instance is ready.
    let instance = if spec.pool.is_some() {
        serde_json::json!({ "status": "Up", "publicPath": format!("{}/app_direct/{}/", st.config().server.context_path, spec.id) })
    } else {
        match st
            .manager
            .current_for(&s.identity.user, spec_id, name)
            .await
        {
            Some(view) => super::api_shapes::proxy(&view, Some(spec)),
            None => serde_json::Value::Null,
        }
    };
    // The user's other instances of this app, for the switch dialog.
    let instances: Vec<minijinja::Value> = st
        .manager
        .list(Some(&s.identity.user))
        .await
        .into_iter()
        .filter(|v| v.spec_id == spec.id && !v.status.is_final())
        .map(|v| {
            minijinja::context! {
                name => v.instance_name, status => super::api_shapes::status_name(v.status),
            }
        })
        .collect();
    // The parameters form: per parameter, the values of the value sets this user may use.
    let subject = crate::config::access::Subject {
        user: &s.identity.user,
        groups: &s.identity.groups,
        server_name: req.server_name.as_deref(),
    };
    let parameters: Vec<minijinja::Value> = spec
        .parameters
        .as_ref()
        .map(|p| {
            p.offered(&subject)
                .into_iter()
                .map(|(d, options)| {
                    minijinja::context! {
                        id => &d.id, label => d.label(), description => &d.description,
                        options => options,
                        default => d.default_value.as_deref().map(|v| d.name_of(v)),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let switchable = spec.pool.is_none()
        && (spec.always_show_switch_instance || spec.max_instances.is_none_or(|m| m > 1));
    let ctx = minijinja::context! {
        app => minijinja::context! { id => v(&spec.id), display_name => v(&spec.display_name) },
        instance => v(&instance),
        instance_name => name,
        track_url => spec.track_app_url,
        sub_path => if spec.track_app_url { sub_path } else { "" },
        parameters => parameters,
        instances => instances,
        switchable => switchable,

        favicon => (spec.favicon_path.is_some() || st.config().proxy.favicon_path.is_some())
            .then(|| format!("{}/favicon/{}", st.config().server.context_path, urlencoding::encode(&spec.id))),
        ..st.page_ctx(Some(&s.identity), &s.csrf, "apps")
    };
    st.templates.render(StatusCode::OK, "app.html", ctx)
}

pub async fn my_apps(State(st): State<Arc<AppState>>, PageUser(s): PageUser) -> Response {
    let instances = st.manager.list(Some(&s.identity.user)).await;
    let ctx = minijinja::context! { instances => v(&instances), ..st.page_ctx(Some(&s.identity), &s.csrf, "my-apps") };
    st.templates.render(StatusCode::OK, "my_apps.html", ctx)
}

pub async fn stop_mine(
    State(st): State<Arc<AppState>>,
    PageUser(s): PageUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::matches(&s.csrf, form.csrf.as_deref()) {
        return csrf_failure(&st, &s);
    }
    match st.manager.get(&id).await {
        Some(v) if crate::auth::access::may_use(&s.identity, &v.user) => {
            st.manager.stop(&id, StopReason::User).await;
            st.proxy
                .closers()
                .close(&crate::proxy::closers::Opener::Instance(id.clone()));
            Redirect::to("/my-apps").into_response()
        }
        Some(_) => not_allowed(&st, &s, "This is not your app."),
        None => Redirect::to("/my-apps").into_response(),
    }
}

pub async fn admin_stop(
    State(st): State<Arc<AppState>>,
    PageUser(s): PageUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !s.identity.is_admin {
        return not_allowed(&st, &s, "Only administrators may stop other users' apps.");
    }
    if !csrf::matches(&s.csrf, form.csrf.as_deref()) {
        return csrf_failure(&st, &s);
    }
    st.manager.stop(&id, StopReason::Admin).await;
    st.proxy
        .closers()
        .close(&crate::proxy::closers::Opener::Instance(id.clone()));
    tracing::info!(event = "admin_stop", admin = %s.identity.user, instance = %id, "admin stopped an app");
    Redirect::to("/admin").into_response()
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/style.css"),
    )
        .into_response()
}

pub async fn not_found(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
) -> Response {
    error_page(
        &st,
        ctx.session.as_deref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

pub(super) fn not_allowed(st: &AppState, s: &crate::auth::Session, why: &str) -> Response {
    error_page(st, Some(s), StatusCode::FORBIDDEN, "Not allowed", why)
}

pub(super) fn csrf_failure(st: &AppState, s: &crate::auth::Session) -> Response {
    error_page(
        st,
        Some(s),
        StatusCode::FORBIDDEN,
        "Form expired",
        "The form was not accepted (missing or stale CSRF token). Reload the page and try again.",
    )
}

pub fn error_page(
    st: &AppState,
    session: Option<&crate::auth::Session>,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    failure_page(st, session, status, heading, message, &[])
}

/// What people are told while the shared state store (Redis) cannot be reached: apps already
/// open keep working from this replica's own tables, but nobody can log in or start an app.
pub const STORE_UNAVAILABLE: &str = "vestibule cannot reach its state store (Redis) just now. \
    Apps you already have open keep working; logging in and starting apps will work again as \
    soon as it is back. Please try again in a moment.";

/// 503, with `Retry-After`, for a request that needs the unreachable state store.
pub fn store_unavailable_page(st: &AppState, session: Option<&crate::auth::Session>) -> Response {
    let mut resp = error_page(
        st,
        session,
        StatusCode::SERVICE_UNAVAILABLE,
        "State store unavailable",
        STORE_UNAVAILABLE,
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("5"),
    );
    resp
}

pub fn failure_page(
    st: &AppState,
    session: Option<&crate::auth::Session>,
    status: StatusCode,
    heading: &str,
    message: &str,
    log_lines: &[String],
) -> Response {
    let (user, csrf) = match session {
        Some(s) => (Some(&s.identity), s.csrf.as_str()),
        None => (None, ""),
    };
    let ctx = minijinja::context! {
        heading => heading, message => message, log_lines => v(&log_lines),
        ..st.page_ctx(user, csrf, "")
    };
    st.templates.render(status, "error.html", ctx)
}
