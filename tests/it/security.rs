//! Attacks from the security pass (issue 18), each replayed against the real server and a real
//! app: a forged identity header must not reach the app, a login must not bounce the browser to
//! another site, and so on.

use crate::common;
use crate::common::*;
use vestibule::config::AppSpec;

/// A real R httpuv server that answers with the user it was told about. httpuv files request
/// headers CGI-style (`HTTP_X_SP_USERID`), mapping `_` and `-` alike: the spelling an attacker
/// uses to slip a second `X-SP-UserId` past a proxy that only strips the dashed form.
fn httpuv_spec(id: &str) -> AppSpec {
    let app = "httpuv::runServer('127.0.0.1', as.integer(Sys.getenv('PORT')), list(call = \
               function(req) list(status = 200L, headers = list('Content-Type' = 'text/plain'), \
               body = paste0('user=', paste(req$HTTP_X_SP_USERID, collapse = ','), \
               ';remote=', paste(req$HTTP_X_REMOTE_USER, collapse = ',')))))";
    let mut spec = process_spec(
        id,
        &["R", "--no-save", "--no-restore", "--quiet", "-e", app],
    );
    spec.http_headers
        .insert("X-Remote-User".into(), template("#{proxy.userId}"));
    spec
}

async fn app_path(b: &Browser, spec: &str) -> String {
    let view = b.launch(spec).await;
    assert_eq!(view["status"], "Up", "{spec} runs: {view}");
    let id = view["id"].as_str().expect("instance id");
    format!("/app_proxy/{id}/")
}

#[tokio::test]
async fn f1_underscore_identity_headers_never_reach_an_httpuv_app() {
    let server = TestServer::start(config(vec![httpuv_spec("httpuv")])).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "httpuv").await;

    let honest = alice.get(&path).await.text().await.expect("body");
    assert_eq!(honest, "user=alice;remote=alice");

    for (name, value) in [
        ("X_SP_UserId", "carol"),
        ("x_sp_usergroups", "admins"),
        ("X-SP_UserId", "carol"),
        ("X_Remote_User", "carol"),
    ] {
        let resp = alice
            .http
            .get(server.url(&path))
            .header(name, value)
            .send()
            .await
            .expect("forged request");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert!(
            !body.contains("carol") && !body.contains("admins"),
            "{name} reached the app: {body}"
        );
        assert_eq!(status, 400, "{name} is refused: {body}");
    }

    // The dashed spelling is what the proxy sets itself: the client's copy is replaced.
    let resp = alice
        .http
        .get(server.url(&path))
        .header("X-SP-UserId", "carol")
        .send()
        .await
        .expect("spoofed request");
    assert_eq!(resp.text().await.expect("body"), "user=alice;remote=alice");
    server.shutdown().await;
}

/// `next` values that would leave the site once a browser has read them: tab and newline are
/// dropped by browsers (joining `/` and `/`), `\` is read as `/`, and encoded forms of each.
const NEXT_ATTACKS: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nSet-Cookie: planted=1",
    "/\\evil.example",
    "\\/evil.example",
    "/%09/evil.example",
    "/%2F/evil.example",
    "/%5C/evil.example",
    "//evil.example",
    "https://evil.example/",
];

#[tokio::test]
async fn f3_login_next_stays_on_this_server() {
    // One user per attempt: the login throttle allows five per user name and minute.
    let mut cfg = config(vec![echo_spec("echo")]);
    let template = cfg.proxy.users[0].clone();
    for i in 0..NEXT_ATTACKS.len() {
        cfg.proxy.users.push(vestibule::config::UserEntry {
            name: format!("user{i}"),
            ..template.clone()
        });
    }
    let server = TestServer::start(cfg).await;
    for (i, next) in NEXT_ATTACKS.iter().enumerate() {
        let user = format!("user{i}");
        let b = Browser::new(&server);
        let page = b
            .http
            .get(server.url(&format!("/login?next={}", urlencoding::encode(next))))
            .send()
            .await
            .expect("login page");
        assert_eq!(page.status(), 200, "login page for next={next:?}");
        let html = page.text().await.expect("html");
        let token = hidden_field(&html, "_csrf").expect("login csrf");
        let resp = b
            .http
            .post(server.url("/login"))
            .form(&[
                ("username", user.as_str()),
                ("password", PASSWORD),
                ("_csrf", &token),
                ("next", next),
            ])
            .send()
            .await
            .expect("post login");
        assert_eq!(resp.status(), 303, "login with next={next:?}");
        assert_eq!(resp.headers()["location"], "/", "next={next:?}");

        // Already logged in, the login page redirects at once: the same rule.
        let resp = b
            .http
            .get(server.url(&format!("/login?next={}", urlencoding::encode(next))))
            .send()
            .await
            .expect("login page, logged in");
        assert_eq!(resp.status(), 303, "logged-in next={next:?}");
        assert_eq!(resp.headers()["location"], "/", "logged-in next={next:?}");
    }

    // A path on this server still works, query and all.
    let b = Browser::login(&server, "alice").await;
    let resp = b
        .http
        .get(server.url(&format!(
            "/login?next={}",
            urlencoding::encode("/app/echo?x=1%202")
        )))
        .send()
        .await
        .expect("login page, logged in");
    assert_eq!(resp.headers()["location"], "/app/echo?x=1%202");
    server.shutdown().await;
}

