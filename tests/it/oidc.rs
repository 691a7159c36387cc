//! OpenID Connect login against a real provider (django-oauth-toolkit, see
//! tests/common/oidc_provider.rs): the code flow with PKCE through vestibule, groups from a
//! nested roles claim, the access token in the app's environment, refresh, RP-initiated
//! logout, and the attacks the flow's state, nonce and client secret are there to stop.

use crate::common;

use crate::common::oidc_provider::{self, OidcProvider, absolute, location, login_at_provider};
use crate::common::*;
use std::time::Duration;
use vestibule::config::{AuthMethod, Config, OpenIdConfig, Secret};

/// Two echo apps: one for the `analysts` group, one for `sales`.
pub(crate) fn oidc_config(provider: &OidcProvider) -> Config {
    let mut analysts = echo_spec("analysts-app");
    analysts.access_groups = vec!["analysts".into()];
    let mut sales = echo_spec("sales-app");
    sales.access_groups = vec!["sales".into()];
    let mut cfg = config(vec![analysts, sales]);
    cfg.proxy.authentication = AuthMethod::OpenId;
    cfg.proxy.users.clear();
    cfg.proxy.openid = Some(OpenIdConfig {
        issuer: Some(provider.issuer()),
        auth_url: None,
        token_url: None,
        jwks_url: None,
        userinfo_url: None,
        client_id: oidc_provider::CLIENT_ID.into(),
        client_secret: Secret(oidc_provider::CLIENT_SECRET.into()),
        scopes: vec!["email".into(), "profile".into()],
        username_attribute: "preferred_username".into(),
        roles_claim: Some("realm_access.roles".into()),
        logout_url: Some(provider.url("/o/logout/")),
    });
    cfg
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// vestibule's /login answers with a redirect to the provider's authorization endpoint.
async fn authorize_url(http: &reqwest::Client, server: &TestServer) -> String {
    let resp = http.get(server.url("/login")).send().await.expect("login");
    assert_eq!(
        resp.status(),
        303,
        "/login sends the browser to the provider"
    );
    location(&resp).to_string()
}

/// Logs `user` in through the provider; returns a client holding vestibule's session.
async fn oidc_login(server: &TestServer, user: &str) -> Browser {
    let http = client();
    let url = authorize_url(&http, server).await;
    let resp = login_at_provider(&http, &url, user, oidc_provider::PASSWORD).await;
    assert_eq!(resp.status(), 303, "the callback logs {user} in");
    let mut b = Browser {
        http,
        base: server.url(""),
        csrf: String::new(),
    };
    let page = b.get("/").await.text().await.expect("portal");
    b.csrf = hidden_field(&page, "_csrf").expect("csrf token on the portal");
    b
}

async fn app_env(b: &Browser, instance: &serde_json::Value) -> serde_json::Value {
    let id = instance["id"].as_str().expect("id");
    let echo: serde_json::Value = b
        .get(&format!("/app_proxy/{id}/"))
        .await
        .json()
        .await
        .expect("echo");
    echo["env"].clone()
}

async fn userinfo(provider: &OidcProvider, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(provider.url("/o/userinfo/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_logs_in_maps_groups_passes_the_token_and_logs_out_at_the_provider() {
    let provider = OidcProvider::shared().await;
    let server = TestServer::start(oidc_config(provider)).await;

    let http = client();
    let url = authorize_url(&http, &server).await;
    assert!(url.starts_with(&provider.url("/o/authorize/")), "{url}");
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A",
        "%2Flogin%2Foauth2%2Fcode%2Fshinyproxy",
    ] {
        assert!(url.contains(part), "authorization URL lacks {part}: {url}");
    }
    let behind_lb = client()
        .get(server.url("/login"))
        .header("X-Forwarded-Host", "apps.example.com")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("login behind a load balancer");
    assert!(
        location(&behind_lb).contains(
            "redirect_uri=https%3A%2F%2Fapps.example.com%2Flogin%2Foauth2%2Fcode%2Fshinyproxy"
        ),
        "the public name goes into the redirect URI: {}",
        location(&behind_lb)
    );
    let resp = login_at_provider(&http, &url, "alice", oidc_provider::PASSWORD).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/", "lands on the portal");
    let mut b = Browser {
        http,
        base: server.url(""),
        csrf: String::new(),
    };

    let portal = b.get("/").await.text().await.expect("portal");
    assert!(portal.contains("alice"), "the portal names the user");
    assert!(
        portal.contains("App analysts-app"),
        "analysts see their app"
    );
    assert!(!portal.contains("App sales-app"), "but not the sales app");
    b.csrf = hidden_field(&portal, "_csrf").expect("csrf");

    let instance = b.launch("analysts-app").await;
    assert_eq!(instance["status"], "Up", "{instance}");
    let env = app_env(&b, &instance).await;
    assert_eq!(env["SHINYPROXY_USERNAME"], "alice");
    assert_eq!(env["SHINYPROXY_USERGROUPS"], "analysts");
    let token = env["SHINYPROXY_OIDC_ACCESS_TOKEN"]
        .as_str()
        .expect("the app receives the access token");
    let info = userinfo(provider, token).await;
    assert_eq!(
        info.status(),
        200,
        "the app's token is the provider's real token"
    );
    let info: serde_json::Value = info.json().await.expect("userinfo json");
    assert_eq!(info["preferred_username"], "alice");

    let resp = b.api(reqwest::Method::POST, "/api/proxy/sales-app").await;
    assert_eq!(resp.status(), 403, "alice is not in sales");

    let resp = b
        .http
        .post(server.url("/logout"))
        .form(&[("_csrf", b.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 303);
    let to = location(&resp).to_string();
    assert!(
        to.starts_with(&provider.url("/o/logout/?id_token_hint=")),
        "logout goes on to the provider's logout: {to}"
    );
    let at_provider = b.http.get(&to).send().await.expect("provider logout");
    assert!(
        at_provider.status().is_success() || at_provider.status().is_redirection(),
        "the provider accepts the RP-initiated logout: {}",
        at_provider.status()
    );
    let after = b.get("/").await;
    assert_eq!(after.status(), 303, "the vestibule session is gone");
    assert!(location(&after).starts_with("/login"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_state_and_a_replayed_callback_are_refused() {
    let provider = OidcProvider::shared().await;
    let server = TestServer::start(oidc_config(provider)).await;

    // The provider hands back whatever state it was given; vestibule must notice.
    let http = client();
    let url = authorize_url(&http, &server).await;
    let state_at = url.find("state=").expect("state") + "state=".len();
    let state_end = url[state_at..]
        .find('&')
        .map_or(url.len(), |i| state_at + i);
    let forged = format!("{}forged{}", &url[..state_at], &url[state_end..]);
    let resp = login_at_provider(&http, &forged, "alice", oidc_provider::PASSWORD).await;
    assert_eq!(resp.status(), 400, "a forged state is refused");
    let body = resp.text().await.expect("body");
    assert!(body.contains("state mismatch"), "{body}");
    let after = http.get(server.url("/")).send().await.expect("portal");
    assert_eq!(after.status(), 303, "and nobody is logged in");

    // A good login, then its callback URL again: from another browser and from the same one.
    let http = client();
    let url = authorize_url(&http, &server).await;
    let callback = capture_callback(&http, &url).await;
    let first = http.get(&callback).send().await.expect("callback");
    assert_eq!(first.status(), 303, "the real callback logs in");
    let again = http.get(&callback).send().await.expect("replay");
    assert_eq!(again.status(), 400, "a callback is good once");
    let thief = client()
        .get(&callback)
        .send()
        .await
        .expect("replay elsewhere");
    assert_eq!(thief.status(), 400, "a stolen callback URL is worthless");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_started_in_two_tabs_of_one_browser_both_complete() {
    let provider = OidcProvider::shared().await;
    let server = TestServer::start(oidc_config(provider)).await;
    let http = client();
    let first_tab = authorize_url(&http, &server).await;
    let second_tab = authorize_url(&http, &server).await;
    let resp = login_at_provider(&http, &second_tab, "alice", oidc_provider::PASSWORD).await;
    assert_eq!(resp.status(), 303, "the second tab logs in");
    // The first tab goes on; the provider knows alice now and sends it straight back.
    let mut resp = http.get(&first_tab).send().await.expect("authorize");
    let mut url = first_tab.clone();
    while resp.status().is_redirection() && !url.contains("/login/oauth2/code/") {
        url = absolute(&url, location(&resp));
        resp = http.get(&url).send().await.expect("follow");
    }
    assert!(url.contains("/login/oauth2/code/shinyproxy"), "{url}");
    assert_eq!(resp.status(), 303, "the first tab's login completes too");
    server.shutdown().await;
}

/// Logs in at the provider but stops before vestibule's callback; returns its URL.
pub(crate) async fn capture_callback(http: &reqwest::Client, authorize: &str) -> String {
    let mut resp = http.get(authorize).send().await.expect("authorize");
    let mut url = authorize.to_string();
    while resp.status().is_redirection() {
        url = absolute(&url, location(&resp));
        resp = http.get(&url).send().await.expect("follow");
    }
    let page = resp.text().await.expect("login page");
    let token = hidden_field(&page, "csrfmiddlewaretoken").expect("csrf");
    let next = hidden_field(&page, "next")
        .unwrap_or_default()
        .replace("&amp;", "&");
    let action = absolute(&url, "/accounts/login/");
    let mut resp = http
        .post(&action)
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("username", "bob"),
            ("password", oidc_provider::PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .expect("login");
    url = action;
    loop {
        assert!(resp.status().is_redirection(), "{}", resp.status());
        let next = absolute(&url, location(&resp));
        if next.contains("/login/oauth2/code/shinyproxy") {
            return next;
        }
        resp = http.get(&next).send().await.expect("follow");
        url = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_refused_by_the_provider() {
    let provider = OidcProvider::shared().await;
    let mut cfg = oidc_config(provider);
    if let Some(o) = cfg.proxy.openid.as_mut() {
        o.client_secret = Secret("not-the-secret".into());
    }
    let port = common::metrics::management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    let http = client();
    let url = authorize_url(&http, &server).await;
    let resp = login_at_provider(&http, &url, "alice", oidc_provider::PASSWORD).await;
    assert_eq!(resp.status(), 401);
    let body = resp.text().await.expect("body");
    assert!(body.contains("refused the login"), "{body}");
    assert!(!body.contains("not-the-secret"), "the secret is not shown");
    let text = common::metrics::scrape(port).await;
    assert_eq!(
        common::metrics::sample(
            &text,
            r#"vestibule_logins_total{method="openid",outcome="refused"}"#
        ),
        Some(1.0),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_new_apps_get_the_new_one() {
    let provider = OidcProvider::start(2).await;
    let server = TestServer::start(oidc_config(&provider)).await;
    let b = oidc_login(&server, "root").await;
    let first = b.launch("analysts-app").await;
    let old = app_env(&b, &first).await["SHINYPROXY_OIDC_ACCESS_TOKEN"]
        .as_str()
        .expect("token")
        .to_string();

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        userinfo(&provider, &old).await.status(),
        401,
        "the old token expired"
    );
    let portal = b.get("/").await;
    assert_eq!(
        portal.status(),
        200,
        "the session lives on through a refresh"
    );

    // A second instance beside the first, under its own name.
    let second = b.launch_named("analysts-app", "second").await;
    let new = app_env(&b, &second).await["SHINYPROXY_OIDC_ACCESS_TOKEN"]
        .as_str()
        .expect("token")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        userinfo(&provider, &new).await.status(),
        200,
        "the new token works"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_ends_when_the_token_expires_and_cannot_be_refreshed() {
    let mut provider = OidcProvider::start(2).await;
    let server = TestServer::start(oidc_config(&provider)).await;
    let b = oidc_login(&server, "alice").await;
    assert_eq!(b.get("/").await.status(), 200);
    provider.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let portal = b.get("/").await;
    assert_eq!(portal.status(), 303, "the expired login is over");
    assert!(location(&portal).starts_with("/login"));
    let api = b.get("/api/proxy").await;
    assert_eq!(api.status(), 401);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_cannot_be_reached_is_reported_as_unavailable() {
    // A port nothing listens on: bound, then released.
    let port = crate::common::ports::free_port();
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.proxy.authentication = AuthMethod::OpenId;
    cfg.proxy.openid = Some(OpenIdConfig {
        issuer: Some(format!("http://127.0.0.1:{port}/o")),
        auth_url: None,
        token_url: None,
        jwks_url: None,
        userinfo_url: None,
        client_id: "x".into(),
        client_secret: Secret("y".into()),
        scopes: vec![],
        username_attribute: "email".into(),
        roles_claim: None,
        logout_url: None,
    });
    let server = TestServer::start(cfg).await;
    let resp = client()
        .get(server.url("/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.expect("body");
    assert!(body.contains("identity provider is unavailable"), "{body}");
    assert!(!body.contains("wrong"), "never a wrong password: {body}");
    let basic = client()
        .get(server.url("/api/proxy"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .expect("basic");
    assert_eq!(basic.status(), 401);
    let body = basic.text().await.expect("body");
    assert!(
        body.contains("API token"),
        "scripts are told what to use: {body}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_endpoints_and_a_comma_separated_roles_claim_work_without_discovery() {
    let provider = OidcProvider::shared().await;
    let mut cfg = oidc_config(provider);
    if let Some(o) = cfg.proxy.openid.as_mut() {
        o.issuer = None;
        o.auth_url = Some(provider.url("/o/authorize/"));
        o.token_url = Some(provider.url("/o/token/"));
        o.jwks_url = Some(provider.url("/o/.well-known/jwks.json"));
        o.userinfo_url = Some(provider.url("/o/userinfo/"));
        o.roles_claim = Some("roles_csv".into());
        o.username_attribute = "email".into();
    }
    let server = TestServer::start(cfg).await;
    let b = oidc_login(&server, "bob").await;
    let specs: serde_json::Value = data(b.get("/api/proxyspec").await).await;
    let ids: Vec<&str> = specs
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["sales-app"], "bob (sales) sees only the sales app");
    let portal = b.get("/").await.text().await.expect("portal");
    assert!(portal.contains("bob@example.org"), "named by e-mail");
    server.shutdown().await;
}

/// A JWT signed with `key` under the provider's key id.
fn sign(kid: &str, key: &jsonwebtoken::EncodingKey, claims: serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_bearer_jwts_signed_by_the_provider_are_accepted_and_bad_ones_refused() {
    let provider = OidcProvider::shared().await;
    let mut cfg = oidc_config(provider);
    // Password logins for people; JWTs from the authorization server for scripts.
    cfg.proxy.authentication = AuthMethod::Simple;
    cfg.proxy.openid = None;
    cfg.proxy.oauth2 = Some(vestibule::config::OAuth2Config {
        jwks_url: provider.url("/o/.well-known/jwks.json"),
        issuer: Some(provider.issuer()),
        audience: Some("vestibule-api".into()),
        username_attribute: "preferred_username".into(),
        roles_claim: Some("groups".into()),
    });
    let server = TestServer::start(cfg).await;

    let jwks: serde_json::Value = reqwest::get(provider.url("/o/.well-known/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_string();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&provider.signing_key_pem()).expect("key");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |aud: &str, exp: u64| {
        serde_json::json!({
            "iss": provider.issuer(), "aud": aud, "exp": exp, "iat": now,
            "sub": "42", "preferred_username": "carol", "groups": ["sales"],
        })
    };
    let call = |token: String| {
        let url = server.url("/api/proxyspec");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("call")
        }
    };

    let good = call(sign(&kid, &key, claims("vestibule-api", now + 60))).await;
    assert_eq!(
        good.status(),
        200,
        "a token signed by the provider is accepted"
    );
    let specs = data(good).await;
    assert_eq!(specs[0]["id"], "sales-app", "with its groups: {specs}");
    assert_eq!(specs.as_array().map(Vec::len), Some(1), "{specs}");

    let expired = call(sign(&kid, &key, claims("vestibule-api", now - 120))).await;
    assert_eq!(expired.status(), 401, "an expired token is refused");
    let elsewhere = call(sign(&kid, &key, claims("another-api", now + 60))).await;
    assert_eq!(
        elsewhere.status(),
        401,
        "a token for another audience is refused"
    );
    let good_token = sign(&kid, &key, claims("vestibule-api", now + 60));
    let mut parts: Vec<String> = good_token.split('.').map(String::from).collect();
    let mut forged_claims = claims("vestibule-api", now + 60);
    forged_claims["groups"] = serde_json::json!(["admins"]);
    parts[1] = base64_url(&forged_claims.to_string());
    let tampered = call(parts.join(".")).await;
    assert_eq!(
        tampered.status(),
        401,
        "a token whose claims were changed is refused"
    );
    // The public key as an HMAC secret: the classic algorithm-confusion forgery.
    let public_jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims("vestibule-api", now + 60),
        &jsonwebtoken::EncodingKey::from_secret(
            serde_json::to_string(&public_jwk).expect("jwk").as_bytes(),
        ),
    )
    .expect("hs256");
    assert_eq!(
        call(confused).await.status(),
        401,
        "HMAC tokens are refused"
    );
    server.shutdown().await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn check_reports_a_missing_client_id_and_endpoint_with_their_keys() {
    let yaml = "proxy:\n  authentication: openid\n  openid:\n    auth-url: https://idp.example/auth\n    client-secret: x\n";
    let loaded = vestibule::config::load_str(
        std::path::Path::new("application.yml"),
        yaml,
        &std::collections::HashMap::<String, String>::new(),
    );
    let Err(err) = loaded else {
        panic!("an incomplete openid section is an error");
    };
    let text = err.to_string();
    assert!(text.contains("proxy.openid.client-id"), "{text}");
    assert!(text.contains("proxy.openid.token-url"), "{text}");
    assert!(
        text.contains("application.yml:4:"),
        "points into the section: {text}"
    );
    assert!(!text.contains("client-secret: x"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_oidc_login_ends_on_the_portal_with_only_the_permitted_apps() {
    use crate::common::chrome::Chrome;
    use fantoccini::Locator;

    let provider = OidcProvider::shared().await;
    let server = TestServer::start(oidc_config(provider)).await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    c.goto(&server.url("/")).await.expect("open vestibule");

    // vestibule sends the browser to the provider's own login page.
    let wait = Duration::from_secs(20);
    chrome.wait_for("#provider-login", wait).await;
    let at = c.current_url().await.expect("url").to_string();
    assert!(at.starts_with(&provider.url("/accounts/login/")), "{at}");
    c.find(Locator::Css("#id_username"))
        .await
        .expect("user field")
        .send_keys("bob")
        .await
        .expect("type user");
    c.find(Locator::Css("#id_password"))
        .await
        .expect("password field")
        .send_keys(oidc_provider::PASSWORD)
        .await
        .expect("type password");
    c.find(Locator::Css("#provider-login"))
        .await
        .expect("button")
        .click()
        .await
        .expect("sign in");

    chrome.wait_for("#tile-sales-app", wait).await;
    chrome.screenshot("oidc-portal").await;
    assert_eq!(
        c.current_url().await.expect("url").as_str(),
        server.url("/"),
        "back on vestibule's portal"
    );
    let tiles = c.find_all(Locator::Css(".tile h2")).await.expect("tiles");
    let mut names = Vec::new();
    for t in tiles {
        names.push(t.text().await.expect("tile text"));
    }
    assert_eq!(
        names,
        ["App sales-app"],
        "bob (sales) sees only the sales app"
    );
    let who = c
        .find(Locator::Css(".who .user"))
        .await
        .expect("user name")
        .text()
        .await
        .expect("text");
    assert_eq!(who, "bob");
    chrome.stop().await;
    server.shutdown().await;
}

#[test]
fn check_requires_a_jwks_url_for_oauth2_bearer_tokens() {
    let yaml = "proxy:\n  oauth2:\n    resource-id: api\n";
    let loaded = vestibule::config::load_str(
        std::path::Path::new("application.yml"),
        yaml,
        &std::collections::HashMap::<String, String>::new(),
    );
    let Err(err) = loaded else {
        panic!("proxy.oauth2 without jwks-url is an error");
    };
    let text = err.to_string();
    assert!(text.contains("proxy.oauth2.jwks-url"), "{text}");
}

/// A token endpoint that answers any code with the ID token the test chose, signed with the
/// provider's own key, and a userinfo endpoint for the same subject: it lets a test send
/// vestibule an ID token a real provider would never issue.
struct FakeTokenEndpoint {
    addr: std::net::SocketAddr,
    claims: std::sync::Arc<parking_lot::Mutex<serde_json::Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeTokenEndpoint {
    async fn start(kid: String, key: jsonwebtoken::EncodingKey) -> Self {
        use axum::routing::{get, post};
        let claims = std::sync::Arc::new(parking_lot::Mutex::new(serde_json::Value::Null));
        let for_token = claims.clone();
        let app = axum::Router::new()
            .route(
                "/token",
                post(move || {
                    let id_token = sign(&kid, &key, for_token.lock().clone());
                    async move {
                        axum::Json(serde_json::json!({
                            "access_token": "fake-access-token",
                            "token_type": "Bearer",
                            "expires_in": 300,
                            "id_token": id_token,
                        }))
                    }
                }),
            )
            .route(
                "/userinfo",
                get(|| async {
                    axum::Json(
                        serde_json::json!({ "sub": "fake-sub", "preferred_username": "mallory" }),
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, claims, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for FakeTokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A query parameter of a URL, still percent-encoded.
fn query_param(url: &str, name: &str) -> String {
    let marker = format!("{name}=");
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&marker))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .to_string()
}

/// One claim of an ID token and the value it gets instead of the right one.
type ClaimChange = (&'static str, serde_json::Value);

/// The code flow with an ID token the provider never issued: vestibule must check its nonce,
/// issuer and audience, not only its signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_with_a_wrong_nonce_issuer_or_audience_are_refused() {
    let provider = OidcProvider::shared().await;
    let jwks: serde_json::Value = reqwest::get(provider.url("/o/.well-known/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_string();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&provider.signing_key_pem()).expect("key");
    let fake = FakeTokenEndpoint::start(kid, key).await;
    let mut cfg = oidc_config(provider);
    if let Some(o) = cfg.proxy.openid.as_mut() {
        // Discovery still comes from the real provider: its issuer and its signing keys.
        o.token_url = Some(fake.url("/token"));
        o.userinfo_url = Some(fake.url("/userinfo"));
    }
    let server = TestServer::start(cfg).await;

    // Each case: what to change in an otherwise good ID token, and whether it logs in.
    let cases: [(&str, Option<ClaimChange>, bool); 4] = [
        ("a good token", None, true),
        (
            "a wrong nonce",
            Some(("nonce", "not-the-nonce".into())),
            false,
        ),
        (
            "a wrong issuer",
            Some(("iss", "http://evil.example/o".into())),
            false,
        ),
        (
            "a wrong audience",
            Some(("aud", "another-client".into())),
            false,
        ),
    ];
    for (what, change, logs_in) in cases {
        let http = client();
        let authorize = authorize_url(&http, &server).await;
        let state = query_param(&authorize, "state");
        let nonce = query_param(&authorize, "nonce");
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = serde_json::json!({
            "iss": provider.issuer(), "aud": oidc_provider::CLIENT_ID, "sub": "fake-sub",
            "nonce": nonce, "iat": now, "exp": now + 300, "preferred_username": "mallory",
        });
        if let Some((claim, value)) = change {
            claims[claim] = value;
        }
        *fake.claims.lock() = claims;
        let callback = server.url(&format!(
            "/login/oauth2/code/shinyproxy?code=any-code&state={state}"
        ));
        let resp = http.get(&callback).send().await.expect("callback");
        let portal = http.get(server.url("/")).send().await.expect("portal");
        if logs_in {
            assert_eq!(resp.status(), 303, "{what} logs in");
            assert_eq!(portal.status(), 200, "{what} logs in");
        } else {
            assert!(
                matches!(resp.status().as_u16(), 400 | 401),
                "{what} is refused, not answered with {}",
                resp.status()
            );
            assert_eq!(portal.status(), 303, "{what}: nobody is logged in");
        }
    }
    server.shutdown().await;
}
