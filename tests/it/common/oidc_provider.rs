//! A real OpenID Connect provider for tests: django-oauth-toolkit (tests/apps/oidc_provider)
//! served by waitress on a free loopback port, with a fresh RS256 key and database. It checks
//! the client secret, the redirect URI and PKCE like any production provider. Tests that neither
//! stop it nor need short-lived tokens share one per test binary ([`OidcProvider::shared`]).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::repo_path;

pub const CLIENT_ID: &str = "vestibule-test";
pub const CLIENT_SECRET: &str = "s3cret-for-tests-only";
/// Every seeded user's password (tests/apps/oidc_provider/provider/management/commands/seed.py):
/// alice (analysts), bob (sales), root (admins, analysts).
pub const PASSWORD: &str = "correct horse";

pub struct OidcProvider {
    pub port: u16,
    child: Child,
    data: PathBuf,
}

/// The test venv (scripts/install-test-deps.sh makes it); a clear failure when it is missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VESTIBULE_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vestibule/venv"))
        })
        .expect("VESTIBULE_TEST_VENV or HOME");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python venv at {}: run scripts/install-test-deps.sh",
        venv.display()
    );
    python
}

impl OidcProvider {
    /// The provider every test of this binary may share: access tokens live an hour.
    pub async fn shared() -> &'static OidcProvider {
        static SHARED: tokio::sync::OnceCell<OidcProvider> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(|| OidcProvider::start(3600)).await
    }

    /// Starts a provider of the test's own; access tokens live `access_token_seconds`.
    pub async fn start(access_token_seconds: u64) -> Self {
        let data = std::env::temp_dir().join(format!(
            "vestibule-oidc-{}-{}",
            std::process::id(),
            unique()
        ));
        let dir = data.clone();
        let mut child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(venv_python()))
                .arg(repo_path("tests/apps/oidc_provider/serve.py"))
                .arg(&dir)
                .arg(CLIENT_ID)
                .arg(CLIENT_SECRET)
                .env(
                    "OIDC_ACCESS_TOKEN_SECONDS",
                    access_token_seconds.to_string(),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .expect("start the OIDC provider (tests/apps/oidc_provider/serve.py)");
        let stdout = child.stdout.take().expect("provider stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading after the port line, so the provider never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(p.trim().parse::<u16>().ok());
                }
            }
        });
        let port = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(90)))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .expect(
                "the OIDC provider did not start; is django-oauth-toolkit in the venv? \
                 (scripts/install-test-deps.sh)",
            );
        Self { port, child, data }
    }

    /// Stops the provider, as an outage would.
    pub async fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The provider's RS256 signing key (PEM), for tests that sign tokens as the provider.
    pub fn signing_key_pem(&self) -> Vec<u8> {
        std::fs::read(self.data.join("rsa.pem")).expect("the provider's signing key")
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/o", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Follows a provider's login form like a browser: GET the login page (it carries a CSRF
/// token), post the user's credentials, and follow redirects by hand until vestibule's
/// callback has been answered. Returns the last response (vestibule's redirect after login, or
/// its error page).
pub async fn login_at_provider(
    http: &reqwest::Client,
    authorize_url: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    // authorize → provider login page
    let mut resp = http.get(authorize_url).send().await.expect("authorize");
    let mut url = authorize_url.to_string();
    while resp.status().is_redirection() {
        url = absolute(&url, location(&resp));
        resp = http.get(&url).send().await.expect("follow");
    }
    let page = resp.text().await.expect("provider login page");
    let token = super::hidden_field(&page, "csrfmiddlewaretoken").expect("provider csrf token");
    let next = super::hidden_field(&page, "next")
        .unwrap_or_default()
        .replace("&amp;", "&");
    let form_action = absolute(&url, "/accounts/login/");
    let mut resp = http
        .post(&form_action)
        .header("Referer", &url)
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("username", user),
            ("password", password),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .expect("post provider login");
    url = form_action;
    // login → authorize → vestibule callback; stop once vestibule has answered the callback.
    while resp.status().is_redirection() {
        let next_url = absolute(&url, location(&resp));
        let is_callback = next_url.contains("/login/oauth2/code/shinyproxy");
        resp = http.get(&next_url).send().await.expect("follow");
        url = next_url;
        if is_callback {
            break;
        }
    }
    resp
}

pub fn location(resp: &reqwest::Response) -> &str {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("redirect location")
}

/// A Location made absolute against the URL it came from.
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base
        .match_indices('/')
        .nth(2)
        .map(|(i, _)| i)
        .unwrap_or(base.len());
    format!("{}{location}", &base[..origin_end])
}