#[tokio::test]
async fn f3_chromium_lands_on_this_server_after_login() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let chrome = common::chrome::Chrome::start().await;
    let c = &chrome.client;
    for next in [
        "/%09/evil.example",
        "/%5C/evil.example",
        "/%0A/evil.example",
    ] {
        c.goto(&server.url(&format!("/login?next={next}")))
            .await
            .expect("login page");
        for (field, text) in [("username", "alice"), ("password", PASSWORD)] {
            c.find(fantoccini::Locator::Id(field))
                .await
                .expect(field)
                .send_keys(text)
                .await
                .expect("type");
        }
        c.find(fantoccini::Locator::Id("login-button"))
            .await
            .expect("login button")
            .click()
            .await
            .expect("click");
        let landed = eventually(std::time::Duration::from_secs(10), || async {
            c.current_url().await.is_ok_and(|u| u.path() != "/login")
        })
        .await;
        let url = c.current_url().await.expect("url");
        assert!(landed, "login did not complete for {next}: {url}");
        assert_eq!(
            (url.host_str(), url.port()),
            (Some("127.0.0.1"), Some(server.addr.port())),
            "next={next} took the browser to {url}"
        );
        // Log out for the next round, through the form as a person would.
        c.delete_all_cookies().await.expect("clear cookies");
    }
    chrome.stop().await;
    server.shutdown().await;
}

/// What the echo app says it received.
async fn echoed(req: reqwest::RequestBuilder) -> serde_json::Value {
    let resp = req.send().await.expect("request to the app");
    assert_eq!(resp.status(), 200, "the echo app answers");
    resp.json().await.expect("echo json")
}

#[tokio::test]
async fn f11_credentials_vestibule_accepts_never_reach_the_app() {
    use base64::Engine;
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "echo").await;
    let resp = alice
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &alice.csrf)
        .json(&serde_json::json!({ "name": "f11" }))
        .send()
        .await
        .expect("create token");
    assert_eq!(resp.status(), 201);
    let token: serde_json::Value = resp.json().await.expect("token");
    let token = token["token"].as_str().expect("secret").to_string();
    let password = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let anon = reqwest::Client::new();

    let leaks = [
        format!("Basic {password}"),
        format!("BASIC {password}"),
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
    ];
    for auth in &leaks {
        // With the session cookie: vestibule did not need the header, but it is still alice's
        // password or token, and a browser replays Basic credentials to every path.
        let seen = echoed(
            alice
                .http
                .get(server.url(&path))
                .header("Authorization", auth),
        )
        .await;
        assert!(
            seen["headers"].get("authorization").is_none(),
            "{auth:.12}… reached the app alongside the cookie: {seen}"
        );
        // Without a cookie, the token is what logs the request in.
        if auth.to_ascii_lowercase().starts_with("bearer") {
            let seen = echoed(anon.get(server.url(&path)).header("Authorization", auth)).await;
            assert!(
                seen["headers"].get("authorization").is_none(),
                "{auth:.12}… reached the app: {seen}"
            );
        }
    }

    // A credential vestibule has no use for is the app's own: it passes.
    let seen = echoed(
        alice
            .http
            .get(server.url(&path))
            .header("Authorization", "Bearer app-own-token"),
    )
    .await;
    assert_eq!(seen["headers"]["authorization"][0], "Bearer app-own-token");
    server.shutdown().await;
}

