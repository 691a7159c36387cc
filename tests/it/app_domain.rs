//! `proxy.app-domain` (issue 18, F6): each instance is served from an origin of its own, so
//! script in an app page cannot act on the portal as its user. Tested with HTTP for the token
//! hand-over and in Chromium with the attack itself, with and without an app domain.

use std::time::Duration;

use crate::common::chrome::Chrome;
use crate::common::*;
use http::header;

const DOMAIN: &str = "apps.vestibule.test";

fn with_app_domain(specs: Vec<vestibule::config::AppSpec>) -> vestibule::config::Config {
    let mut cfg = config(specs);
    cfg.proxy.app_domain = Some(DOMAIN.into());
    cfg
}

/// A client that keeps no cookies and follows no redirects: each cookie is given by hand.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(String::from)
}

/// GET `path` on instance `id`'s own host, with the app host cookie `cookie` if any.
async fn on_app_host(
    server: &TestServer,
    id: &str,
    path: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = bare()
        .get(server.url(path))
        .header(
            header::HOST,
            format!("{id}.{DOMAIN}:{}", server.addr.port()),
        )
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    req.send().await.expect("app host request")
}

/// Navigates to `/app_proxy/<id><rest>` on the portal as `who`; returns the portal's answer.
async fn navigate(who: &Browser, server: &TestServer, id: &str, rest: &str) -> reqwest::Response {
    who.http
        .get(server.url(&format!("/app_proxy/{id}{rest}")))
        .header(
            header::HOST,
            format!("vestibule.test:{}", server.addr.port()),
        )
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .expect("navigate")
}

/// Follows the portal's hand-over to the app host; returns the app host cookie (`name=value`).
async fn log_in_on_app_host(server: &TestServer, id: &str, handed: &reqwest::Response) -> String {
    let to = location(handed);
    let prefix = format!("http://{id}.{DOMAIN}:{}", server.addr.port());
    let path = to.strip_prefix(&prefix).expect("to the app's own host");
    assert!(path.starts_with("/.vestibule/auth?token="), "{to}");
    let traded = on_app_host(server, id, path, None).await;
    assert_eq!(traded.status(), 303);
    assert_eq!(location(&traded), format!("/app_proxy/{id}/hello?x=1"));
    let cookie = set_cookie(&traded, "vestibule_app").expect("an app host cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(
        !cookie.to_ascii_lowercase().contains("domain="),
        "host-only: {cookie}"
    );
    // The token worked once.
    let again = on_app_host(server, id, path, None).await;
    assert_eq!(again.status(), 403, "a token is good for one login");
    cookie.split(';').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_portal_hands_each_app_to_its_own_host_and_keeps_its_session_there() {
    let server = TestServer::start(with_app_domain(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let id = alice.launch_id("echo").await;
    let bobs = bob.launch_id("echo").await;

    let handed = navigate(&alice, &server, &id, "/hello?x=1").await;
    assert_eq!(
        handed.status(),
        303,
        "a page navigation goes to the app's host"
    );
    let cookie = log_in_on_app_host(&server, &id, &handed).await;

    // The app answers on its own host, for alice, and never sees vestibule's cookies.
    let page = on_app_host(
        &server,
        &id,
        &format!("/app_proxy/{id}/hello?x=1"),
        Some(&cookie),
    )
    .await;
    assert_eq!(page.status(), 200);
    let echoed: serde_json::Value = page.json().await.expect("echo");
    assert_eq!(echoed["path"], "/hello?x=1");
    assert_eq!(echoed["headers"]["x-sp-userid"][0], "alice");
    assert!(
        !echoed["headers"].to_string().contains("vestibule_"),
        "{echoed}"
    );
    let root = on_app_host(&server, &id, "/", Some(&cookie)).await;
    assert_eq!(root.status(), 200, "apps served at the root work too");

    // Without the cookie, or with it on another instance's host: not logged in.
    assert_eq!(on_app_host(&server, &id, "/", None).await.status(), 401);
    assert_eq!(
        on_app_host(&server, &bobs, "/", Some(&cookie))
            .await
            .status(),
        401
    );
    // Bob cannot be handed alice's app.
    assert_eq!(navigate(&bob, &server, &id, "/").await.status(), 403);
    // The portal serves no app content to a browser session: a script's request is refused.
    let xhr = alice
        .http
        .get(server.url(&format!("/app_proxy/{id}/hello")))
        .header(header::ACCEPT, "*/*")
        .send()
        .await
        .expect("xhr");
    assert_eq!(xhr.status(), 403, "no app content in the portal's origin");

    // Logging out of the portal logs out of the app host too.
    let out = alice
        .http
        .post(server.url("/logout"))
        .form(&[("_csrf", alice.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert!(out.status().is_redirection(), "{}", out.status());
    assert_eq!(
        on_app_host(&server, &id, "/", Some(&cookie)).await.status(),
        401
    );
    server.shutdown().await;
}

/// The attack of F6 in Chromium: an app page reads the portal's CSRF token with its user's
/// session and mints an API token as that user. It works while apps share the portal's origin
/// (the documented residual risk) and fails once each app has its own.
#[tokio::test]
async fn app_script_cannot_mint_a_token_once_apps_have_their_own_origin() {
    for app_domain in [false, true] {
        let mut attack = process_spec(
            "attack",
            &[
                "python3",
                repo_path("tests/apps/attack/app.py")
                    .to_str()
                    .unwrap_or_default(),
            ],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let portal = format!("http://vestibule.test:{port}");
        if app_domain {
            attack.container_env.insert("PORTAL".into(), portal.clone());
        }
        let cfg = if app_domain {
            with_app_domain(vec![attack])
        } else {
            config(vec![attack])
        };
        let server = TestServer::start_on(cfg, listener).await;
        let chrome = Chrome::start_with(&["--host-resolver-rules=MAP *.test 127.0.0.1"]).await;
        let c = &chrome.client;
        crate::common::app_browser::open_app_at(
            c,
            &format!("{portal}/login"),
            "root",
            "attack",
            None,
        )
        .await;
        let verdict =
            crate::common::app_browser::wait_text(c, "#verdict", |t| t != "working").await;
        let root = Browser::login(&server, "root").await;
        let tokens: Vec<serde_json::Value> =
            root.get("/api/tokens").await.json().await.expect("tokens");
        let stolen = tokens.iter().any(|t| t["name"] == "stolen");
        if app_domain {
            assert!(verdict.starts_with("blocked"), "{verdict}");
            assert!(!stolen, "no token was made: {tokens:?}");
            let here = c
                .execute("return location.hostname", vec![])
                .await
                .expect("the frame's host");
            assert_eq!(
                here.as_str().map(|h| h.ends_with(DOMAIN)),
                Some(true),
                "the app runs on its own host: {here}"
            );
        } else {
            assert!(verdict.starts_with("stolen"), "{verdict}");
            assert!(
                stolen,
                "the residual risk without an app domain: {tokens:?}"
            );
        }
        chrome.stop().await;
        server.shutdown().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
