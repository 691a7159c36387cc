//! The data path through a real server and real app processes: forwarding, header hygiene,
//! isolation between users, streaming.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn a_user_reaches_their_app_with_identity_headers_and_the_prefix_stripped() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("echo").await;
    assert_eq!(view["status"], "Up", "{view}");
    let id = view["id"].as_str().expect("id");

    let resp = alice
        .http
        .get(server.url(&format!("/app_proxy/{id}/some/path?q=1")))
        .header("X-SP-UserId", "root")
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["path"], "/some/path?q=1");
    let h = &echo["headers"];
    assert_eq!(
        h["x-sp-userid"],
        serde_json::json!(["alice"]),
        "spoofed header replaced"
    );
    assert_eq!(h["x-sp-usergroups"], serde_json::json!(["analysts"]));
    assert_eq!(
        h["host"],
        serde_json::json!([server.addr.to_string()]),
        "Host kept with its port"
    );
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    let cookies = h["cookie"].to_string();
    assert!(
        !cookies.contains("vestibule_session"),
        "session cookie leaked: {cookies}"
    );
    let env = &echo["env"];
    assert_eq!(env["SHINYPROXY_USERNAME"], "alice");
    assert_eq!(env["VESTIBULE_USERNAME"], "alice");
    assert_eq!(env["SHINYPROXY_PUBLIC_PATH"], format!("/app_proxy/{id}/"));
    assert_eq!(env["SHINYPROXY_PROXY_ID"], id);
    assert_eq!(
        env["APP_GREETING"], "hello",
        "container-env reaches the app"
    );

    let bare = alice.get(&format!("/app_proxy/{id}")).await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], format!("/app_proxy/{id}/"));
    server.shutdown().await;
}

#[tokio::test]
async fn another_user_gets_403_an_admin_gets_through_and_unknown_ids_404() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let root = Browser::login(&server, "root").await;
    let view = alice.launch("echo").await;
    let id = view["id"].as_str().expect("id");
    let path = format!("/app_proxy/{id}/");

    assert_eq!(bob.get(&path).await.status(), 403);
    let post = bob
        .http
        .post(server.url(&path))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 403);
    // ShinyProxy's status answer for someone else's instance: as if it were gone.
    let seen = data(bob.get(&format!("/api/proxy/{id}/status")).await).await;
    assert_eq!(seen["status"], "Stopped", "{seen}");
    assert!(
        seen["userId"].is_null() && seen["specId"].is_null(),
        "{seen}"
    );
    assert_eq!(bob.get(&format!("/api/proxy/{id}")).await.status(), 403);
    assert_eq!(
        bob.api(Method::DELETE, &format!("/api/proxy/{id}"))
            .await
            .status(),
        403
    );
    assert_eq!(root.get(&path).await.status(), 200);
    assert_eq!(
        alice.get("/app_proxy/0123456789abcdef/").await.status(),
        404
    );
    let anonymous = Browser::new(&server);
    assert_eq!(anonymous.get(&path).await.status(), 401);
    server.shutdown().await;
}

