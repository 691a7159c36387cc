//! Logs as an operator reads them: no password or token in them whatever happens (form and
//! Basic logins, API tokens, OpenID Connect logins with their tokens), a request id on every
//! line of a request and in `X-Request-Id` (a trusted load balancer's own id kept, anyone
//! else's replaced), and JSON lines with `proxy.log-as-json`.

use crate::common::log_capture::capture_logs;
use crate::common::oidc_provider::{self, OidcProvider, location, login_at_provider};
use crate::common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;
use vestibule::config::{PasswordSpec, UserEntry};

const FORM_PASSWORD: &str = "pw-Xyzzy-9137-form";
const WRONG_PASSWORD: &str = "pw-Plugh-4410-wrong";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_reaches_the_logs() {
    let logs = capture_logs();
    let mut secrets: Vec<String> = vec![FORM_PASSWORD.into(), WRONG_PASSWORD.into()];

    // Form and Basic logins, API tokens.
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.proxy.users.push(UserEntry {
        name: "dora".into(),
        password: PasswordSpec::Plain(FORM_PASSWORD.into()),
        groups: vec!["analysts".into()],
    });
    let server = TestServer::start(cfg).await;
    let stranger = Browser::new(&server);
    assert_eq!(
        stranger.try_login("dora", WRONG_PASSWORD).await.status(),
        401
    );
    let mut dora = Browser::new(&server);
    let login = dora.try_login("dora", FORM_PASSWORD).await;
    assert_eq!(login.status(), 303);
    secrets.push(cookie_value(&login, "vestibule_session").expect("session cookie"));
    let page = dora.get("/").await.text().await.expect("portal");
    dora.csrf = hidden_field(&page, "_csrf").expect("csrf");
    let created = dora
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &dora.csrf)
        .json(&serde_json::json!({ "name": "ci" }))
        .send()
        .await
        .expect("create token");
    assert_eq!(created.status(), 201);
    let token: serde_json::Value = created.json().await.expect("token json");
    let token = token["token"].as_str().expect("the new token").to_string();
    secrets.push(token.clone());
    let with_token = reqwest::Client::new()
        .get(server.url("/api/proxyspec"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("bearer");
    assert_eq!(with_token.status(), 200);
    let revoked_like = reqwest::Client::new()
        .get(server.url("/api/proxyspec"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .expect("bad bearer");
    assert_eq!(revoked_like.status(), 401);
    for password in [FORM_PASSWORD, WRONG_PASSWORD] {
        let _ = reqwest::Client::new()
            .post(server.url("/api/proxy/echo"))
            .basic_auth("dora", Some(password))
            .send()
            .await
            .expect("basic");
    }
    server.shutdown().await;

    // An OpenID Connect login: the client secret, the user's password at the provider and the
    // tokens the provider hands out (the access token reaches the app's environment).
    let provider = OidcProvider::shared().await;
    let mut cfg = crate::oidc::oidc_config(provider);
    cfg.proxy.specs = vec![echo_spec("echo")];
    let server = TestServer::start(cfg).await;
    let http = client();
    let start = http.get(server.url("/login")).send().await.expect("login");
    let url = location(&start).to_string();
    let done = login_at_provider(&http, &url, "alice", oidc_provider::PASSWORD).await;
    let failed: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("login failed"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        done.status(),
        303,
        "the callback logs alice in: {failed:#?}"
    );
    secrets.push(oidc_provider::CLIENT_SECRET.into());
    secrets.push(oidc_provider::PASSWORD.into());
    let mut alice = Browser {
        http,
        base: server.url(""),
        csrf: String::new(),
    };
    let page = alice.get("/").await.text().await.expect("portal");
    alice.csrf = hidden_field(&page, "_csrf").expect("csrf");
    let instance = alice.launch("echo").await;
    let id = instance["id"].as_str().expect("id");
    let echo: serde_json::Value = alice
        .get(&format!("/app_proxy/{id}/"))
        .await
        .json()
        .await
        .expect("echo");
    let access = echo["env"]["SHINYPROXY_OIDC_ACCESS_TOKEN"]
        .as_str()
        .expect("the access token in the app's environment")
        .to_string();
    secrets.push(access);
    server.shutdown().await;

    let text = logs.text();
    assert!(
        text.contains("logged in") && text.contains("API token created"),
        "the scenario was logged: {} bytes",
        text.len()
    );
    for secret in &secrets {
        let leaks: Vec<String> = text
            .lines()
            // The tests' own HTTP clients keep cookies with cookie_store, which logs them at
            // DEBUG; vestibule does not use it (its reqwest has no cookie store).
            .filter(|l| !l.contains(" cookie_store::"))
            .filter(|l| l.contains(secret.as_str()))
            .map(|l| l.replace(secret.as_str(), "<SECRET>"))
            .collect();
        assert!(leaks.is_empty(), "a secret is in the logs: {leaks:#?}");
    }
}

#[tokio::test]
async fn every_line_of_a_request_carries_its_id_and_only_trusted_ids_are_kept() {
    let logs = capture_logs();
    // A user no other test logs in as: the captured log holds every test's lines.
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.proxy.users.push(UserEntry {
        name: "request-id-reader".into(),
        password: PasswordSpec::Plain(PASSWORD.into()),
        groups: vec![],
    });
    let server = TestServer::start(cfg).await;
    let b = Browser::new(&server);
    let login = b.try_login("request-id-reader", PASSWORD).await;
    let id = login.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(id.len(), 32, "a generated id: {id}");
    let line = logs
        .text()
        .lines()
        .find(|l| l.contains("logged in") && l.contains("request-id-reader"))
        .map(str::to_string)
        .expect("the login is logged");
    assert!(
        line.contains(&id),
        "the login's log line carries its request id: {line}"
    );

    // A client's own id is not believed: it could plant misleading ids in the logs.
    let planted = reqwest::Client::new()
        .get(server.url("/login"))
        .header("X-Request-Id", "planted-by-client")
        .send()
        .await
        .expect("get");
    assert_ne!(planted.headers()["x-request-id"], "planted-by-client");
    server.shutdown().await;

    // A trusted load balancer's id is kept, and reaches the app.
    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let instance = alice.launch_id("echo").await;
    let resp = alice
        .http
        .get(server.url(&format!("/app_proxy/{instance}/")))
        .header("X-Request-Id", "lb-7f3a9c")
        .send()
        .await
        .expect("app");
    assert_eq!(resp.headers()["x-request-id"], "lb-7f3a9c");
    let echo: serde_json::Value = resp.json().await.expect("echo");
    let seen = serde_json::to_string(&echo["headers"]).unwrap_or_default();
    assert!(
        seen.contains("lb-7f3a9c"),
        "the app sees the same id: {seen}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn log_as_json_writes_one_json_object_per_line() {
    let dir = std::env::temp_dir().join(format!(
        "vestibule-json-logs-{}-{}",
        std::process::id(),
        ports::free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = ports::free_port();
    let config = dir.join("application.yml");
    std::fs::write(
        &config,
        format!(
            "proxy:\n  port: {port}\n  bind-address: 127.0.0.1\n  log-as-json: true\n  container-backend: process\n  specs:\n  - id: echo\n    container-cmd: [\"true\"]\n"
        ),
    )
    .expect("config");
    let mut child = Command::new(vestibule_exe())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("VESTIBULE_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let stderr = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a log line at start");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
}
