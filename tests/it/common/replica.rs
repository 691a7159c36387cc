//! A vestibule replica as its own process (the built binary, `serve --config`), for tests that
//! kill a replica with SIGKILL, as a lost node or the OOM killer would.

use super::{data, eventually, vestibule_exe};
use std::time::Duration;

pub struct ReplicaProcess {
    child: std::process::Child,
    pub port: u16,
}

impl ReplicaProcess {
    pub async fn start(config: &std::path::Path) -> Self {
        let port = super::ports::free_port();
        let config = config.to_path_buf();
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut std::process::Command::new(vestibule_exe()))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .args(["--port", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
        })
        .expect("start a replica");
        let me = Self { child, port };
        let http = reqwest::Client::new();
        assert!(
            eventually(Duration::from_secs(15), || async {
                http.get(me.url("/actuator/health")).send().await.is_ok()
            })
            .await,
            "the replica on port {port} did not start"
        );
        me
    }

    /// Launches `app` as alice (HTTP Basic) and returns the instance's id.
    pub async fn launch(&self, app: &str) -> String {
        let view: serde_json::Value = data(
            reqwest::Client::new()
                .post(self.url(&format!("/api/proxy/{app}")))
                .basic_auth("alice", Some(super::PASSWORD))
                .send()
                .await
                .expect("launch"),
        )
        .await;
        view["id"].as_str().expect("id").to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `application.yml` in its own temp folder, removed when dropped.
pub struct ConfigFile {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl ConfigFile {
    pub fn write(name: &str, yaml: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vestibule-{name}-{}-{}",
            std::process::id(),
            super::ports::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("config dir");
        let path = dir.join("application.yml");
        std::fs::write(&path, yaml).expect("write application.yml");
        Self { dir, path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