/// Every route that changes state, tried from a logged-in browser without the CSRF token and
/// with a wrong one: each is refused, and nothing changed.
#[tokio::test]
async fn state_changing_api_calls_need_the_csrf_token() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let root = Browser::login(&server, "root").await;
    let instance = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let created = alice
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &alice.csrf)
        .json(&serde_json::json!({ "name": "kept" }))
        .send()
        .await
        .expect("create token");
    assert_eq!(created.status(), 201);
    let token: Value = created.json().await.expect("token");
    let token_id = token["id"].as_str().expect("token id").to_string();

    let api_calls = [
        (Method::POST, "/api/proxy/echo".to_string()),
        (Method::DELETE, format!("/api/proxy/{instance}")),
        (Method::POST, "/api/tokens".to_string()),
        (Method::DELETE, format!("/api/tokens/{token_id}")),
    ];
    let forms = [
        (&alice, "/logout".to_string()),
        (&alice, format!("/my-apps/{instance}/stop")),
        (&alice, "/tokens".to_string()),
        (&alice, format!("/tokens/{token_id}/revoke")),
        (&root, format!("/admin/instances/{instance}/stop")),
    ];
    for sent in [None, Some("not-the-token")] {
        for (method, path) in &api_calls {
            let mut req = alice.http.request(method.clone(), server.url(path));
            if let Some(token) = sent {
                req = req.header("X-CSRF-Token", token);
            }
            let resp = req
                .json(&serde_json::json!({ "name": "forged" }))
                .send()
                .await
                .expect("api call");
            assert_eq!(resp.status(), 403, "{method} {path} with {sent:?}");
        }
        for (who, path) in &forms {
            let mut form = vec![("name", "forged")];
            if let Some(token) = sent {
                form.push(("_csrf", token));
            }
            let resp = who
                .http
                .post(server.url(path))
                .form(&form)
                .send()
                .await
                .expect("form post");
            assert_eq!(resp.status(), 403, "POST {path} with {sent:?}");
        }
    }

    // Nothing changed: the instance runs, the one token is live, both are still logged in.
    let mine: Vec<Value> = data_list(alice.get("/api/proxy").await).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["status"], "Up", "{mine:?}");
    let tokens: Vec<Value> = alice.get("/api/tokens").await.json().await.expect("tokens");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["id"], token_id.as_str(), "{tokens:?}");
    let bearer = reqwest::Client::new()
        .get(server.url("/api/proxy"))
        .bearer_auth(token["token"].as_str().expect("secret"))
        .send()
        .await
        .expect("bearer");
    assert_eq!(bearer.status(), 200, "the token was not revoked");
    assert_eq!(
        alice.get("/").await.status(),
        200,
        "alice is still logged in"
    );
    assert_eq!(root.get("/").await.status(), 200, "root is still logged in");
    server.shutdown().await;
}

#[tokio::test]
async fn scripts_use_http_basic_without_csrf() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let http = reqwest::Client::new();
    let specs: Vec<Value> = data_list(
        http.get(server.url("/api/proxyspec"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .expect("specs"),
    )
    .await;
    assert_eq!(specs[0]["id"], "echo");
    let wrong = http
        .get(server.url("/api/proxyspec"))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .expect("specs");
    assert_eq!(wrong.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn server_sent_events_flow_as_they_come() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Timed from before the request: a proxy that buffers the stream holds the headers back
    // too, so a clock started at the headers would not see it.
    let asked = tokio::time::Instant::now();
    let mut resp = alice.get(&format!("/app_proxy/{id}/sse")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let arrivals = event_arrivals(&mut resp, asked, 3).await;
    // The app sends "tick 0" at once, then one event every 0.5 s.
    assert!(
        arrivals[0] < Duration::from_millis(900),
        "the first event was held back: {arrivals:?}"
    );
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(700),
        "the events arrived together, not as the app sent them: {arrivals:?}"
    );
    server.shutdown().await;
}

/// When each of the first `count` events of a stream arrived, counted from `since`.
async fn event_arrivals(
    resp: &mut reqwest::Response,
    since: tokio::time::Instant,
    count: usize,
) -> Vec<Duration> {
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while arrivals.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("the next event within 5 s")
            .expect("stream")
            .expect("the stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            assert!(
                event.contains(&format!("tick {}", arrivals.len())),
                "{event}"
            );
            arrivals.push(since.elapsed());
        }
    }
    arrivals
}

#[tokio::test]
async fn a_large_upload_streams_through_with_bounded_memory() {
    use futures_util::stream;
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();

    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024; // 1 GiB
    let before = peak_rss_kib();
    let body = stream::iter((0..CHUNKS).map(|_| Ok::<_, std::io::Error>(vec![7u8; CHUNK])));
    let resp = alice
        .http
        .post(server.url(&format!("/app_proxy/{id}/upload")))
        .header("Content-Length", (CHUNK * CHUNKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.expect("json");
    assert_eq!(got["received"], (CHUNK * CHUNKS) as u64);
    let grew_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grew_mib < 200,
        "peak memory grew by {grew_mib} MiB for a 1 GiB upload"
    );
    server.shutdown().await;
}

fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn app_direct_starts_the_app_on_demand_and_serves_it_without_the_portal() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let bare = alice.get("/app_direct/echo").await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/app_direct/echo/");
    let resp = alice.get("/app_direct/echo/deep/path").await;
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["path"], "/deep/path");
    // The same instance serves the next request.
    alice.get("/app_direct/echo/").await;
    let mine: Vec<Value> = data_list(alice.get("/api/proxy").await).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    server.shutdown().await;
}