/// The environment of a running process, as the kernel holds it.
fn environ_of(pid: i32) -> std::collections::BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn f4_an_app_process_gets_only_its_own_environment() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("vestibule-f4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pid_file = dir.join("app.pid");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let echo = repo_path("tests/apps/echo/app.py");
    let yaml = format!(
        "proxy:\n  port: {port}\n  bind-address: 127.0.0.1\n  authentication: simple\n  \
         container-backend: process\n  process:\n    inherit-env: [PATH, HOME, \"LC_*\", F4_SHARED]\n  \
         users:\n  - name: alice\n    password: \"${{ALICE_PW}}\"\n  specs:\n  - id: echo\n    \
         container-env:\n      APP_GREETING: hello\n    \
         container-cmd: [\"sh\", \"-c\", \"echo $$ > {pids}; exec python3 {echo}\"]\n",
        pids = pid_file.display(),
        echo = echo.display(),
    );
    let config = dir.join("application.yml");
    std::fs::write(&config, &yaml).expect("config");

    // `vestibule check` knows the new key: no "unknown key" warning for it.
    let check = Command::new(vestibule_exe())
        .args(["check", "--config", config.to_str().unwrap_or_default()])
        .env("ALICE_PW", "pw")
        .output()
        .expect("check");
    let said = String::from_utf8_lossy(&check.stderr).to_string()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(
        !said.contains("inherit-env") && !said.contains("proxy.process"),
        "{said}"
    );

    let mut server = Command::new(vestibule_exe())
        .args(["serve", "--config", config.to_str().unwrap_or_default()])
        .env("ALICE_PW", "f4-alice-password")
        .env("OIDC_CLIENT_SECRET", "f4-client-secret")
        .env("LC_ALL", "C.UTF-8")
        .env("F4_SHARED", "shared-on-purpose")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(std::time::Duration::from_secs(10), || async {
        http.get(format!("{base}/actuator/health"))
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(up, "vestibule did not start");
    let view: serde_json::Value = data(
        http.post(format!("{base}/api/proxy/echo"))
            .basic_auth("alice", Some("f4-alice-password"))
            .send()
            .await
            .expect("launch"),
    )
    .await;
    let id = view["id"].as_str().expect("id").to_string();
    let running = eventually(std::time::Duration::from_secs(15), || async {
        let v: serde_json::Value = match http
            .get(format!("{base}/api/proxy/{id}"))
            .basic_auth("alice", Some("f4-alice-password"))
            .send()
            .await
        {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .map(|b| b["data"].clone())
                .unwrap_or_default(),
            Err(_) => return false,
        };
        v["status"] == "Up"
    })
    .await;
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let env = pid.map(environ_of);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(running, "the app did not start");
    let env = env.expect("the app wrote its pid");

    for secret in ["ALICE_PW", "OIDC_CLIENT_SECRET"] {
        assert!(
            !env.contains_key(secret),
            "{secret} reached the app, which got {:?}",
            env.keys()
        );
    }
    assert!(
        !env.values().any(|v| v.contains("f4-")),
        "a secret reached the app, which got {:?}",
        env.keys()
    );
    assert_eq!(
        env.get("F4_SHARED").map(String::as_str),
        Some("shared-on-purpose")
    );
    assert_eq!(env.get("LC_ALL").map(String::as_str), Some("C.UTF-8"));
    assert_eq!(env.get("APP_GREETING").map(String::as_str), Some("hello"));
    assert!(
        env.contains_key("PATH") && env.contains_key("PORT"),
        "{:?}",
        env.keys()
    );
}

/// The median time of a wrong-password API call for each user name in `names`, each from its
/// own loopback address so that the login throttle (per address and per name) never answers
/// in place of the password check.
async fn wrong_password_timings(server: &TestServer, names: &[String], first_ip: u8) -> f64 {
    let mut times = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ip = std::net::IpAddr::from([127, 0, 0, first_ip + i as u8]);
        let client = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .expect("client");
        let started = tokio::time::Instant::now();
        let resp = client
            .get(server.url("/api/proxyspec"))
            .basic_auth(name, Some("wrong password"))
            .send()
            .await
            .expect("login attempt");
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(resp.status(), 401, "{name} is refused, not throttled");
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::test]
async fn f8_a_wrong_password_takes_as_long_for_every_kind_of_user() {
    use vestibule::config::{PasswordSpec, UserEntry};
    const ROUNDS: usize = 7;
    let hashed = vestibule::auth::password::hash(PASSWORD).expect("hash");
    let mut cfg = config(vec![]);
    for i in 0..ROUNDS {
        for (prefix, password) in [
            ("plain", PasswordSpec::Plain(PASSWORD.into())),
            ("hashed", PasswordSpec::Argon2(hashed.clone())),
        ] {
            cfg.proxy.users.push(UserEntry {
                name: format!("{prefix}{i}"),
                password,
                groups: Vec::new(),
            });
        }
    }
    let server = TestServer::start(cfg).await;
    let names =
        |prefix: &str| -> Vec<String> { (0..ROUNDS).map(|i| format!("{prefix}{i}")).collect() };
    // Hashed users first: the slowest kind warms up whatever is lazily set up.
    let hashed = wrong_password_timings(&server, &names("hashed"), 10).await;
    let plain = wrong_password_timings(&server, &names("plain"), 30).await;
    let unknown = wrong_password_timings(&server, &names("ghost"), 50).await;
    let slowest = hashed.max(plain).max(unknown);
    let fastest = hashed.min(plain).min(unknown);
    // A factor, not a margin: the machine may be busy, but a missing hash check is a factor
    // of ten or more (0.5 ms against 18 ms in the attack notes).
    assert!(
        slowest < fastest * 3.0,
        "medians differ too much: hashed {hashed:.4} s, plain {plain:.4} s, unknown {unknown:.4} s"
    );
    server.shutdown().await;
}

fn demo_spec() -> AppSpec {
    vestibule::config::embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs[0]
        .clone()
}

/// Opens the demo app's WebSocket as a browser on the page `origin` would.
async fn ws_from(
    server: &TestServer,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
) -> Result<(), u16> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path}ws", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("cookie"));
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", o.parse().expect("origin"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn f9_websockets_only_from_this_servers_pages_or_listed_origins() {
    let mut cfg = config(vec![demo_spec()]);
    cfg.proxy.allowed_origins = vec!["https://dashboards.example.org".into()];
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "demo").await;
    let cookie = session_cookie(&server, "alice").await;
    let own = format!("http://{}", server.addr);

    assert_eq!(ws_from(&server, &path, &cookie, Some(&own)).await, Ok(()));
    assert_eq!(
        ws_from(&server, &path, &cookie, None).await,
        Ok(()),
        "not a browser"
    );
    assert_eq!(
        ws_from(
            &server,
            &path,
            &cookie,
            Some("https://dashboards.example.org")
        )
        .await,
        Ok(()),
        "a listed origin"
    );
    // Same site, other origin: the cookie goes along, the page is not ours.
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    for origin in ["http://evil.example", other_port.as_str(), "null"] {
        assert_eq!(
            ws_from(&server, &path, &cookie, Some(origin)).await,
            Err(403),
            "a page on {origin}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn f9_portal_pages_may_be_framed_only_by_the_portal() {
    let server = TestServer::start(config(vec![echo_spec("echo")])).await;
    let alice = Browser::login(&server, "alice").await;
    for page in ["/", "/login", "/app/echo", "/tokens", "/my-apps"] {
        let resp = alice.get(page).await;
        let h = resp.headers();
        assert_eq!(
            h.get("x-frame-options").and_then(|v| v.to_str().ok()),
            Some("SAMEORIGIN"),
            "{page}"
        );
        assert_eq!(
            h.get("content-security-policy")
                .and_then(|v| v.to_str().ok()),
            Some("frame-ancestors 'self'"),
            "{page}"
        );
    }
    // The app's own responses are the app's business.
    let path = app_path(&alice, "echo").await;
    assert!(
        alice
            .get(&path)
            .await
            .headers()
            .get("x-frame-options")
            .is_none()
    );
    server.shutdown().await;

    // `server.frame-options: deny`, as ShinyProxy spells it.
    let dir = std::env::temp_dir().join(format!("vestibule-f9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("application.yml");
    std::fs::write(
        &file,
        "proxy:\n  container-backend: process\n  allowed-origins: [\"https://a.example:443\"]\n\
         server:\n  frame-options: deny\n",
    )
    .expect("write");
    let env: std::collections::HashMap<String, String> = Default::default();
    let loaded = vestibule::config::load_file(&file, &env).expect("config loads");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.key.contains("frame-options") || w.key.contains("allowed-origins")),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(
        loaded.config.server.frame_options,
        vestibule::config::FrameOptions::Deny
    );
    assert_eq!(loaded.config.proxy.allowed_origins, ["https://a.example"]);
}

/// A raw connection to the server from a given loopback address.
async fn raw_from(server: &TestServer, last_octet: u8) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, last_octet], 0)))
        .expect("bind");
    socket.connect(server.addr).await.expect("connect")
}

