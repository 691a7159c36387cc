//! Login and logout, and the password kind of login method ([`PasswordForm`]).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;

use super::context::RequestCtx;
use super::{AppState, cookies};
use crate::auth::session::{COOKIE_NAME, random_token};
use crate::auth::throttle::Refusal;
use crate::auth::{Session, csrf};
use crate::config::AuthMethod;
use crate::observe::LoginOutcome;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    next: Option<String>,
}

/// Only paths on this server, so the login page cannot bounce users to another site.
///
/// Browsers forgive a lot in a `Location`: they drop tabs and newlines, read `\\` as `/`, and
/// a path that then starts with `//` names another host. So the value is checked as it is and
/// once percent-decoded (a page may decode it again), and anything doubtful becomes `fallback`.
/// Only visible ASCII is kept, which is also what a header value may carry.
pub(super) fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(n)
            if n.bytes().all(|b| b.is_ascii_graphic())
                && is_local_path(n.as_bytes())
                && is_local_path(&urlencoding::decode_binary(n.as_bytes())) =>
        {
            n.to_string()
        }
        _ => fallback.to_string(),
    }
}

/// Starts with exactly one `/`, and has no control character (a browser drops them, which can
/// join `/` and `/`) and no `\\` (a browser reads it as `/`).
fn is_local_path(p: &[u8]) -> bool {
    p.first() == Some(&b'/')
        && p.get(1) != Some(&b'/')
        && p.iter().all(|&b| b >= 0x20 && b != 0x7f && b != b'\\')
}

/// The login form again, with 503: the state store cannot be reached, so nobody can log in.
fn store_unavailable(st: &AppState, ctx: &RequestCtx, next: &str, user: &str) -> Response {
    render_form(
        st,
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        next,
        user,
        Some(super::pages::STORE_UNAVAILABLE),
    )
}

