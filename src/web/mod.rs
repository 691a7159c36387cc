//! The HTTP surface: login, portal pages, the JSON API, and the routes into the proxy.

mod admin;
mod api;
mod api_shapes;
mod app_host;
mod app_routes;
pub mod context;
mod context_path;
pub mod cookies;
mod errors;
mod favicon;
pub mod forwarded;
mod frame_options;
mod login;
pub mod login_method;
mod oidc;
mod origin;
mod pages;
mod pool_routes;
#[cfg(feature = "saml")]
mod saml;
mod templates;
mod tokens;

use axum::Router;
use axum::middleware;
use axum::routing::{any, get, post};
use std::sync::Arc;

use crate::auth::throttle::LoginThrottle;
use crate::auth::{Authenticator, Identity, Sessions};
use crate::config::{AuthMethod, Config};
use crate::lifecycle::Manager;
use crate::proxy::Proxy;

pub use templates::Templates;

pub struct AppState {
    pub manager: Arc<Manager>,
    pub sessions: Sessions,
    /// Where shared state lives (memory, or Redis for several replicas).
    pub store: Arc<dyn crate::store::Store>,
    /// Checks passwords; a config reload replaces it (new users, a changed directory).
    pub authenticator: parking_lot::RwLock<Arc<dyn Authenticator>>,
    pub throttle: LoginThrottle,
    pub proxy: Proxy,
    pub templates: Templates,
    /// How users log in (`proxy.authentication`): the one login seam.
    pub login: Arc<dyn login_method::LoginMethod>,
    /// Who asks, request by request (tokens, the trusted header, the anonymous user).
    pub request_authenticators: Vec<Arc<dyn login_method::RequestAuthenticator>>,
    pub api_tokens: crate::auth::api_tokens::ApiTokens,
    /// `proxy.oauth2`: bearer JWTs from an authorization server.
    pub jwt_bearer: Option<crate::auth::bearer_jwt::JwtBearer>,
}

impl AppState {
    /// The config in effect now; a reload replaces it between requests.
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.manager.config()
    }

    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        self.authenticator.read().clone()
    }

    /// The values every page's layout needs.
    fn page_ctx(&self, user: Option<&Identity>, csrf: &str, nav: &str) -> minijinja::Value {
        let p = &self.config().proxy;
        let expressions = page_expressions(user);
        let title = p.title.render(&expressions).unwrap_or_else(|e| {
            tracing::warn!(error = e.message, "proxy.title could not be evaluated");
            "ShinyProxy".into()
        });
        let logo_url = p.logo_url.as_ref().and_then(|logo| {
            logo.render(&expressions)
                .inspect_err(|e| {
                    tracing::warn!(error = e.message, "proxy.logo-url could not be evaluated")
                })
                .ok()
                .filter(|url| !url.is_empty())
        });
        let hide_navbar =
            p.hide_navbar || PAGE_REQUEST.try_with(|r| r.hide_navbar).unwrap_or(false);
        minijinja::context! {
            title => title,
            logo_url => logo_url,
            favicon => p.favicon_path.as_ref().map(|_| format!("{}/favicon.ico", self.config().server.context_path)),
            hide_navbar => hide_navbar,
            base => &self.config().server.context_path,
            user => v(&user),
            csrf => csrf,
            nav => nav,
            can_logout => p.authentication != AuthMethod::None,
            body_classes => &p.body_classes,
        }
    }
}

/// What every page drawn for a request depends on besides the user.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The host the request came through (ShinyProxy's `serverName`).
    pub server_name: Option<String>,
    /// `?sp_hide_navbar=true`: this page without the top bar.
    pub hide_navbar: bool,
}

tokio::task_local! {
    /// Set by `context::resolve` for the whole request, so every page — error pages included —
    /// is drawn the same way without each handler passing these along.
    pub static PAGE_REQUEST: PageRequest;
}