/// Whether the server closes `conn` within `within` (an answer before the close is allowed,
/// e.g. 408).
async fn closed_within(conn: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Sends a whole request on `conn` and reads the status line of the answer.
async fn ask(conn: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn f7_slow_and_idle_connections_are_closed_and_capped() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let mut cfg = config(vec![]);
    cfg.proxy.connections = vestibule::config::ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        max_per_address: 4,
        max_total: 6,
    };
    let server = TestServer::start(cfg).await;
    // Let the server bind and start accepting.
    assert_eq!(
        ask(&mut raw_from(&server, 1).await, "/actuator/health").await,
        "HTTP/1.1 200 OK"
    );

    // A half-sent head: closed once its time is up.
    let mut slow = raw_from(&server, 2).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "half-sent head held open"
    );

    // An idle keep-alive connection: closed as well.
    let mut idle = raw_from(&server, 3).await;
    assert_eq!(ask(&mut idle, "/actuator/health").await, "HTTP/1.1 200 OK");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection held open"
    );
    server.shutdown().await;

    // The caps, with a head timeout long enough that the held connections stay.
    let mut cfg = config(vec![]);
    cfg.proxy.connections = vestibule::config::ConnectionLimits {
        header_read_timeout: Duration::from_secs(60),
        max_per_address: 4,
        max_total: 6,
    };
    let server = TestServer::start(cfg).await;
    assert_eq!(
        ask(&mut raw_from(&server, 1).await, "/actuator/health").await,
        "HTTP/1.1 200 OK"
    );

    // One address may hold four connections; a fifth is closed at once, others still served.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(raw_from(&server, 4).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = raw_from(&server, 4).await;
    assert!(
        closed_within(&mut fifth, Duration::from_millis(500)).await,
        "fifth from one address"
    );
    assert_eq!(
        ask(&mut raw_from(&server, 5).await, "/actuator/health").await,
        "HTTP/1.1 200 OK"
    );

    // Six in all (four above, two more): the server is full, yet health still answers.
    held.push(raw_from(&server, 6).await);
    held.push(raw_from(&server, 7).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ask(&mut raw_from(&server, 8).await, "/actuator/health").await,
        "HTTP/1.1 200 OK"
    );
    let busy = ask(&mut raw_from(&server, 9).await, "/login").await;
    assert_eq!(
        busy, "HTTP/1.1 503 Service Unavailable",
        "past the cap, only health"
    );
    drop(held);
    server.shutdown().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The demo app's WebSocket, opened with the given credential header.
