//! A real InfluxDB 1.x (Debian's `influxdb`) for one test: its own config and storage in a
//! temporary directory, its HTTP API on a free 127.0.0.1 port.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct Influx {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Influx {
    pub fn start() -> Self {
        let influxd = PathBuf::from("/usr/bin/influxd");
        assert!(
            influxd.exists(),
            "influxd not found: run scripts/install-test-deps.sh (Debian package influxdb)"
        );
        let port = super::ports::free_port();
        let rpc = super::ports::free_port();
        let dir =
            std::env::temp_dir().join(format!("vestibule-influx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("influx dir");
        let d = dir.display();
        let conf = format!(
            "reporting-disabled = true
bind-address = \"127.0.0.1:{rpc}\"
[meta]
  dir = \"{d}/meta\"
[data]
  dir = \"{d}/data\"
  wal-dir = \"{d}/wal\"
  query-log-enabled = false
[http]
  bind-address = \"127.0.0.1:{port}\"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"
        );
        let conf_path = dir.join("influxdb.conf");
        std::fs::write(&conf_path, conf).expect("write influxdb.conf");
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(influxd))
                .arg("-config")
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start influxd");
        let mut me = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("influxd exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "influxd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs an InfluxQL statement; returns the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/query", self.base()))
            .form(&[("db", db), ("q", q)])
            .send()
            .await
            .expect("influx query")
            .json()
            .await
            .expect("influx json")
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
