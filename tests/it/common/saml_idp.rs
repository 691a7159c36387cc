//! A real SAML 2.0 identity provider for tests: pysaml2's IdP (tests/apps/saml_idp/idp.py),
//! signing and encrypting with xmlsec1, on a free loopback port. It advertises itself as
//! `localhost` while vestibule is reached as `127.0.0.1`, so that to a browser the IdP is
//! another site, as in production, and the SameSite rules apply for real.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::oidc_provider::{unique, venv_python};
use super::repo_path;

/// Every user's password: alice (analysts), bob (sales), root (admins, analysts).
pub const PASSWORD: &str = "correct horse";

pub struct SamlIdp {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl SamlIdp {
    /// One IdP for the whole test binary; each test registers its own service provider.
    pub async fn shared() -> &'static SamlIdp {
        static SHARED: tokio::sync::OnceCell<SamlIdp> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(SamlIdp::start).await
    }

    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vestibule-saml-idp-{}-{}",
            std::process::id(),
            unique()
        ));
        let arg = dir.clone();
        let mut child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(venv_python()))
                .arg("-W")
                .arg("ignore")
                .arg(repo_path("tests/apps/saml_idp/idp.py"))
                .arg(&arg)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .expect("start the SAML IdP (tests/apps/saml_idp/idp.py)");
        let stdout = child.stdout.take().expect("IdP stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(p.trim().parse::<u16>().ok());
                }
            }
        });
        let port = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .expect("the SAML IdP did not start; is pysaml2 in the venv? (scripts/install-test-deps.sh)");
        Self { port, child, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    pub fn metadata_url(&self) -> String {
        self.url("/metadata")
    }

    /// Tells the IdP about a service provider, from the metadata vestibule serves.
    pub async fn register(&self, sp_metadata: &str) {
        let resp = reqwest::Client::new()
            .post(self.url("/register"))
            .body(sp_metadata.to_string())
            .send()
            .await
            .expect("register the SP at the IdP");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "the IdP refused the SP metadata: {text}"
        );
    }
}

impl Drop for SamlIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