async fn demo_ws(server: &TestServer, path: &str, header: (&str, &str)) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path}ws", server.addr)
        .into_client_request()
        .expect("request");
    let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(header.0.as_bytes())
        .expect("header name");
    req.headers_mut()
        .insert(name, header.1.parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket opens");
    ws
}

/// Whether the WebSocket answers a square; `false` once it has been closed.
async fn ws_alive(ws: &mut Ws) -> bool {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    if ws.send(Message::text("6")).await.is_err() {
        return false;
    }
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.as_str().contains("36"),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    answer.unwrap_or(false)
}

/// Waits for the server to close the WebSocket.
async fn ws_closed(ws: &mut Ws) -> bool {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A session cookie and that session's CSRF token.
async fn session_with_csrf(server: &TestServer, user: &str) -> (String, String) {
    let cookie = session_cookie(server, user).await;
    let page = reqwest::Client::new()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("portal")
        .text()
        .await
        .expect("html");
    let csrf = hidden_field(&page, "_csrf").expect("csrf");
    (cookie, csrf)
}

#[tokio::test]
async fn f10_logout_and_token_revocation_close_the_websockets_they_opened() {
    let mut demo = demo_spec();
    // Logout must close the WebSocket itself, not by way of stopping the app.
    demo.stop_on_logout = false;
    let server = TestServer::start(config(vec![demo])).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "demo").await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // Logout closes the session's WebSocket, and not one of another session of the same user.
    let (cookie, csrf) = session_with_csrf(&server, "alice").await;
    let (other_cookie, _) = session_with_csrf(&server, "alice").await;
    let mut ws = demo_ws(&server, &path, ("cookie", &cookie)).await;
    let mut other = demo_ws(&server, &path, ("cookie", &other_cookie)).await;
    assert!(ws_alive(&mut ws).await && ws_alive(&mut other).await);
    let resp = plain
        .post(server.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 303);
    assert!(
        ws_closed(&mut ws).await,
        "the WebSocket outlived its session"
    );

    // Revoking a token closes what it opened.
    let resp = alice
        .http
        .post(server.url("/api/tokens"))
        .header("X-CSRF-Token", &alice.csrf)
        .json(&serde_json::json!({ "name": "f10" }))
        .send()
        .await
        .expect("create token");
    let token: serde_json::Value = resp.json().await.expect("token");
    let secret = token["token"].as_str().expect("secret");
    let id = token["id"].as_str().expect("id");
    let mut by_token = demo_ws(
        &server,
        &path,
        ("authorization", &format!("Bearer {secret}")),
    )
    .await;
    assert!(ws_alive(&mut by_token).await);
    let resp = alice
        .api(reqwest::Method::DELETE, &format!("/api/tokens/{id}"))
        .await;
    assert_eq!(resp.status(), 200, "revoke");
    assert!(
        ws_closed(&mut by_token).await,
        "the WebSocket outlived its token"
    );

    assert!(
        ws_alive(&mut other).await,
        "another session's WebSocket stays open"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn f10_an_admin_stop_closes_the_instances_websockets() {
    let server = TestServer::start(config(vec![demo_spec()])).await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "demo").await;
    let id = path.trim_start_matches("/app_proxy/").trim_end_matches('/');
    let (cookie, _) = session_with_csrf(&server, "alice").await;
    let mut ws = demo_ws(&server, &path, ("cookie", &cookie)).await;
    assert!(ws_alive(&mut ws).await);
    let (root, root_csrf) = session_with_csrf(&server, "root").await;
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(server.url(&format!("/admin/instances/{id}/stop")))
        .header("cookie", &root)
        .form(&[("_csrf", root_csrf.as_str())])
        .send()
        .await
        .expect("admin stop");
    assert_eq!(resp.status(), 303);
    assert!(
        ws_closed(&mut ws).await,
        "the WebSocket outlived its instance"
    );
    server.shutdown().await;
}

/// An app that tries to plant vestibule's session cookie (and sets one of its own).
fn cookie_planting_spec(id: &str) -> AppSpec {
    let code = r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Set-Cookie', 'vestibule_session=planted; Path=/')
        self.send_header('Set-Cookie', 'vestibule_login_csrf=planted; Path=/')
        self.send_header('Set-Cookie', 'app_pref=dark; Path=/')
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"#;
    process_spec(id, &["python3", "-c", code])
}

#[tokio::test]
async fn f6_apps_cannot_set_our_cookies_and_other_sites_cannot_call_the_api() {
    let server = TestServer::start(config(vec![
        cookie_planting_spec("planter"),
        echo_spec("echo"),
    ]))
    .await;
    let alice = Browser::login(&server, "alice").await;
    let path = app_path(&alice, "planter").await;
    let resp = alice.get(&path).await;
    assert_eq!(resp.status(), 200);
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    assert_eq!(set, ["app_pref=dark; Path=/"], "only the app's own cookie");

    // A state-changing API call with the cookie and the CSRF token, from a page of another
    // origin on the same site (what app code on a sibling host could make): refused.
    let own = format!("http://{}", server.addr);
    for (header, value) in [
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://apps.evil.example"),
    ] {
        let resp = alice
            .http
            .post(server.url("/api/proxy/echo"))
            .header("X-CSRF-Token", &alice.csrf)
            .header(header, value)
            .send()
            .await
            .expect("api call");
        assert_eq!(resp.status(), 403, "{header}: {value}");
    }
    let resp = alice
        .http
        .post(server.url("/api/proxy/echo"))
        .header("X-CSRF-Token", &alice.csrf)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &own)
        .send()
        .await
        .expect("api call");
    assert_eq!(resp.status(), 201, "from the portal's own page");
    server.shutdown().await;
}

