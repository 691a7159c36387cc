//! API tokens on the web: the `/tokens` page and `/api/tokens`, and reading a bearer token
//! off a request.

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use http::{StatusCode, header};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;

use super::context::{ApiUser, PageUser, RequestCtx};
use super::errors::{ApiError, JsonBody};
use super::pages::{csrf_failure, error_page, not_allowed};
use super::{AppState, v};
use crate::auth::api_tokens::{TOKEN_PREFIX, TokenError, TokenInfo};
use crate::auth::bearer_jwt::JwtBearer;
use crate::auth::{Identity, Session, authorization, csrf};

/// Who a bearer token vestibule accepts acts as: a vestibule API token, or (with
/// `proxy.oauth2`) a JWT from the authorization server. Such a header is taken off the request,
/// so the credential never reaches an app; other bearer tokens (an app's own) pass through.
/// Also returns the id of the vestibule token, when it was one.
pub async fn bearer_identity(
    st: &AppState,
    req: &mut Request,
    ip: IpAddr,
) -> Option<(Identity, Option<String>)> {
    let presented =
        authorization::bearer(req.headers().get(header::AUTHORIZATION)).map(String::from)?;
    if !presented.starts_with(TOKEN_PREFIX) {
        return jwt_identity(st, req, &presented, ip)
            .await
            .map(|identity| (identity, None));
    }
    req.headers_mut().remove(header::AUTHORIZATION);
    match st.api_tokens.authenticate(&presented).await {
        Some((identity, info)) => {
            tracing::debug!(user = %identity.user, token = %info.id, "API token used");
            Some((identity, Some(info.id)))
        }
        None => {
            tracing::warn!(event = "login_failed", via = "api_token", %ip, "unknown or revoked API token");
            None
        }
    }
}

/// Takes the `Authorization` header off a request to an app when it holds a credential
/// vestibule accepts, whether or not this request was authenticated by it: an API token, a JWT
/// for `proxy.oauth2`, or a password when the login takes passwords (browsers replay Basic
/// credentials to every path of the site once vestibule's API asked for them). Any other
/// `Authorization` is the app's own business and passes through.
pub fn strip_own_credentials(st: &AppState, headers: &mut http::HeaderMap) {
    let value = headers.get(header::AUTHORIZATION);
    let ours = match authorization::bearer(value) {
        Some(token) => {
            token.starts_with(TOKEN_PREFIX)
                || (st.jwt_bearer.is_some() && JwtBearer::looks_like_jwt(token))
        }
        None => {
            st.config().proxy.authentication.takes_passwords()
                && authorization::credentials_of(value, "Basic").is_some()
        }
    };
    if ours {
        headers.remove(header::AUTHORIZATION);
    }
}

async fn jwt_identity(
    st: &AppState,
    req: &mut Request,
    token: &str,
    ip: IpAddr,
) -> Option<Identity> {
    let jwt = st.jwt_bearer.as_ref()?;
    if !JwtBearer::looks_like_jwt(token) {
        return None;
    }
    req.headers_mut().remove(header::AUTHORIZATION);
    match jwt.authenticate(token).await {
        Ok((user, groups)) => {
            let is_admin = st.config().proxy.is_admin(&user, &groups);
            Some(Identity {
                user,
                groups,
                is_admin,
            })
        }
        Err(e) => {
            tracing::warn!(event = "login_failed", via = "oauth2_jwt", %ip, reason = %e, "bearer JWT refused");
            None
        }
    }
}

/// The identity a new token will act as: the caller's own, or (admins only) another user's,
/// with the groups `proxy.users` gives them.
fn owner_for(st: &AppState, who: &Identity, other: Option<&str>) -> Result<Identity, TokenError> {
    match other
        .map(str::trim)
        .filter(|u| !u.is_empty() && *u != who.user)
    {
        None => Ok(who.clone()),
        Some(_) if !who.is_admin => Err(TokenError::Forbidden),
        Some(user) => {
            let groups = st
                .config()
                .proxy
                .users
                .iter()
                .find(|u| u.name == user)
                .map(|u| u.groups.clone())
                .unwrap_or_default();
            Ok(Identity {
                user: user.to_string(),
                is_admin: st.config().proxy.is_admin(user, &groups),
                groups,
            })
        }
    }
}