fn render_form(
    st: &AppState,
    ctx: &RequestCtx,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let token = random_token();
    let page = minijinja::context! {
        login_csrf => super::v(&token), next => next, username => username, error => error,
        ..st.page_ctx(None, "", "")
    };
    let mut resp = st.templates.render(status, "login.html", page);
    if let Some(c) = cookies::set(
        csrf::LOGIN_COOKIE,
        &token,
        ctx.secure,
        st.config().proxy.same_site_cookie,
    ) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub async fn form(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    // Without a page to return to, the user goes to `/`, which applies `landing-page`.
    if ctx.session.is_some() || st.config().proxy.authentication == AuthMethod::None {
        return Redirect::to(&safe_next(q.next.as_deref(), "/")).into_response();
    }
    let next = safe_next(q.next.as_deref(), "/");
    st.login.begin(&st, &ctx, &headers, next).await
}

/// The password kind of login method (simple, LDAP, web service): the form here, checked by
/// the [`Authenticator`](crate::auth::Authenticator) on submit and for HTTP Basic.
pub struct PasswordForm;

#[async_trait::async_trait]
impl super::login_method::LoginMethod for PasswordForm {
    async fn begin(
        &self,
        st: &AppState,
        ctx: &RequestCtx,
        _headers: &HeaderMap,
        next: String,
    ) -> Response {
        render_form(st, ctx, StatusCode::OK, &next, "", None)
    }
}

pub async fn submit(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref(), "/");
    let expected = cookies::read(&headers, csrf::LOGIN_COOKIE).unwrap_or_default();
    if !csrf::matches(&expected, f.csrf.as_deref()) {
        return render_form(
            &st,
            &ctx,
            StatusCode::FORBIDDEN,
            &next,
            &f.username,
            Some("The login form expired. Please try again."),
        );
    }
    let user = f.username.trim();
    let wait = match st.throttle.check(user, ctx.client_ip).await {
        Ok(()) => None,
        Err(Refusal::Wait(wait)) => Some(wait),
        Err(Refusal::Store(e)) => {
            tracing::warn!(error = %e, "a login could not be throttled");
            return store_unavailable(&st, &ctx, &next, user);
        }
    };
    if let Some(wait) = wait {
        tracing::warn!(event = "login_throttled", user, ip = %ctx.client_ip, "too many login attempts");
        st.manager
            .metrics()
            .login("form", LoginOutcome::Throttled, user);
        let msg = format!(
            "Too many failed login attempts. Try again in {} seconds.",
            wait.as_secs().max(1)
        );
        return render_form(
            &st,
            &ctx,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            user,
            Some(&msg),
        );
    }
    match st.authenticator().authenticate(user, &f.password).await {
        Ok(identity) => {
            st.throttle.succeeded(user).await;
            tracing::info!(event = "login", user = %identity.user, ip = %ctx.client_ip, "logged in");
            st.manager
                .metrics()
                .login("form", LoginOutcome::Success, &identity.user);
            // A new id at login, so a session id planted before login is worthless.
            if let Some(old) = &ctx.session {
                st.sessions.delete(&old.id).await;
            }
            let session = Session::new(identity);
            if let Err(e) = st.sessions.save(&session).await {
                tracing::warn!(error = %e, "a login could not be stored");
                return store_unavailable(&st, &ctx, &next, user);
            }
            let mut resp = Redirect::to(&next).into_response();
            let same_site = st.config().proxy.same_site_cookie;
            if let Some(c) = cookies::set(COOKIE_NAME, &session.id, ctx.secure, same_site) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            if let Some(c) = cookies::clear(csrf::LOGIN_COOKIE, ctx.secure, same_site) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => {
            tracing::warn!(event = "login_failed", user, ip = %ctx.client_ip, reason = %e, "login failed");
            let (status, outcome) = match e {
                crate::auth::AuthError::BadCredentials => {
                    st.throttle.failed(user, ctx.client_ip).await;
                    (StatusCode::UNAUTHORIZED, LoginOutcome::Refused)
                }
                crate::auth::AuthError::Unavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, LoginOutcome::Unavailable)
                }
            };
            st.manager.metrics().login("form", outcome, user);
            render_form(
                &st,
                &ctx,
                status,
                &next,
                user,
                Some(&format!("{}{}", capitalise(&e.to_string()), ".")),
            )
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// A plain link to /logout must not log anyone out (that would be a CSRF hole); it shows a
/// button that posts the form instead.
pub async fn confirm_logout(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
) -> Response {
    match &ctx.session {
        None => Redirect::to("/login").into_response(),
        Some(s) => super::pages::error_page(
            &st,
            Some(s),
            StatusCode::OK,
            "Log out?",
            "Use the “Log out” button at the top right to end your session.",
        ),
    }
}

pub async fn logout(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    Form(f): Form<LogoutForm>,
) -> Response {
    let Some(session) = &ctx.session else {
        return Redirect::to("/login").into_response();
    };
    if !csrf::matches(&session.csrf, f.csrf.as_deref()) {
        return super::pages::error_page(
            &st,
            Some(session),
            StatusCode::FORBIDDEN,
            "Form expired",
            "Reload the page and try again.",
        );
    }
    st.manager.stop_on_logout(&session.identity.user).await;
    st.proxy
        .closers()
        .close(&crate::proxy::closers::Opener::Session(session.id.clone()));
    st.sessions.delete(&session.id).await;
    tracing::info!(event = "logout", user = %session.identity.user, ip = %ctx.client_ip, "logged out");
    st.manager.metrics().logout(&session.identity.user);
    let mut resp = st.login.after_logout(&st, session).await;
    if let Some(c) = cookies::clear(COOKIE_NAME, ctx.secure, st.config().proxy.same_site_cookie) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/app/x"), "/"), "/app/x");
        assert_eq!(safe_next(Some("//evil.example"), "/"), "/");
        assert_eq!(safe_next(Some("/\\evil.example"), "/"), "/");
        assert_eq!(safe_next(Some("https://evil.example"), "/"), "/");
        assert_eq!(safe_next(None, "/home"), "/home");
        assert_eq!(safe_next(Some("/app/x?a=1%202"), "/"), "/app/x?a=1%202");
        assert_eq!(safe_next(Some("/app/%C3%A9"), "/"), "/app/%C3%A9");
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/%09/evil.example",
            "/%2F/evil.example",
            "/%5C/evil.example",
            "\\/evil.example",
            "/a\\b",
            "/é",
            "",
        ] {
            assert_eq!(safe_next(Some(bad), "/"), "/", "{bad:?}");
        }
    }
}