/// `http-headers` reach the app filled in for the user, replacing a client's copy; with
/// `add-default-http-headers: false` no identity header is sent, not even a client's forgery.
#[tokio::test]
async fn an_apps_own_headers_are_sent_and_the_defaults_can_be_turned_off() {
    let mut spec = echo_spec("echo");
    spec.http_headers = [
        ("X-Team".to_string(), template("data-#{proxy.userId}")),
        ("X-Env".to_string(), template("prod")),
    ]
    .into_iter()
    .collect();
    spec.add_default_http_headers = false;
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("echo").await;
    let id = view["id"].as_str().expect("id");
    let echo: Value = alice
        .http
        .get(server.url(&format!("/app_proxy/{id}/")))
        .header("X-Team", "evil")
        .header("X-SP-UserId", "root")
        .send()
        .await
        .expect("proxied")
        .json()
        .await
        .expect("json");
    let h = &echo["headers"];
    assert_eq!(h["x-team"], serde_json::json!(["data-alice"]), "{h}");
    assert_eq!(h["x-env"], serde_json::json!(["prod"]));
    assert!(h.get("x-sp-userid").is_none(), "{h}");
    assert!(h.get("x-sp-usergroups").is_none(), "{h}");
    server.shutdown().await;
}

/// Requests share upstream connections, and a GET the app dropped because it closed the
/// connection just as the request arrived is repeated on a new one.
#[tokio::test]
async fn app_connections_are_reused_and_a_silently_closed_one_is_replaced() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("echo").await;
    let id = view["id"].as_str().expect("id").to_string();

    let mut ports = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let resp = alice.get(&format!("/app_proxy/{id}/conn")).await;
        assert_eq!(resp.status(), 200);
        let echo: Value = resp.json().await.expect("json");
        ports.insert(echo["client_port"].as_u64().expect("port"));
    }
    assert!(
        ports.len() <= 3,
        "10 sequential requests used {} connections to the app",
        ports.len()
    );

    // Each round arms the connection that served it to drop its next request unanswered; the
    // next GET is usually sent on that connection.
    for round in 0..20 {
        let armed = alice.get(&format!("/app_proxy/{id}/conn?drop-next")).await;
        assert_eq!(armed.status(), 200);
        // All of it read: the proxy has had the whole answer, so the connection is idle.
        armed.text().await.expect("armed body");
        // Give the proxy a moment to see the armed connection idle again, as it would between
        // a user's clicks.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let next = alice.get(&format!("/app_proxy/{id}/conn")).await;
        assert_eq!(
            next.status(),
            200,
            "round {round}: a dropped GET must be repeated, not answered with {}",
            next.status()
        );
    }
    let dropped: Value = alice
        .get(&format!("/app_proxy/{id}/dropped"))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        dropped["dropped"].as_u64().unwrap_or(0) >= 1,
        "no request was sent on an armed connection, so nothing was tested: {dropped}"
    );

    server.shutdown().await;
}

