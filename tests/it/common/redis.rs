//! A real Redis (Debian's `redis-server`) for one test: its own directory and port on
//! 127.0.0.1, with an append-only file so that a restart keeps what was written, as a managed
//! Redis (ElastiCache with persistence) would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

use vestibule::config::{RedisSettings, StoreConfig};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = super::ports::free_port();
        let dir =
            std::env::temp_dir().join(format!("vestibule-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut me = Self {
            child: None,
            port,
            dir,
        };
        me.resume();
        me
    }

    /// What a vestibule replica is configured with to share this Redis.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig::Redis(RedisSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            ..RedisSettings::default()
        })
    }

    /// Kills Redis, as a crash or a lost node would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port and files.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let (port, dir) = (self.port, self.dir.clone());
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new("redis-server"))
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .args(["--save", "", "--protected-mode", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start redis-server (Debian package redis-server; scripts/install-test-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a command with `redis-cli`; its output, if it ran.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
