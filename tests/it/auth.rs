//! Login, sessions and forms as a browser and an attacker see them.

use crate::common::*;

fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_and_secure_behind_https() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let b = Browser::new(&server);
    let resp = b.try_login("alice", PASSWORD).await;
    assert_eq!(resp.status(), 303);
    let cookie = set_cookie(&resp, "vestibule_session");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    // Behind a TLS-terminating load balancer.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = http
        .get(server.url("/login"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("login page");
    let csrf_cookie = set_cookie(&page, "vestibule_login_csrf");
    assert!(csrf_cookie.contains("Secure"), "{csrf_cookie}");
    let token = hidden_field(&page.text().await.expect("html"), "_csrf").expect("token");
    let resp = http
        .post(server.url("/login"))
        .header("X-Forwarded-Proto", "https")
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("_csrf", &token),
        ])
        .send()
        .await
        .expect("login");
    assert!(set_cookie(&resp, "vestibule_session").contains("Secure"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_attempts_are_throttled() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let b = Browser::new(&server);
    let wrong = b.try_login("alice", "guess").await;
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.expect("html");
    assert!(page.contains("Wrong user name or password"), "{page}");
    let unknown = b.try_login("mallory", "guess").await;
    assert_eq!(
        unknown.status(),
        401,
        "unknown users look the same as wrong passwords"
    );
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(b.try_login("alice", "guess").await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Even the right password waits out the throttle…
    let throttled = b.try_login("alice", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let page = throttled.text().await.expect("html");
    let wait = seconds_to_wait(&page);
    assert!((1..=60).contains(&wait), "a wait within the minute: {page}");
    // …and is let in once the wait it was told has passed.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let let_in = eventually(std::time::Duration::from_secs(3), || async {
        b.try_login("alice", PASSWORD).await.status() == 303
    })
    .await;
    assert!(let_in, "still throttled {wait} s after being told to wait");
    server.shutdown().await;
}

/// The N of "Try again in N seconds." on a throttled login page.
fn seconds_to_wait(page: &str) -> u64 {
    let after = page
        .split("Try again in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no wait on the page: {page}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number of seconds: {after}"))
}

/// Logging in again gives a new session id and deletes the old one, so a session id an
/// attacker planted or saw before the login is worthless after it.
#[tokio::test]
async fn logging_in_replaces_the_session_and_the_old_cookie_is_dead() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    // A session id the victim's browser holds before logging in (planted, or left over).
    let old = session_cookie(&server, "alice").await;

    // The victim's browser gets the login form, then logs in as bob while sending that
    // cookie (a browser holding a live session is not shown the form at all).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http
        .get(server.url("/login"))
        .send()
        .await
        .expect("login form");
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| !c.starts_with("vestibule_session="))
        .and_then(|c| c.split(';').next())
        .expect("the login form's cookie")
        .to_string();
    let page = form.text().await.expect("login page");
    let token = hidden_field(&page, "_csrf").expect("login csrf");
    let second = http
        .post(server.url("/login"))
        .header("cookie", format!("{old}; {login_cookie}"))
        .form(&[
            ("username", "bob"),
            ("password", PASSWORD),
            ("_csrf", &token),
            ("next", "/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(second.status(), 303);
    let new = set_cookie(&second, "vestibule_session");
    let new = new.split(';').next().expect("cookie pair").to_string();
    assert!(new.len() > "vestibule_session=".len(), "no new session");
    assert_ne!(new, old, "the session id did not change at login");

    let with = |cookie: String| {
        let url = server.url("/");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("portal")
                .status()
        }
    };
    assert_eq!(with(new).await, 200, "the new session works");
    assert_eq!(with(old).await, 303, "the old session still works");
    server.shutdown().await;
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(server.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(
        login.status(),
        403,
        "a login without the form's token could be forged"
    );

    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let forged = alice
        .http
        .post(server.url(&format!("/my-apps/{id}/stop")))
        .form(&[("_csrf", "forged")])
        .send()
        .await
        .expect("stop");
    assert_eq!(forged.status(), 403);
    let logout = alice
        .http
        .post(server.url("/logout"))
        .form(&[("reason", "forged")])
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 403);
    assert_eq!(
        alice.get(&format!("/app_proxy/{id}/")).await.status(),
        200,
        "still logged in and running"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn only_admins_see_the_admin_page_and_stop_other_users_apps() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let root = Browser::login(&server, "root").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();

    assert_eq!(bob.get("/admin").await.status(), 403);
    let bob_stop = bob
        .http
        .post(server.url(&format!("/admin/instances/{id}/stop")))
        .form(&[("_csrf", bob.csrf.as_str())])
        .send()
        .await
        .expect("stop");
    assert_eq!(bob_stop.status(), 403);

    let page = root.get("/admin").await.text().await.expect("admin page");
    assert!(page.contains(&format!("instance-{id}")) && page.contains("alice"));
    let stop = root
        .http
        .post(server.url(&format!("/admin/instances/{id}/stop")))
        .form(&[("_csrf", root.csrf.as_str())])
        .send()
        .await
        .expect("stop");
    assert_eq!(stop.status(), 303);
    assert_eq!(alice.get(&format!("/app_proxy/{id}/")).await.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn pages_send_anonymous_visitors_to_login_and_back() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let b = Browser::new(&server);
    let resp = b.get("/app/echo").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login?next=%2Fapp%2Fecho");
    assert_eq!(b.get("/api/proxy").await.status(), 401);
    assert_eq!(b.get("/actuator/health").await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn health_is_also_served_on_the_management_port() {
    let port = crate::common::ports::free_port();
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    let url = format!("http://127.0.0.1:{port}/actuator/health");
    let up = eventually(std::time::Duration::from_secs(5), || async {
        match reqwest::get(&url).await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|h| h["status"] == "UP"),
            Err(_) => false,
        }
    })
    .await;
    assert!(up, "no health on the management port");
    server.shutdown().await;
}

#[tokio::test]
async fn without_authentication_each_browser_is_its_own_user() {
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.proxy.authentication = vestibule::config::AuthMethod::None;
    let server = TestServer::start(cfg).await;
    let one = Browser::new(&server);
    let two = Browser::new(&server);
    let page = one.get("/").await.text().await.expect("portal");
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf meta tag")
        .to_string();
    assert!(page.contains("tile-echo"));
    let resp = one
        .http
        .post(server.url("/api/proxy/echo"))
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .expect("launch");
    assert_eq!(resp.status(), 201);
    let view = data(resp).await;
    let id = view["id"].as_str().expect("id");
    two.get("/").await;
    let ok = eventually(std::time::Duration::from_secs(15), || async {
        one.get(&format!("/app_proxy/{id}/")).await.status() == 200
    })
    .await;
    assert!(ok);
    assert_eq!(two.get(&format!("/app_proxy/{id}/")).await.status(), 403);
    server.shutdown().await;
}