#[tokio::test]
async fn f7_health_answers_while_half_sent_heads_fill_a_low_file_limit() {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let dir = std::env::temp_dir().join(format!("vestibule-f7-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = dir.join("application.yml");
    std::fs::write(
        &config,
        format!(
            "proxy:\n  port: {port}\n  bind-address: 127.0.0.1\n  authentication: none\n  \
             container-backend: process\n  specs:\n  - id: echo\n    container-cmd: [python3, \
             app.py]\n"
        ),
    )
    .expect("config");
    // The attack notes lowered the file limit so that a few hundred connections exhaust it.
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec {} serve --config {}",
            vestibule_exe().display(),
            config.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let up = eventually(Duration::from_secs(10), || async {
        http.get(format!("{base}/actuator/health"))
            .send()
            .await
            .is_ok()
    })
    .await;
    let mut heads = Vec::new();
    if up {
        for _ in 0..400 {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(mut c) => {
                    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
                    heads.push(c);
                }
                Err(_) => break,
            }
        }
        // Time for the server to take up what the kernel queued (the heads' limit is 30 s).
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // A new connection, as a probe makes: the one above may still be pooled.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let health = probe.get(format!("{base}/actuator/health")).send().await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up, "vestibule did not start");
    let status = health.map(|r| r.status().as_u16());
    assert!(
        matches!(status, Ok(200)),
        "health with {} half-sent heads open: {status:?}",
        heads.len()
    );
}

/// Behind a load balancer every user arrives from the balancer's few addresses, so the
/// per-address cap must not count a trusted proxy; the cap still holds for everyone else.
#[tokio::test]
async fn f7_the_per_address_cap_spares_a_trusted_load_balancer() {
    use std::time::Duration;
    let mut cfg = config(vec![]);
    cfg.proxy.connections = vestibule::config::ConnectionLimits {
        header_read_timeout: Duration::from_secs(60),
        max_per_address: 2,
        max_total: 50,
    };
    cfg.server.trusted_proxies = vec!["127.0.0.9/32".parse().expect("net")];
    let server = TestServer::start(cfg).await;
    assert_eq!(
        ask(&mut raw_from(&server, 1).await, "/actuator/health").await,
        "HTTP/1.1 200 OK"
    );
    let mut balancer = Vec::new();
    for _ in 0..6 {
        balancer.push(raw_from(&server, 9).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (i, conn) in balancer.iter_mut().enumerate() {
        assert_eq!(
            ask(conn, "/actuator/health").await,
            "HTTP/1.1 200 OK",
            "connection {i} from the balancer"
        );
    }
    let mut client = Vec::new();
    for _ in 0..2 {
        client.push(raw_from(&server, 4).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = raw_from(&server, 4).await;
    assert!(
        closed_within(&mut third, Duration::from_millis(500)).await,
        "the third from an untrusted address is refused"
    );
    server.shutdown().await;
}

/// F12: an app given a port that another local process binds first (before the app, or in the
/// moment after it crashed) must not be routed to: the squatter would get its user's requests
/// with their identity headers.
#[tokio::test]
async fn f12_a_port_squatted_by_another_process_is_never_routed_to() {
    let dir = std::env::temp_dir().join(format!("vestibule-f12-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port_file = dir.join("port");
    // The app tells us its port and never listens on it; we take the port instead.
    let app = process_spec(
        "slowpoke",
        &[
            "sh",
            "-c",
            &format!("echo $PORT > {}; exec sleep 60", port_file.display()),
        ],
    );
    let server = TestServer::start(config(vec![app])).await;
    let alice = Browser::login(&server, "alice").await;
    let started = alice.api(reqwest::Method::POST, "/app_i/slowpoke/_").await;
    assert_eq!(started.status(), 200);
    let id = data(started).await["id"].as_str().expect("id").to_string();
    let mut port = None;
    for _ in 0..100 {
        if port.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        port = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
    }
    let port = port.expect("the app wrote its port");
    // The squatter: answers 200 to anything, and remembers the identity headers it saw.
    let squatter = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("take the app's port");
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let serving = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = squatter.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            record
                .lock()
                .push(String::from_utf8_lossy(&buf[..n]).to_lowercase());
            let _ = conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nsquatted",
                )
                .await;
        }
    });
    let mut view = serde_json::Value::Null;
    for _ in 0..20 {
        view = data(
            alice
                .get(&format!("/api/proxy/{id}/status?watch=true&timeout=2"))
                .await,
        )
        .await;
        if view["status"] != "New" {
            break;
        }
    }
    assert_eq!(view["status"], "Stopped", "{view}");
    let reason = view["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains(&format!("port {port} is held by another process")),
        "the user is told why: {reason}"
    );
    let page = alice.get(&format!("/app_proxy/{id}/")).await;
    assert_ne!(page.status(), 200, "nothing is routed to the squatter");
    assert!(
        seen.lock().iter().all(|req| !req.contains("x-sp-userid")),
        "the squatter never saw alice's identity: {:?}",
        seen.lock()
    );
    serving.abort();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a snoop app answers through vestibule (which sends its instance token).
async fn ask_app(who: &Browser, id: &str, path: String) -> serde_json::Value {
    let resp = who.get(&format!("/app_proxy/{id}{path}")).await;
    assert_eq!(resp.status(), 200, "vestibule's own requests are answered");
    resp.json::<serde_json::Value>().await.expect("json")
}

/// F5: with `proxy.process.uid-range`, each instance runs as a user of its own: one user's app
/// cannot read another's files or vestibule's config, and an app that checks its instance token
/// answers nobody but vestibule, so a neighbour cannot call it with a forged identity.
#[tokio::test]
async fn f5_apps_run_as_users_of_their_own_and_cannot_reach_each_other() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the isolation test runs as root, as CI does"
    );
    let snoop = repo_path("tests/apps/snoop/app.py");
    let yaml = format!(
        "proxy:
  authentication: simple
  container-backend: process
  container-wait-time: 15000
  process:
    uid-range: 61000-61099
  users:
  - name: alice
    password: \"{PASSWORD}\"
  - name: bob
    password: \"{PASSWORD}\"
  specs:
  - id: snoop
    container-cmd: [\"python3\", \"{}\"]
",
        snoop.display()
    );
    let file = common::replica::ConfigFile::write("f5", &yaml);
    let loaded = vestibule::config::load_file(&file.path, &std::collections::HashMap::new())
        .expect("valid config");

    // A config file other users can read is refused at the start.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let opts = vestibule::RunOptions {
        supervisor_exe: vestibule_exe(),
        work_dir: std::env::temp_dir().join(format!("vestibule-f5-{}", std::process::id())),
    };
    let refused = vestibule::run(loaded.config.clone(), opts, listener, async {})
        .await
        .expect_err("a readable config file stops the start");
    assert!(format!("{refused:#}").contains("chmod 600"), "{refused:#}");

    std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = TestServer::start(loaded.config).await;
    let alice = Browser::login(&server, "alice").await;
    let bob = Browser::login(&server, "bob").await;
    let alices = alice.launch_id("snoop").await;
    let bobs = bob.launch_id("snoop").await;
    let a = ask_app(&alice, &alices, "/".into()).await;
    let b = ask_app(&bob, &bobs, "/".into()).await;
    let (a_uid, b_uid) = (
        a["uid"].as_u64().unwrap_or(0),
        b["uid"].as_u64().unwrap_or(0),
    );
    assert!((61000..=61099).contains(&a_uid), "{a}");
    assert!((61000..=61099).contains(&b_uid), "{b}");
    assert_ne!(a_uid, b_uid, "two instances never share a user");

    // Alice's app cannot read Bob's instance folder, nor vestibule's config.
    let bobs_secret = format!("{}/secret.txt", b["dir"].as_str().unwrap_or_default());
    for path in [bobs_secret, file.path.display().to_string()] {
        let tried = ask_app(&alice, &alices, format!("/read?path={path}")).await;
        assert!(tried.get("denied").is_some(), "{path}: {tried}");
    }
    // Its own folder is its own.
    let own = format!("{}/secret.txt", a["dir"].as_str().unwrap_or_default());
    let mine = ask_app(&alice, &alices, format!("/read?path={own}")).await;
    assert_eq!(mine["read"], "only mine\n", "{mine}");

    // Alice's app calls Bob's directly, as alice: without the instance token it is refused.
    let port = b["port"].as_str().unwrap_or_default();
    let called = ask_app(&alice, &alices, format!("/call?port={port}")).await;
    assert_eq!(called["status"], 403, "{called}");
    server.shutdown().await;
}

/// Serves `html` to every request on `listener` (a page of another origin, for Chromium).
fn serve_page(listener: tokio::net::TcpListener, html: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = conn.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                html.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(html.as_bytes()).await;
        }
    })
}