fn status(e: &TokenError) -> StatusCode {
    match e {
        TokenError::NotFound => StatusCode::NOT_FOUND,
        TokenError::Forbidden => StatusCode::FORBIDDEN,
        TokenError::BadName => StatusCode::BAD_REQUEST,
        TokenError::TooMany => StatusCode::TOO_MANY_REQUESTS,
        TokenError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn no_tokens_by_token(ctx: &RequestCtx) -> Result<(), ApiError> {
    if ctx.via_token {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "API tokens cannot create or revoke API tokens; log in",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct AllQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/tokens` (`?all=true`: everyone's, for admins).
pub async fn api_list(
    State(st): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Query(q): Query<AllQuery>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let tokens = st.api_tokens.list(&who, q.all).await;
    tokens
        .map(Json)
        .map_err(|e| ApiError::new(status(&e), e.to_string()))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    /// Admins only: make the token for this user.
    user: Option<String>,
}

/// `POST /api/tokens` `{"name": "..."}` → the token, shown this once.
pub async fn api_create(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    no_tokens_by_token(&ctx)?;
    let (secret, info) = create(&st, &who, &body.name, body.user.as_deref())
        .await
        .map_err(|e| ApiError::new(status(&e), e.to_string()))?;
    let mut json = serde_json::to_value(&info).unwrap_or_default();
    json["token"] = serde_json::Value::String(secret);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// `DELETE /api/tokens/<id>`.
pub async fn api_revoke(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    ApiUser(who): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    no_tokens_by_token(&ctx)?;
    let info = revoke(&st, &who, &id)
        .await
        .map_err(|e| ApiError::new(status(&e), e.to_string()))?;
    Ok(Json(serde_json::json!({ "status": "revoked", "id": info.id })).into_response())
}

async fn create(
    st: &AppState,
    who: &Identity,
    name: &str,
    for_user: Option<&str>,
) -> Result<(String, TokenInfo), TokenError> {
    let owner = owner_for(st, who, for_user)?;
    let (secret, info) = st.api_tokens.create(owner, name).await?;
    tracing::info!(event = "api_token_created", by = %who.user, owner = %info.owner, token = %info.id, name = %info.name, "API token created");
    Ok((secret, info))
}

async fn revoke(st: &AppState, who: &Identity, id: &str) -> Result<TokenInfo, TokenError> {
    let info = st.api_tokens.revoke(who, id).await?;
    st.proxy
        .closers()
        .close(&crate::proxy::closers::Opener::Token(info.id.clone()));
    tracing::info!(event = "api_token_revoked", by = %who.user, owner = %info.owner, token = %info.id, "API token revoked");
    Ok(info)
}

/// `GET /tokens`: the user's tokens (everyone's for admins) and a form for a new one.
pub async fn page(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    PageUser(s): PageUser,
) -> Response {
    render(&st, &ctx, &s, StatusCode::OK, None, None).await
}

async fn render(
    st: &AppState,
    ctx: &RequestCtx,
    s: &Session,
    status: StatusCode,
    created: Option<(&str, &TokenInfo)>,
    error: Option<&str>,
) -> Response {
    if ctx.via_token {
        return not_allowed(st, s, "Log in to manage API tokens.");
    }
    let now = crate::clock::now_unix_ms();
    let (listed, unlisted) = match st.api_tokens.list(&s.identity, true).await {
        Ok(listed) => (listed, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let error = error.or(unlisted.as_deref());
    let tokens: Vec<minijinja::Value> = listed
        .into_iter()
        .map(|t| {
            minijinja::context! {
                id => t.id, owner => t.owner, name => t.name,
                age_secs => now.saturating_sub(t.created_unix_ms) / 1000,
            }
        })
        .collect();
    let page = minijinja::context! {
        tokens => tokens,
        created_token => created.map(|(secret, _)| secret),
        created => v(&created.map(|(_, info)| info)),
        error => error,
        ..st.page_ctx(Some(&s.identity), &s.csrf, "tokens")
    };
    st.templates.render(status, "tokens.html", page)
}

/// Token forms are for a logged-in browser: not for a caller holding a token, and only with the
/// page's CSRF token.
fn refuse_form(
    st: &AppState,
    ctx: &RequestCtx,
    s: &Session,
    csrf_sent: Option<&str>,
) -> Option<Response> {
    if ctx.via_token {
        return Some(not_allowed(st, s, "Log in to manage API tokens."));
    }
    if !csrf::matches(&s.csrf, csrf_sent) {
        return Some(csrf_failure(st, s));
    }
    None
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    user: Option<String>,
}

/// `POST /tokens`: makes a token and shows it, once.
pub async fn page_create(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Form(f): Form<NewTokenForm>,
) -> Response {
    if let Some(refused) = refuse_form(&st, &ctx, &s, f.csrf.as_deref()) {
        return refused;
    }
    match create(&st, &s.identity, &f.name, f.user.as_deref()).await {
        Ok((secret, info)) => {
            let mut resp =
                render(&st, &ctx, &s, StatusCode::OK, Some((&secret, &info)), None).await;
            // The page holds a secret: keep it out of caches and the back button.
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => render(&st, &ctx, &s, status(&e), None, Some(&e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /tokens/<id>/revoke`.
pub async fn page_revoke(
    State(st): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    PageUser(s): PageUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = refuse_form(&st, &ctx, &s, f.csrf.as_deref()) {
        return refused;
    }
    match revoke(&st, &s.identity, &id).await {
        Ok(_) | Err(TokenError::NotFound) => Redirect::to("/tokens").into_response(),
        Err(e) => error_page(&st, Some(&s), status(&e), "Cannot revoke", &e.to_string()),
    }
}
