//! `proxy.app-domain`: every instance served from an origin of its own,
//! `<instance-id>.<app-domain>`, so that script in an app page (Jupyter, RStudio, any HTML an
//! app renders) cannot read the portal's pages or act with its user's session there.
//!
//! The portal's session cookie never reaches an app host. A browser is logged in there by a
//! one-time token: the portal, where the user is logged in, hands a navigation to the app over
//! with a token ([`hand_over`]), and the app host trades it for a cookie of its own that names
//! the portal session ([`serve`]). Each request on the app host then checks that the session
//! still lives and may use the instance, as `/app_proxy/` does.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use super::app_routes::{Caller, forward};
use super::cookies;
use crate::auth::access::may_use;
use crate::auth::reconfirm::current_session;
use crate::auth::session::{APP_HOST_COOKIE, Session, random_token};

/// Where the app host takes a token from the portal; no app path starts with a dot folder.
const AUTH_PATH: &str = "/.vestibule/auth";
/// Long enough for a redirect, too short to be worth stealing.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// The app host's login lasts as long as an idle session could; the session is checked on
/// every request anyway.
const LOGIN_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Deserialize, Default)]
struct AuthQuery {
    token: Option<String>,
    r#return: Option<String>,
}

/// Whose login, for which instance: what a token and an app host cookie stand for.
#[derive(Serialize, Deserialize)]
struct Grant {
    session: String,
    instance: String,
}

fn token_key(token: &str) -> String {
    format!("apphost:token:{token}")
}

fn login_key(cookie: &str) -> String {
    format!("apphost:login:{cookie}")
}

/// The instance a host names: `abc` for `abc.apps.example.com` under `apps.example.com`.
pub fn instance_of_host<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let id = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!id.is_empty() && !id.contains('.')).then_some(id)
}

/// Requests for `<id>.<app-domain>` are the app's, never the portal's: they are served here,
/// before the portal's routes, cookies and login methods see them.
pub async fn dispatch(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(domain) = st.config().proxy.app_domain.clone() else {
        return next.run(req).await;
    };
    // The host as the portal reads it: a trusted balancer's X-Forwarded-Host, else Host.
    let host = super::context::connection(&st, &req).server_name;
    match host.as_deref().and_then(|h| instance_of_host(h, &domain)) {
        Some(id) => {
            let id = id.to_string();
            serve(&st, &id, req).await
        }
        None => next.run(req).await,
    }
}

/// A browser navigation the portal sends on to an app's own host.
pub struct HandOver {
    session: String,
    instance: String,
    /// Where on the app host it lands (path and query).
    path: String,
    /// The portal's `Host`, whose port the app host shares.
    portal_host: Option<String>,
    scheme: &'static str,
}

/// Portal side, for `/app_proxy/` and `/app_direct/`: with an app domain, no app content is
/// served to a browser session in the portal's origin. A page navigation goes to the app's own
/// host (`rest_at`: where the app's own path starts); anything else is refused, since script on
/// an app host could otherwise reach another app here with the portal's (same-site) cookie.
/// `None`: serve it here (no app domain, or a script's token or password).
pub fn keep_off_portal(
    st: &AppState,
    ctx: &super::context::RequestCtx,
    session: Option<&Session>,
    instance: &str,
    rest_at: usize,
    req: &Request,
) -> Option<Result<HandOver, Response>> {
    st.config().proxy.app_domain.as_ref()?;
    let session = session.filter(|_| !ctx.via_token)?;
    let navigation = req.method() == http::Method::GET
        && super::app_routes::wants_page(req)
        && !crate::proxy::headers::is_upgrade(req.headers());
    if !navigation {
        return Some(Err((
            StatusCode::FORBIDDEN,
            "apps are served at their own host (proxy.app-domain), not here\n",
        )
            .into_response()));
    }
    let rest = req.uri().path().get(rest_at..).unwrap_or("/");
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Some(Ok(HandOver {
        session: session.id.clone(),
        instance: instance.to_string(),
        path: format!("/app_proxy/{instance}{rest}{query}"),
        portal_host: req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
        scheme: ctx.scheme(),
    }))
}