/// F9 in Chromium: a page of another origin on the same site, which the user's browser sends
/// the session cookie from, can neither open the user's app WebSocket nor frame the portal.
#[tokio::test]
async fn f9_chromium_another_origins_page_gets_no_app_websocket_and_no_portal_frame() {
    use crate::common::chrome::Chrome;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let portal = format!("http://vestibule.test:{port}");
    let server = TestServer::start_on(config(vec![demo_spec()]), listener).await;
    let chrome = Chrome::start_with(&["--host-resolver-rules=MAP *.test 127.0.0.1"]).await;
    let c = &chrome.client;
    // The app's own page opens its WebSocket: the control.
    crate::common::app_browser::open_app_at(c, &format!("{portal}/login"), "alice", "demo", None)
        .await;
    crate::common::app_browser::wait_text(c, "#status", |t| t == "connected").await;
    let alice = Browser::login(&server, "alice").await;
    let running = data_list(alice.get("/api/proxy").await).await;
    let path = running
        .first()
        .and_then(|p| p["publicPath"].as_str())
        .expect("the demo's public path")
        .to_string();

    let evil = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let evil_port = evil.local_addr().expect("addr").port();
    let page = format!(
        r#"<!doctype html><html><body><div id="verdict">working</div>
<iframe id="portal" src="{portal}/my-apps"></iframe><script>
const say = (t) => {{ document.getElementById('verdict').textContent = t; }};
const ws = new WebSocket('ws://vestibule.test:{port}{path}ws');
ws.onopen = () => say('opened');
ws.onclose = () => {{ if (document.getElementById('verdict').textContent === 'working') say('refused'); }};
</script></body></html>"#
    );
    let serving = serve_page(evil, page);
    c.goto(&format!("http://evil.vestibule.test:{evil_port}/"))
        .await
        .expect("the other origin's page");
    let verdict = crate::common::app_browser::wait_text(c, "#verdict", |t| t != "working").await;
    assert_eq!(
        verdict, "refused",
        "the app's WebSocket from another origin"
    );
    // The portal refuses to be framed by it: Chromium shows its error page in the frame.
    c.find(fantoccini::Locator::Id("portal"))
        .await
        .expect("iframe")
        .enter_frame()
        .await
        .expect("enter frame");
    let mut framed = serde_json::Value::Null;
    for _ in 0..50 {
        framed = c
            .execute("return location.href", vec![])
            .await
            .unwrap_or_default();
        if framed.as_str().is_some_and(|h| h != "about:blank") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        framed
            .as_str()
            .is_some_and(|h| h.starts_with("chrome-error://")),
        "the portal is not shown in another site's frame: {framed}"
    );
    serving.abort();
    chrome.stop().await;
    server.shutdown().await;
}
