//! Pools with a real FastAPI app on the process backend: scaling from zero under a burst with no
//! failed request, back to zero after the delay, the queue's 503s, and who may call a pool.

use crate::common::app_browser::venv;
use crate::common::metrics::{management_port, sample, scrape};
use crate::common::*;
use std::time::Duration;
use vestibule::config::{AppSpec, PoolSettings};

fn fastapi_pool(id: &str, pool: PoolSettings) -> AppSpec {
    let python = venv().join("bin/python");
    let mut spec = process_spec(id, &[python.to_str().unwrap_or_default(), "app.py"]);
    spec.process_workdir = Some(repo_path("tests/apps/fastapi_api"));
    spec.max_instances = None;
    spec.pool = Some(pool);
    spec
}

/// Scales fast, so a test sees it within seconds: a 3 s window, 2 s delay.
fn quick_pool(max: u32, target: u32) -> PoolSettings {
    PoolSettings {
        min_instances: 0,
        max_instances: max,
        target_concurrency: target,
        scale_down_delay: Duration::from_secs(2),
        session_affinity: false,
        stable_window: Duration::from_secs(3),
        queue_limit: 1000,
        client_rate_limit: None,
    }
}

async fn instance_of(resp: reqwest::Response) -> Result<String, String> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["instance"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| text.clone())
}