/// What `proxy.title` and `proxy.logo-url` may read: the user and the host.
fn page_expressions(user: Option<&Identity>) -> crate::spel::Context {
    let host = PAGE_REQUEST
        .try_with(|r| r.server_name.clone())
        .ok()
        .flatten();
    let (name, groups) = match user {
        Some(u) => (Some(u.user.as_str()), u.groups.as_slice()),
        None => (None, &[][..]),
    };
    crate::spel::user_context(name, groups).with("serverName", host)
}

/// Any serializable value as a template value.
fn v<T: serde::Serialize + ?Sized>(x: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}

/// The management port (`management.server.port`): health for probes and Prometheus metrics,
/// apart from user traffic.
pub fn management_router(manager: Arc<crate::lifecycle::Manager>) -> Router {
    Router::new()
        .route("/actuator/health", get(api::health))
        .route(
            "/actuator/prometheus",
            get(move || async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    manager.render_metrics(),
                )
            }),
        )
}

pub fn router(state: Arc<AppState>) -> Router {
    // The routes that complete a login are the login method's own.
    let routes = state
        .login
        .routes(Router::new())
        .route("/", get(pages::portal))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", get(login::confirm_logout).post(login::logout))
        .route("/app/{spec}", get(pages::app_page))
        .route("/app/{spec}/{*sub}", get(pages::app_page_at))
        .route(
            "/app_i/{spec}/{instance}/{*sub}",
            get(pages::named_app_page_at),
        )
        .route("/app_direct/{*path}", any(app_routes::app_direct))
        .route("/app_proxy/{*path}", any(app_routes::app_proxy))
        .route("/my-apps", get(pages::my_apps))
        .route("/my-apps/{id}/stop", post(pages::stop_mine))
        .route("/tokens", get(tokens::page).post(tokens::page_create))
        .route("/tokens/{id}/revoke", post(tokens::page_revoke))
        .route(
            "/api/tokens",
            get(tokens::api_list).post(tokens::api_create),
        )
        .route(
            "/api/tokens/{id}",
            axum::routing::delete(tokens::api_revoke),
        )
        // The admin console (admin-only, each handler checks).
        .route("/admin", get(admin::page))
        .route("/admin/instances/{id}", get(admin::instance))
        .route("/admin/instances/{id}/logs", get(admin::logs))
        .route("/admin/instances/{id}/resources", get(admin::resources))
        .route("/admin/instances/{id}/stop", post(pages::admin_stop))
        .route(
            "/admin/delegate-proxy",
            axum::routing::delete(api::retire_delegates),
        )
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/proxyspec", get(api::specs))
        .route("/api/proxyspec/{id}", get(api::spec))
        .route("/api/proxy", get(api::instances))
        .route(
            "/api/proxy/{id}",
            get(api::instance).post(api::launch).delete(api::stop),
        )
        .route(
            "/api/proxy/{id}/status",
            get(api::status).put(api::change_status),
        )
        .route(
            "/app_i/{spec}/{instance}",
            get(pages::named_app_page).post(api::launch_for_page),
        )
        .route("/app_direct_i/{*path}", any(app_routes::app_direct))
        .route(
            "/heartbeat/{id}",
            get(api::heartbeat_info).post(api::heartbeat),
        )
        .route("/actuator/health", get(api::health))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/favicon.ico", get(favicon::global))
        .route("/favicon/{spec}", get(favicon::of_app))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::resolve,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            frame_options::set,
        ))
        .with_state(state.clone());
    let portal = if state.config().server.context_path.is_empty() {
        routes
    } else {
        // A router's layers run once a route is chosen, so the prefix comes off in front of the
        // router, not inside it.
        Router::new()
            .fallback_service(routes)
            .layer(middleware::from_fn_with_state(
                state.clone(),
                context_path::strip,
            ))
    };
    // An instance's own host (`proxy.app-domain`) is no part of the portal: its requests are
    // taken before any portal layer runs.
    Router::new()
        .fallback_service(portal)
        .layer(middleware::from_fn_with_state(state, app_host::dispatch))
}
