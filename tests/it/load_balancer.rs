//! vestibule behind a load balancer: every request arrives from the balancer's address, so the
//! client comes from `X-Forwarded-For` (believed only from trusted proxies), and the login
//! throttle counts failures, never successes, so a classroom behind one address gets in.

use crate::common::log_capture::capture_logs;
use crate::common::*;
use reqwest::Method;
use serde_json::Value;
use vestibule::config::{Config, PasswordSpec, UserEntry};

/// A browser whose requests all carry `X-Forwarded-For: <chain>`, as the balancer would add.
fn behind_balancer(server: &TestServer, chain: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_str(chain).expect("chain"),
    );
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("client"),
        base: server.url(""),
        csrf: String::new(),
    }
}

fn classroom(students: usize) -> Config {
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.proxy.users.extend((0..students).map(|i| UserEntry {
        name: format!("student{i}"),
        password: PasswordSpec::Plain(PASSWORD.into()),
        groups: vec!["analysts".into()],
    }));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_behind_one_address_all_get_in_and_a_polling_script_is_never_throttled() {
    let server = TestServer::start(classroom(50)).await;
    for i in 0..50 {
        let b = Browser::new(&server);
        let status = b.try_login(&format!("student{i}"), PASSWORD).await.status();
        assert_eq!(status, 303, "student{i} was refused with {status}");
    }
    // A script that authenticates every call with curl -u, as the README suggests.
    let http = reqwest::Client::new();
    for call in 0..30 {
        let resp = http
            .get(server.url("/api/proxy"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .expect("api");
        assert_eq!(resp.status(), 200, "call {call}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_throttled_per_client_behind_a_trusted_balancer_and_logged_with_its_address() {
    let logs = capture_logs();
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.server.trusted_proxies = vestibule::config::private_ranges();
    let server = TestServer::start(cfg).await;
    let attacker = behind_balancer(&server, "198.51.100.66");
    let neighbour = behind_balancer(&server, "198.51.100.7");

    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(attacker.try_login("alice", "guess").await.status().as_u16());
    }
    assert_eq!(&statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = attacker.try_login("alice", PASSWORD).await;
    assert_eq!(refused.status(), 429, "even the right password waits");

    // Spraying other users from the same client runs into the per-address limit...
    let mut sprayed = Vec::new();
    for i in 0..50 {
        sprayed.push(
            attacker
                .try_login(&format!("nobody{i}"), "guess")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(sprayed.last(), Some(&429), "{sprayed:?}");
    // ...which is the attacker's alone: a neighbour behind the same balancer logs in.
    assert_eq!(neighbour.try_login("bob", PASSWORD).await.status(), 303);

    let log = logs.text();
    assert!(
        log.lines()
            .any(|l| l.contains("login_failed") && l.contains("198.51.100.66")),
        "the audit event names the client, not the balancer"
    );
    server.shutdown().await;
}

/// The `X-Forwarded-For` the echo app receives when alice, behind `chain`, opens it.
async fn forwarded_for_seen_by_the_app(cfg: Config, chain: &str) -> Value {
    let server = TestServer::start(cfg).await;
    let alice = behind_balancer(&server, chain);
    assert_eq!(alice.try_login("alice", PASSWORD).await.status(), 303);
    let page = alice.get("/").await.text().await.expect("portal");
    let alice = Browser {
        csrf: hidden_field(&page, "_csrf").expect("csrf"),
        ..alice
    };
    let id = alice.launch_id("echo").await;
    let echo: Value = alice
        .get(&format!("/app_proxy/{id}/"))
        .await
        .json()
        .await
        .expect("echo");
    server.shutdown().await;
    echo["headers"]["x-forwarded-for"][0].clone()
}

#[tokio::test]
async fn the_app_sees_the_real_chain_and_a_forged_one_only_from_trusted_proxies() {
    // Not trusted (the default): whatever the client writes is replaced by its address.
    let untrusted = forwarded_for_seen_by_the_app(config(vec![echo_spec("echo")]), "6.6.6.6").await;
    assert_eq!(untrusted, "127.0.0.1");

    // Trusted: the chain goes on, with the balancer's own hop appended.
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.server.trusted_proxies = vestibule::config::private_ranges();
    let trusted = forwarded_for_seen_by_the_app(cfg, "198.51.100.7").await;
    assert_eq!(trusted, "198.51.100.7, 127.0.0.1");
}

#[tokio::test]
async fn an_instance_limit_and_the_login_throttle_answer_differently() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    alice.launch("echo").await;
    alice.launch_named("echo", "second").await;
    let third = alice.api(Method::POST, "/api/proxy/echo").await;
    assert_eq!(third.status(), 409, "max-instances is 2 in the test spec");

    let http = reqwest::Client::new();
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            http.get(server.url("/api/proxy"))
                .basic_auth("bob", Some("guess"))
                .send()
                .await
                .expect("api"),
        );
    }
    let last = last.expect("six calls");
    assert_eq!(last.status(), 429);
    let wait: u64 = last
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After on a throttled call");
    assert!((1..=60).contains(&wait), "{wait}");
    server.shutdown().await;
}
