//! Several replicas sharing one real Redis (`proxy.store-mode: Redis`), some behind a real
//! round-robin nginx: what a user logged in through one replica keeps on every other, and what
//! a Redis outage costs.

use crate::common::nginx::Nginx;
use crate::common::oidc_provider::{OidcProvider, location};
use crate::common::redis::RedisServer;
use crate::common::replica::{ConfigFile, ReplicaProcess};
use crate::common::*;
use reqwest::Method;
use std::time::Duration;
use vestibule::config::{Config, PasswordSpec, UserEntry};

fn replica_config(redis: &RedisServer) -> Config {
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.store = redis.store_config();
    cfg
}

/// The same browser (cookies and CSRF token) talking to another replica.
fn through(b: &Browser, server: &TestServer) -> Browser {
    Browser {
        http: b.http.clone(),
        base: server.url(""),
        csrf: b.csrf.clone(),
    }
}

fn bearer_get(server: &TestServer, path: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_and_an_api_token_made_on_one_replica_work_on_the_other_until_ended_there() {
    let redis = RedisServer::start();
    let a = TestServer::start(replica_config(&redis)).await;
    let b = TestServer::start(replica_config(&redis)).await;

    let on_a = Browser::login(&a, "alice").await;
    let on_b = through(&on_a, &b);
    let portal = on_b.get("/").await;
    assert_eq!(portal.status(), 200, "alice's session is known on B");
    assert!(portal.text().await.expect("portal").contains("alice"));

    let created = on_a
        .http
        .post(a.url("/api/tokens"))
        .header("X-CSRF-Token", &on_a.csrf)
        .json(&serde_json::json!({ "name": "nightly" }))
        .send()
        .await
        .expect("create token");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("token");
    let token = created["token"].as_str().expect("token").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    let used = bearer_get(&b, "/api/proxyspec", &token)
        .send()
        .await
        .expect("bearer");
    assert_eq!(used.status(), 200, "a token made on A works on B");

    // Revoked on A: B, which has its own copy, refuses it at once (told through Redis).
    let revoked = on_a.api(Method::DELETE, &format!("/api/tokens/{id}")).await;
    assert_eq!(revoked.status(), 200);
    assert!(
        eventually(Duration::from_secs(2), || async {
            bearer_get(&b, "/api/proxyspec", &token)
                .send()
                .await
                .is_ok_and(|r| r.status() == 401)
        })
        .await,
        "B still accepts a token revoked on A"
    );

    // Logged out on A: B ends the session too.
    let logout = on_a
        .http
        .post(a.url("/logout"))
        .form(&[("_csrf", on_a.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_redirection(), "{}", logout.status());
    assert!(
        eventually(Duration::from_secs(2), || async {
            on_b.get("/").await.status() == 303
        })
        .await,
        "B still serves a session that logged out on A"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restart_logs_nobody_out() {
    let redis = RedisServer::start();
    let first = TestServer::start(replica_config(&redis)).await;
    let alice = Browser::login(&first, "alice").await;
    first.shutdown().await;
    let second = TestServer::start(replica_config(&redis)).await;
    let resp = through(&alice, &second).get("/").await;
    assert_eq!(resp.status(), 200, "the session outlived the replica");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_login_started_on_one_replica_completes_on_the_other() {
    let provider = OidcProvider::shared().await;
    let redis = RedisServer::start();
    let openid = |redis: &RedisServer| {
        let mut cfg = crate::oidc::oidc_config(provider);
        cfg.store = redis.store_config();
        cfg
    };
    let a = TestServer::start(openid(&redis)).await;
    let b = TestServer::start(openid(&redis)).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let started = http.get(a.url("/login")).send().await.expect("login on A");
    assert_eq!(started.status(), 303);
    let callback_on_a = crate::oidc::capture_callback(&http, location(&started)).await;
    // The balancer sends the provider's redirect back to B.
    let callback_on_b = callback_on_a.replace(&a.url(""), &b.url(""));
    assert_ne!(callback_on_a, callback_on_b);
    let done = http
        .get(&callback_on_b)
        .send()
        .await
        .expect("callback on B");
    assert_eq!(
        done.status(),
        303,
        "B completes the login A started: {}",
        done.text().await.unwrap_or_default()
    );
    let portal = http.get(a.url("/")).send().await.expect("portal on A");
    assert_eq!(portal.status(), 200, "and A knows the new session");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_class_gets_in_and_a_guessed_password_is_throttled_on_every_replica() {
    let redis = RedisServer::start();
    let class = |redis: &RedisServer| {
        let mut cfg = replica_config(redis);
        cfg.proxy.users.extend((0..50).map(|i| UserEntry {
            name: format!("student{i}"),
            password: PasswordSpec::Plain(PASSWORD.into()),
            groups: vec!["analysts".into()],
        }));
        cfg
    };
    let a = TestServer::start(class(&redis)).await;
    let b = TestServer::start(class(&redis)).await;
    let nginx = Nginx::round_robin(&[a.addr, b.addr]);
    let front = |server: &TestServer| {
        let mut browser = Browser::new(server);
        browser.base = nginx.url("");
        browser
    };

    // 50 people log in within a minute, all through the balancer's one address.
    for i in 0..50 {
        let status = front(&a)
            .try_login(&format!("student{i}"), PASSWORD)
            .await
            .status();
        assert_eq!(status, 303, "student{i} was refused with {status}");
    }

    // Someone guesses alice's password 15 times, alternating between the replicas.
    let guesser = front(&a);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(guesser.try_login("alice", "guess").await.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    for server in [&a, &b] {
        let status = Browser::new(server)
            .try_login("alice", PASSWORD)
            .await
            .status();
        assert_eq!(status, 429, "{} lets the guesser go on", server.addr);
    }
    drop(nginx);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_for_30_s_open_apps_keep_working_and_logins_get_a_clear_503() {
    let mut redis = RedisServer::start();
    let a = TestServer::start(replica_config(&redis)).await;
    let b = TestServer::start(replica_config(&redis)).await;
    let alice = Browser::login(&a, "alice").await;
    let id = alice.launch_id("echo").await;

    redis.stop();
    let outage = tokio::time::Instant::now();
    // No request waits for Redis: alice's open app and her portal go on from A's own copy,
    // for the whole 30 s outage (past the 15 s after which A's copies are refreshed).
    let app_url = format!("/app_proxy/{id}/");
    let mut requests = 0;
    let mut failures = Vec::new();
    while outage.elapsed() < Duration::from_secs(30) {
        let status = alice.get(&app_url).await.status();
        requests += 1;
        if status != 200 {
            failures.push(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(requests > 100, "only {requests} requests in 30 s");
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    assert_eq!(alice.get("/").await.status(), 200);
    // Starting an app needs the shared limits: refused, with a reason, at once.
    let launch = alice.api(Method::POST, "/api/proxy/echo").await;
    assert_eq!(launch.status(), 503);
    let said = launch.text().await.expect("body");
    assert!(said.contains("state store"), "{said}");
    // A new login, on either replica, is told what is wrong instead of hanging.
    for server in [&a, &b] {
        let refused = Browser::new(server).try_login("bob", PASSWORD).await;
        assert_eq!(refused.status(), 503);
        let page = refused.text().await.expect("page");
        assert!(page.contains("state store"), "{page}");
    }
    // B never saw alice's session, so it cannot vouch for it.
    let unknown = through(&alice, &b).get("/").await;
    assert_eq!(unknown.status(), 503);

    redis.resume();
    assert!(
        eventually(Duration::from_secs(10), || async {
            Browser::new(&b).try_login("bob", PASSWORD).await.status() == 303
        })
        .await,
        "logins did not come back with Redis"
    );
    assert_eq!(
        through(&alice, &b).get("/").await.status(),
        200,
        "alice's session survived the outage"
    );
    let listed: serde_json::Value = data(through(&alice, &b).get("/api/proxy").await).await;
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["id"] == id.as_str() && l[0]["status"] == "Up"),
        "after the outage, alice's one instance is still there, and only it: {listed}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

fn apps_config(redis: &RedisServer) -> Config {
    let mut cfg = config(vec![echo_spec("echo"), crate::websocket::demo_spec()]);
    cfg.store = redis.store_config();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_launched_through_one_replica_is_used_and_stopped_through_the_other() {
    let redis = RedisServer::start();
    let a = TestServer::start(apps_config(&redis)).await;
    let b = TestServer::start(apps_config(&redis)).await;
    let alice = Browser::login(&a, "alice").await;
    let id = alice.launch_id("demo").await;

    let on_b = through(&alice, &b);
    let page = on_b.get(&format!("/app_proxy/{id}/")).await;
    let status = page.status();
    assert_eq!(
        status,
        200,
        "B proxies to the app A started: {}",
        page.text().await.unwrap_or_default()
    );
    let cookie = session_cookie(&a, "alice").await;
    let mut ws = crate::websocket::connect(&b, &id, &cookie)
        .await
        .expect("a WebSocket through B");
    assert_eq!(crate::websocket::square(&mut ws, 7).await["square"], 49);
    drop(ws);

    let bob = Browser::login(&b, "bob").await;
    assert_eq!(
        bob.get(&format!("/app_proxy/{id}/")).await.status(),
        403,
        "B lets bob into alice's app"
    );
    let listed: serde_json::Value = data(on_b.get("/api/proxy").await).await;
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v["id"] == id.as_str())),
        "B does not list alice's instance: {listed}"
    );

    let stopped = on_b.api(Method::DELETE, &format!("/api/proxy/{id}")).await;
    assert!(stopped.status().is_success(), "{}", stopped.status());
    assert!(
        eventually(Duration::from_secs(10), || async {
            alice.get(&format!("/app_proxy/{id}/")).await.status() != 200
                && on_b.get(&format!("/app_proxy/{id}/")).await.status() != 200
        })
        .await,
        "the instance still answers after B stopped it"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_click_on_two_replicas_starts_one_instance() {
    let redis = RedisServer::start();
    let one = |redis: &RedisServer| {
        let mut cfg = apps_config(redis);
        cfg.proxy.specs[0].max_instances = Some(1);
        cfg
    };
    let a = TestServer::start(one(&redis)).await;
    let b = TestServer::start(one(&redis)).await;
    let alice = Browser::login(&a, "alice").await;
    let on_b = through(&alice, &b);
    for round in 0..3 {
        let (x, y) = tokio::join!(
            alice.api(Method::POST, "/api/proxy/echo"),
            on_b.api(Method::POST, "/api/proxy/echo"),
        );
        let mut statuses = [x.status().as_u16(), y.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}");
        let started = data(if x.status() == 201 { x } else { y }).await;
        let id = started["id"].as_str().expect("id");
        let stopped = on_b.api(Method::DELETE, &format!("/api/proxy/{id}")).await;
        assert!(stopped.status().is_success());
        assert!(
            eventually(Duration::from_secs(10), || async {
                alice.get(&format!("/api/proxy/{id}")).await.status() == 403
            })
            .await,
            "round {round}: the instance was not forgotten"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_users_across_three_replicas_start_exactly_the_server_limit() {
    let redis = RedisServer::start();
    let crowd = |redis: &RedisServer| {
        let mut cfg = apps_config(redis);
        cfg.proxy.max_total_instances = Some(50);
        cfg.proxy.specs[0].max_instances = Some(1);
        cfg.proxy.users.extend((0..200).map(|i| UserEntry {
            name: format!("user{i}"),
            password: PasswordSpec::Plain(PASSWORD.into()),
            groups: vec!["analysts".into()],
        }));
        cfg
    };
    let replicas = [
        TestServer::start(crowd(&redis)).await,
        TestServer::start(crowd(&redis)).await,
        TestServer::start(crowd(&redis)).await,
    ];
    let http = reqwest::Client::new();
    // Every user clicks twice, on two different replicas, all at once (the app page's start,
    // which answers as soon as the instance is admitted).
    let clicks = (0..400).map(|n| {
        let user = format!("user{}", n / 2);
        let url = replicas[n % 3].url("/app_i/echo/_");
        let http = http.clone();
        async move {
            // 503 means "try again" (with Retry-After): on a machine this loaded, a store call
            // can outlast its timeout. Clients retry it; the limits must hold all the same.
            let mut status = 0;
            for _ in 0..5 {
                let resp = http
                    .post(&url)
                    .basic_auth(&user, Some(PASSWORD))
                    .send()
                    .await
                    .expect("launch");
                status = resp.status().as_u16();
                if status != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            (user, status)
        }
    });
    let answers = futures_util::future::join_all(clicks).await;
    let admitted: Vec<&String> = answers
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(u, _)| u)
        .collect();
    assert!(
        answers.iter().all(|(_, s)| *s == 200 || *s == 409),
        "{answers:?}"
    );
    // Each replica keeps the failed starts it ran to itself, so every replica is asked.
    let mut by_id = std::collections::BTreeMap::new();
    for replica in &replicas {
        let listed = data_list(
            http.get(replica.url("/api/proxy?all=true"))
                .basic_auth("root", Some(PASSWORD))
                .send()
                .await
                .expect("list"),
        )
        .await;
        for v in listed {
            let id = v["id"].as_str().unwrap_or_default().to_string();
            // A failed one is known as failed only on its own replica.
            let keep_failed = by_id
                .get(&id)
                .is_some_and(|seen: &serde_json::Value| failed(seen));
            if !keep_failed {
                by_id.insert(id, v);
            }
        }
    }
    let listed: Vec<serde_json::Value> = by_id.into_values().collect();
    let all = serde_json::Value::Array(listed.clone());
    let live = listed.iter().filter(|v| !failed(v)).count();
    // Every place is handed out; a place is handed out again only after a start failed (on a
    // loaded machine one may), and never more than 50 run.
    let failures = listed.len() - live;
    assert_eq!(
        listed.len(),
        admitted.len(),
        "one instance per admitted click: {all}"
    );
    assert!(admitted.len() >= 50, "places were left unused: {answers:?}");
    assert!(
        admitted.len() <= 50 + failures,
        "more admitted than the limit and the failures explain: {answers:?} {all}"
    );
    assert!(live <= 50, "{all}");
    let owners: std::collections::HashSet<&str> = listed
        .iter()
        .filter(|v| !failed(v))
        .filter_map(|v| v["userId"].as_str())
        .collect();
    assert_eq!(owners.len(), live, "somebody runs two instances");
    for server in replicas {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_flushall_the_replicas_rebuild_the_registry_and_users_find_their_apps() {
    let redis = RedisServer::start();
    let a = TestServer::start(apps_config(&redis)).await;
    let b = TestServer::start(apps_config(&redis)).await;
    let alice = Browser::login(&a, "alice").await;
    let id = alice.launch_id("echo").await;
    assert_eq!(redis.cli(&["FLUSHALL"]).as_deref(), Some("OK"));

    // Sessions went with the flush: alice logs in again, through B this time.
    let again = Browser::login(&b, "alice").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            let list: serde_json::Value = data(again.get("/api/proxy").await).await;
            list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|v| v["id"] == id.as_str() && v["status"] == "Up")
            })
        })
        .await,
        "alice's instance never came back in the registry"
    );
    let app = again.get(&format!("/app_proxy/{id}/")).await;
    assert_eq!(app.status(), 200, "and she can use it through B");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_is_killed_another_replica_takes_over_culling() {
    let redis = RedisServer::start();
    let echo = repo_path("tests/apps/echo/app.py");
    let config = ConfigFile::write(
        "leader",
        &format!(
            "proxy:
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: process
  store-mode: Redis
  heartbeat-timeout: 6000
  users:
  - name: alice
    password: \"{PASSWORD}\"
  specs:
  - id: echo
    container-cmd: [\"python3\", \"{echo}\"]
spring:
  data:
    redis:
      host: 127.0.0.1
      port: {port}
",
            echo = echo.display(),
            port = redis.port
        ),
    );
    // The first replica takes the lease; the second starts once it holds it.
    let mut leader = ReplicaProcess::start(&config.path).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other = ReplicaProcess::start(&config.path).await;
    let http = reqwest::Client::new();
    let id = other.launch("echo").await;
    let status = |id: String| {
        let http = http.clone();
        let url = other.url(&format!("/api/proxy/{id}"));
        async move {
            http.get(url)
                .basic_auth("alice", Some(PASSWORD))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    leader.kill();
    let killed = tokio::time::Instant::now();
    assert_eq!(status(id.clone()).await, 200, "the instance runs");
    // heartbeat-timeout (6 s) + the lease running out (8 s) + a tick or two.
    assert!(
        eventually(Duration::from_secs(25), || {
            let asked = status(id.clone());
            async move { asked.await == 403 }
        })
        .await,
        "the idle instance was never culled after the leader died"
    );
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "culled before it was idle: {took:?}"
    );
    // The promise: within heartbeat-timeout + 10 s of the leader's death (plus this test's
    // 100 ms polls and the culler's 1 s tick).
    assert!(
        took <= Duration::from_secs(6 + 10 + 2),
        "culled only {took:?} after the leader died"
    );
}