/// The metrics text, once the management port listens (it opens beside the main port).
async fn metrics(port: u16) -> String {
    for _ in 0..50 {
        let url = format!("http://127.0.0.1:{port}/actuator/prometheus");
        if reqwest::get(&url).await.is_ok() {
            return scrape(port).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scrape(port).await
}

async fn pool_gauge(port: u16, app: &str, state: &str) -> f64 {
    let text = metrics(port).await;
    sample(
        &text,
        &format!(r#"vestibule_pool_instances{{app="{app}",state="{state}"}}"#),
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_fastapi_pool_scales_from_zero_under_a_burst_without_failures_and_back_to_zero() {
    let mut spec = fastapi_pool("api", quick_pool(4, 10));
    spec.public = true;
    let mut cfg = config(vec![spec]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let port = management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    assert_eq!(
        pool_gauge(port, "api", "ready").await,
        0.0,
        "nothing runs before the first request"
    );

    // 500 anonymous clients at once, each holding its request for 300 ms once served.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = server.url("/app_direct/api/work?ms=300");
    let burst = (0..500).map(|_| {
        let http = http.clone();
        let url = url.clone();
        async move { instance_of(http.get(&url).send().await.expect("send")).await }
    });
    let answers = futures_util::future::join_all(burst).await;
    let failures: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    // Held requests may all go to the first instance to be ready; the burst still scaled out.
    let started = pool_gauge(port, "api", "ready").await
        + pool_gauge(port, "api", "starting").await
        + pool_gauge(port, "api", "draining").await;
    assert!(
        started >= 2.0,
        "the burst started several instances: {started}"
    );
    let text = scrape(port).await;
    assert!(
        sample(
            &text,
            r#"vestibule_pool_scale_events_total{app="api",direction="out",reason="burst"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // No load: after the window (3 s) and the delay (2 s) the pool is empty again.
    let mut zero_after = None;
    for second in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let running = pool_gauge(port, "api", "ready").await
            + pool_gauge(port, "api", "draining").await
            + pool_gauge(port, "api", "starting").await;
        if running == 0.0 {
            zero_after = Some(second);
            break;
        }
    }
    assert!(zero_after.is_some(), "the pool went back to zero");
    // And a request after that starts it again.
    let again = instance_of(
        http.get(server.url("/app_direct/api/"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_or_an_app_that_never_starts_gives_503_with_retry_after() {
    // An app that never answers: requests are held for container-wait-time, then refused.
    let mut never = process_spec("never", &["sleep", "600"]);
    never.max_instances = None;
    never.pool = Some(PoolSettings {
        queue_limit: 2,
        ..quick_pool(1, 10)
    });
    never.public = true;
    let mut cfg = config(vec![never]);
    cfg.proxy.container_wait_time = Duration::from_secs(3);
    let server = TestServer::start(cfg).await;
    let http = reqwest::Client::new();
    let url = server.url("/app_direct/never/");
    let held = (0..3).map(|_| http.get(&url).send());
    let answers = futures_util::future::join_all(held).await;
    let mut statuses: Vec<u16> = Vec::new();
    for a in answers {
        let resp = a.expect("send");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.parse::<u32>().is_ok()),
            Some(true),
            "a 503 says when to come back"
        );
        statuses.push(resp.status().as_u16());
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains("never"), "{body}");
    }
    assert_eq!(
        statuses,
        [503, 503, 503],
        "two held until the wait ended, one refused at once"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_pool_follows_access_rules_and_api_only_refuses_browser_sessions() {
    let mut private = fastapi_pool("private", quick_pool(1, 10));
    private.access_groups = vec!["admins".into()];
    let mut scripts = fastapi_pool("scripts", quick_pool(1, 10));
    scripts.api_only = true;
    let mut cfg = config(vec![private, scripts]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let server = TestServer::start(cfg).await;

    let anonymous = reqwest::Client::new();
    let resp = anonymous
        .get(server.url("/app_direct/private/"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401, "not public: log in first");

    let alice = Browser::login(&server, "alice").await;
    assert_eq!(
        alice.get("/app_direct/private/").await.status(),
        403,
        "alice is not in admins"
    );
    let root = Browser::login(&server, "root").await;
    assert!(
        instance_of(root.get("/app_direct/private/").await)
            .await
            .is_ok()
    );
    let admin = root.get("/admin").await.text().await.expect("admin page");
    assert!(
        admin.contains(r#"id="pool-private""#),
        "the admin page shows the pool"
    );

    assert_eq!(
        alice.get("/app_direct/scripts/").await.status(),
        403,
        "an api-only app refuses a browser session"
    );
    let by_basic = anonymous
        .get(server.url("/app_direct/scripts/"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("send");
    assert!(instance_of(by_basic).await.is_ok(), "HTTP Basic reaches it");
    let wrong = anonymous
        .get(server.url("/app_direct/scripts/"))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn affinity_keeps_a_browser_on_one_instance_and_repins_a_stale_cookie() {
    let mut spec = fastapi_pool(
        "sticky",
        PoolSettings {
            min_instances: 2,
            session_affinity: true,
            ..quick_pool(2, 10)
        },
    );
    spec.public = true;
    let mut cfg = config(vec![spec]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let port = management_port();
    cfg.server.management_port = Some(port);
    let server = TestServer::start(cfg).await;
    for _ in 0..60 {
        if pool_gauge(port, "sticky", "ready").await == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        pool_gauge(port, "sticky", "ready").await,
        2.0,
        "min-instances are kept running"
    );
    let browser = Browser::new(&server);
    let first = instance_of(browser.get("/app_direct/sticky/").await)
        .await
        .expect("served");
    for _ in 0..6 {
        let next = instance_of(browser.get("/app_direct/sticky/").await)
            .await
            .expect("served");
        assert_eq!(next, first, "the cookie keeps the browser on one instance");
    }
    // A cookie naming no member is replaced, without an error.
    let stranger = reqwest::Client::new();
    let resp = stranger
        .get(server.url("/app_direct/sticky/"))
        .header("cookie", "vestibule_pool_sticky=forged")
        .send()
        .await
        .expect("send");
    let set = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(instance_of(resp).await.is_ok());
    assert!(
        set.starts_with("vestibule_pool_sticky=") && !set.contains("forged"),
        "{set}"
    );
    server.shutdown().await;
}

/// Three people use one Dash pool at once in Chromium; with a target of one request per
/// instance, their callbacks spread over several instances, and each one's greeting follows
/// what they type.
#[tokio::test]
async fn a_dash_pool_serves_three_chromium_users_at_once() {
    use crate::common::app_browser::{open_app, wait_text};
    use crate::common::chrome::Chrome;
    use fantoccini::Locator;

    let python = venv().join("bin/python");
    let mut spec = process_spec("dash", &[python.to_str().unwrap_or_default(), "app.py"]);
    spec.process_workdir = Some(repo_path("tests/apps/dash"));
    spec.max_instances = None;
    spec.pool = Some(PoolSettings {
        min_instances: 1,
        ..quick_pool(3, 1)
    });
    let mut cfg = config(vec![spec]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let server = TestServer::start(cfg).await;
    let users = ["alice", "bob", "root"];
    let mut chromes = Vec::new();
    for _ in users {
        chromes.push(Chrome::start().await);
    }
    let sessions = chromes.iter().zip(users).map(|(chrome, user)| {
        let server = &server;
        async move {
            let c = &chrome.client;
            open_app(c, server, user, "dash", None).await;
            wait_text(c, "#greeting", |t| t == "Hello, world!").await;
            let input = c.find(Locator::Id("name")).await.expect("input");
            // Select all (Ctrl+A), release the modifier (NULL key), then type over it.
            input
                .send_keys(&format!("\u{E009}a\u{E000}{user}"))
                .await
                .expect("type");
            wait_text(c, "#greeting", |t| t == format!("Hello, {user}!")).await;
        }
    });
    futures_util::future::join_all(sessions).await;
    for chrome in chromes {
        chrome.stop().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_public_pool_limits_each_client_address() {
    let mut spec = fastapi_pool(
        "limited",
        PoolSettings {
            min_instances: 1,
            client_rate_limit: std::num::NonZeroU32::new(3),
            ..quick_pool(1, 10)
        },
    );
    spec.public = true;
    let mut cfg = config(vec![spec]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let server = TestServer::start(cfg).await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let resp = http
            .get(server.url("/app_direct/limited/"))
            .send()
            .await
            .expect("send");
        assert!(instance_of(resp).await.is_ok());
    }
    let over = http
        .get(server.url("/app_direct/limited/"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        over.status(),
        429,
        "the fourth request in a minute is refused"
    );
    let retry: u64 = over
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    server.shutdown().await;
}