/// A POST the app may have acted on is never sent twice: when its connection closes without an
/// answer, the user gets an error, and the app saw the POST once.
#[tokio::test]
async fn a_post_on_a_dropped_connection_is_not_repeated() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let counts = || async {
        let v: Value = alice
            .get(&format!("/app_proxy/{id}/dropped"))
            .await
            .json()
            .await
            .expect("json");
        (
            v["posts"].as_u64().expect("posts"),
            v["dropped_posts"].as_u64().expect("dropped posts"),
        )
    };
    // Counted before arming: a GET sent after arming could take the armed connection.
    let (mut posts_before, mut dropped_before) = counts().await;
    let mut tested = false;
    for _ in 0..20 {
        let armed = alice.get(&format!("/app_proxy/{id}/conn?drop-next")).await;
        assert_eq!(armed.status(), 200);
        armed.text().await.expect("armed body");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let resp = alice
            .http
            .post(server.url(&format!("/app_proxy/{id}/order")))
            .body("one order")
            // A repeat of the POST without its body leaves the app waiting for it.
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the POST got no answer within 10 s");
        let status = resp.status();
        let (posts_after, dropped_after) = counts().await;
        let (posts, dropped) = (posts_after - posts_before, dropped_after - dropped_before);
        (posts_before, dropped_before) = (posts_after, dropped_after);
        if dropped == 0 {
            // Sent on another connection: answered normally; try again.
            assert_eq!(status, 200);
            continue;
        }
        assert_eq!(posts, 1, "the app received the POST more than once");
        assert_eq!(
            status, 502,
            "the dropped POST must be reported, not retried"
        );
        tested = true;
        break;
    }
    assert!(
        tested,
        "no POST was sent on an armed connection, so nothing was tested"
    );
    server.shutdown().await;
}

/// `target-path`: the app is reached under its own path, whatever the public one.
#[tokio::test]
async fn target_path_prefixes_what_the_app_receives() {
    let mut spec = echo_spec("echo");
    spec.target_path = "/inner/base/".into();
    let server = TestServer::start(config(vec![spec])).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    for (public, inner) in [("/", "/inner/base/"), ("/page?q=1", "/inner/base/page?q=1")] {
        let echo: Value = alice
            .get(&format!("/app_proxy/{id}{public}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(echo["path"], inner, "{public}");
    }
    server.shutdown().await;
}

/// An open event stream is use: the instance is not culled while it is open, even when no
/// event passes for longer than the idle timeout, and is culled once it closes.
#[tokio::test]
async fn an_open_event_stream_keeps_its_instance_from_idle_culling() {
    let mut spec = echo_spec("echo");
    spec.heartbeat_timeout = Some(Duration::from_secs(1));
    let mut cfg = config(vec![spec]);
    cfg.proxy.heartbeat_rate = Duration::from_millis(200);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let id = alice.launch("echo").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Events 3 s apart: each silence is three idle timeouts.
    let asked = tokio::time::Instant::now();
    let mut resp = alice.get(&format!("/app_proxy/{id}/sse?gap=3")).await;
    assert_eq!(resp.status(), 200);
    let arrivals = event_arrivals(&mut resp, asked, 3).await;
    assert!(
        arrivals[2] >= Duration::from_secs(5),
        "the stream was not quiet: {arrivals:?}"
    );
    assert_eq!(
        alice.get(&format!("/api/proxy/{id}")).await.status(),
        200,
        "the instance was culled under an open stream"
    );
    drop(resp);
    let culled = eventually(Duration::from_secs(10), || async {
        alice.get(&format!("/api/proxy/{id}")).await.status() == 403
    })
    .await;
    assert!(
        culled,
        "the idle timeout no longer applies once the stream closed"
    );
    server.shutdown().await;
}

/// Scripts reach app URLs with HTTP Basic, as with an API token: their own instance, started
/// on demand through /app_direct/, but never another user's.
#[tokio::test]
async fn a_script_reaches_its_app_urls_with_http_basic_and_only_its_own() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let script = reqwest::Client::new();
    let direct = script
        .get(server.url("/app_direct/echo/"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("send");
    assert_eq!(direct.status(), 200, "started on demand for the script");
    let seen: serde_json::Value = direct.json().await.expect("echo json");
    assert_eq!(seen["headers"]["x-sp-userid"][0], "alice");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the credentials are not passed on to the app"
    );
    let id = seen["env"]["SHINYPROXY_PROXY_ID"]
        .as_str()
        .expect("instance id")
        .to_string();
    let own = script
        .get(server.url(&format!("/app_proxy/{id}/")))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("send");
    assert_eq!(own.status(), 200);
    let other = script
        .get(server.url(&format!("/app_proxy/{id}/")))
        .basic_auth("bob", Some(PASSWORD))
        .send()
        .await
        .expect("send");
    assert_eq!(
        other.status(),
        403,
        "bob's password does not open alice's instance"
    );
    let wrong = script
        .get(server.url(&format!("/app_proxy/{id}/")))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    server.shutdown().await;
}
