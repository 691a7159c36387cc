//! A vestibule server run in-process on 127.0.0.1:0, with an HTTP client that logs in like a
//! browser.
#![allow(dead_code)]

pub mod app_browser;
pub mod certs;
pub mod chrome;
pub mod docker;
pub mod influxdb;
pub mod keeper;
pub mod kube_mock;
pub mod log_capture;
pub mod metrics;
pub mod nginx;
pub mod oidc_provider;
pub mod ports;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod replica;
pub mod s3;
pub mod saml_idp;
pub mod shinyproxy;
pub mod slapd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vestibule::config::{AppSpec, AuthMethod, Config, PasswordSpec, UserEntry, embedded_default};

pub const PASSWORD: &str = "correct horse";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn vestibule_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vestibule"))
}

/// A spec that runs `cmd` as a local process, with a short wait so failures are quick.
pub fn process_spec(id: &str, cmd: &[&str]) -> AppSpec {
    // The built-in demo app's settings, so a new AppSpec field needs no change here.
    let demo = embedded_default(&vestibule_exe(), String::new())
        .proxy
        .specs
        .remove(0);
    AppSpec {
        id: id.into(),
        display_name: format!("App {id}"),
        description: None,
        container_cmd: cmd.iter().map(|s| s.to_string()).collect(),
        heartbeat_timeout: None,
        max_instances: Some(2),
        ..demo
    }
}

/// The stdlib-only echo app (tests/apps/echo/app.py).
pub fn echo_spec(id: &str) -> AppSpec {
    let script = repo_path("tests/apps/echo/app.py");
    let mut spec = process_spec(id, &["python3", script.to_str().unwrap_or_default()]);
    spec.container_env
        .insert("APP_GREETING".into(), "hello".into());
    spec
}

/// Users alice (group `analysts`), bob (group `analysts`) and root (group `admins`, admin).
pub fn config(specs: Vec<AppSpec>) -> Config {
    let mut cfg = embedded_default(&vestibule_exe(), String::new());
    cfg.proxy.authentication = AuthMethod::Simple;
    cfg.proxy.container_wait_time = Duration::from_secs(15);
    cfg.proxy.users = ["alice", "bob", "root"]
        .iter()
        .map(|name| UserEntry {
            name: name.to_string(),
            password: PasswordSpec::Plain(PASSWORD.into()),
            groups: vec![
                if *name == "root" {
                    "admins"
                } else {
                    "analysts"
                }
                .to_string(),
            ],
        })
        .collect();
    cfg.proxy.admin_groups = vec!["admins".into()];
    cfg.proxy.specs = specs;
    cfg
}

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub work_dir: PathBuf,
}

impl TestServer {
    pub async fn start(cfg: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(cfg, listener).await
    }

    /// Starts on a listener bound beforehand, for configs that must name their own address
    /// (SAML's `app-base-url`).
    pub async fn start_on(cfg: Config, listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("addr");
        let work_dir = std::env::temp_dir().join(format!(
            "vestibule-test-{}-{}",
            std::process::id(),
            addr.port()
        ));
        let opts = vestibule::RunOptions {
            supervisor_exe: vestibule_exe(),
            work_dir: work_dir.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(vestibule::run(cfg, opts, listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
            work_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Shuts the server down the way SIGTERM would, and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(30), task).await;
            assert!(matches!(r, Ok(Ok(Ok(())))), "clean shutdown: {r:?}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

/// The CSRF token every page carries in `<meta name="csrf-token">`.
pub fn meta_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// The value of a hidden form field in a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Self::at(&server.url(""))
    }

    /// A browser talking to whatever listens at `base` (a replica process, a balancer).
    pub fn at(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            http,
            base: base.to_string(),
            csrf: String::new(),
        }
    }

    pub async fn login(server: &TestServer, user: &str) -> Self {
        let mut b = Self::new(server);
        let resp = b.try_login(user, PASSWORD).await;
        assert_eq!(resp.status(), 303, "login as {user}");
        // A page that is never a redirect (`/` may be, with a landing page) and has the token
        // even without the navbar.
        let page = b.get("/my-apps").await.text().await.expect("my apps");
        b.csrf = meta_csrf(&page).expect("csrf token on the page");
        b
    }

    pub async fn try_login(&self, user: &str, password: &str) -> reqwest::Response {
        let page = self.get("/login").await.text().await.expect("login page");
        let token = hidden_field(&page, "_csrf").expect("login csrf");
        self.http
            .post(format!("{}/login", self.base))
            .form(&[
                ("username", user),
                ("password", password),
                ("_csrf", &token),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("post login")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("get")
    }

    pub async fn api(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("X-CSRF-Token", &self.csrf)
            .send()
            .await
            .expect("api call")
    }

    /// Starts an instance of `spec` and waits until it runs or fails; returns its final view.
    /// Launches `spec` and returns the new instance's id once it has left "starting".
    pub async fn launch_id(&self, spec: &str) -> String {
        self.launch(spec).await["id"]
            .as_str()
            .expect("the instance's id")
            .to_string()
    }

    /// Starts `spec` as the app page does (`POST /app_i/<spec>/_`, answered at once) and
    /// follows it with `status?watch=true` until it is up or stopped; returns the proxy (the
    /// `data` of ShinyProxy's envelope).
    pub async fn launch(&self, spec: &str) -> serde_json::Value {
        self.launch_named(spec, "_").await
    }

    /// [`Browser::launch`] of the instance named `name`.
    pub async fn launch_named(&self, spec: &str, name: &str) -> serde_json::Value {
        let resp = self
            .api(reqwest::Method::POST, &format!("/app_i/{spec}/{name}"))
            .await;
        assert_eq!(resp.status(), 200, "launch {spec}");
        let mut view = data(resp).await;
        for _ in 0..60 {
            if view["status"] != "New" {
                return view;
            }
            let id = view["id"].as_str().expect("id").to_string();
            view = data(
                self.get(&format!("/api/proxy/{id}/status?watch=true&timeout=5"))
                    .await,
            )
            .await;
        }
        panic!("{spec} never left 'New': {view}");
    }
}

/// The session cookie a logged-in browser holds.
pub async fn session_cookie(server: &TestServer, user: &str) -> String {
    session_cookie_at(&server.url(""), user).await
}

/// [`session_cookie`] from a server at `base` (a replica process, a balancer).
pub async fn session_cookie_at(base: &str, user: &str) -> String {
    let resp = Browser::at(base).try_login(user, PASSWORD).await;
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vestibule_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string()
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie has exited; only its parent has not reaped it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A config value with `#{...}` expressions, for settings built in code.
pub fn template(source: &str) -> vestibule::spel::Template {
    vestibule::spel::Template::parse(source).expect("a valid template")
}

/// The `data` of ShinyProxy's `{"status":"success","data":…}` envelope.
pub async fn data(resp: reqwest::Response) -> serde_json::Value {
    let body: serde_json::Value = resp.json().await.expect("a JSON body");
    assert_eq!(body["status"], "success", "{body}");
    body["data"].clone()
}

/// Whether a proxy's start failed: ShinyProxy's `Stopped`, with vestibule's `reason`.
pub fn failed(view: &serde_json::Value) -> bool {
    view["status"] == "Stopped" && view["reason"].is_string()
}

/// The `data` of an envelope that holds a list.
pub async fn data_list(resp: reqwest::Response) -> Vec<serde_json::Value> {
    match data(resp).await {
        serde_json::Value::Array(items) => items,
        other => panic!("expected a list, got {other}"),
    }
}