impl HandOver {
    /// Redirects to the app host with a one-time token that logs the browser in there.
    pub async fn send(self, st: &AppState) -> Response {
        let Some(domain) = st.config().proxy.app_domain.clone() else {
            return (StatusCode::NOT_FOUND, "no app domain\n").into_response();
        };
        let token = random_token();
        let grant = Grant {
            session: self.session,
            instance: self.instance.clone(),
        };
        let stored = match serde_json::to_string(&grant) {
            Ok(json) => {
                st.store
                    .set(&token_key(&token), &json, Some(TOKEN_TTL))
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an app host grant");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            }
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "an app host login could not be stored");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment\n").into_response();
        }
        // One listener serves the portal and the app hosts: the same port.
        let port = self
            .portal_host
            .as_deref()
            .and_then(|h| h.rsplit_once(':'))
            .map(|(_, p)| p)
            .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let to = format!(
            "{}://{}.{domain}{port}{AUTH_PATH}?token={token}&return={}",
            self.scheme,
            self.instance,
            urlencoding::encode(&self.path)
        );
        Redirect::to(&to).into_response()
    }
}

/// App host side: the token trade, then every request of the app.
async fn serve(st: &Arc<AppState>, id: &str, req: Request) -> Response {
    if req.uri().path() == AUTH_PATH {
        return log_in(st, id, req).await;
    }
    let cookie = cookies::read(req.headers(), APP_HOST_COOKIE);
    let Some(session) = session_of(st, id, cookie).await else {
        return (
            StatusCode::UNAUTHORIZED,
            "not logged in on this app's host: open the app again from the portal\n",
        )
            .into_response();
    };
    let mut ctx = super::context::connection(st, &req);
    ctx.session = Some(session.clone());
    let Some(route) = st.manager.route(id).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the app is not running\n").into_response();
    };
    if !may_use(&session.identity, &route.owner) {
        tracing::warn!(event = "access_denied", user = %session.identity.user, instance = %id, "app host access to another user's instance");
        return (
            StatusCode::FORBIDDEN,
            "this app instance belongs to another user\n",
        )
            .into_response();
    }
    // Apps told their public path (`/app_proxy/<id>/`) may ask for it; others ask for `/`.
    let prefix = format!("/app_proxy/{id}");
    let rest_at = match req.uri().path().strip_prefix(&prefix) {
        Some(rest) if rest.starts_with('/') => prefix.len(),
        _ => 0,
    };
    forward(st, &ctx, Caller::of(&session), route, rest_at, req).await
}

/// The portal session behind the app host cookie, when it lives and is for this instance.
async fn session_of(st: &AppState, id: &str, cookie: Option<String>) -> Option<Arc<Session>> {
    let cookie = cookie?;
    let json = st.store.get(&login_key(&cookie)).await.ok()??;
    let grant: Grant = serde_json::from_str(&json).ok()?;
    if grant.instance != id {
        return None;
    }
    let session = st.sessions.load(&grant.session).await.ok()??;
    // Users and admins changed by a config reload apply here too.
    current_session(&st.config(), session, false)
}

/// `AUTH_PATH?token=…&return=…`: a token the portal just made becomes this host's cookie.
async fn log_in(st: &AppState, id: &str, req: Request) -> Response {
    let ctx = super::context::connection(st, &req);
    let query = axum::extract::Query::<AuthQuery>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let refused = || {
        (
            StatusCode::FORBIDDEN,
            "this link has been used or has expired: open the app again from the portal\n",
        )
            .into_response()
    };
    let Some(token) = query.token.as_deref() else {
        return refused();
    };
    // Taken, not read: a token works once, even when two requests race for it.
    let grant = match st.store.take(&token_key(token)).await {
        Ok(Some(json)) => serde_json::from_str::<Grant>(&json).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "an app host login could not be read");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment\n").into_response();
        }
    };
    let Some(grant) = grant.filter(|g| g.instance == id) else {
        return refused();
    };
    let cookie = random_token();
    let stored = match serde_json::to_string(&grant) {
        Ok(json) => {
            st.store
                .set(&login_key(&cookie), &json, Some(LOGIN_TTL))
                .await
        }
        Err(_) => return refused(),
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "an app host login could not be stored");
        return (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment\n").into_response();
    }
    let back = query
        .r#return
        .as_deref()
        .filter(|r| r.starts_with('/') && !r.starts_with("//") && !r.contains('\\'))
        .unwrap_or("/");
    let mut resp = Redirect::to(back).into_response();
    if let Some(c) = cookies::set(
        APP_HOST_COOKIE,
        &cookie,
        ctx.secure,
        st.config().proxy.same_site_cookie,
    ) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::instance_of_host;

    #[test]
    fn only_a_direct_subdomain_names_an_instance() {
        let d = "apps.example.com";
        assert_eq!(instance_of_host("abc.apps.example.com", d), Some("abc"));
        assert_eq!(instance_of_host("apps.example.com", d), None);
        assert_eq!(instance_of_host("x.abc.apps.example.com", d), None);
        assert_eq!(instance_of_host("abcapps.example.com", d), None);
        assert_eq!(instance_of_host("portal.example.com", d), None);
    }
}
