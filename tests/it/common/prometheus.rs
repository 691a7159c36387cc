//! A real Prometheus (Debian's `prometheus`) for one test: its config and storage in a temporary
//! directory, scraping the given targets every second, its HTTP API on a free 127.0.0.1 port.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct Prometheus {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) at `path`, and waits until it is ready.
    pub async fn start(targets: &[String], path: &str) -> Self {
        let exe = PathBuf::from("/usr/bin/prometheus");
        assert!(
            exe.exists(),
            "prometheus not found: run scripts/install-test-deps.sh (Debian package prometheus)"
        );
        let port = super::ports::free_port();
        let dir = std::env::temp_dir().join(format!(
            "vestibule-prometheus-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        // One-second scrapes, so a test sees its traffic within seconds.
        let conf = format!(
            "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vestibule
    metrics_path: {path}
    static_configs:
      - targets: [{}]
",
            targets.join(", ")
        );
        let conf_path = dir.join("prometheus.yml");
        std::fs::write(&conf_path, conf).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let data = dir.join("data");
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(exe))
                .arg(format!("--config.file={}", conf_path.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
        })
        .expect("start prometheus");
        let mut me = Self {
            child: Some(child),
            port,
            dir,
        };
        let ready = format!("{}/-/ready", me.base());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(&ready).await
                && r.status() == 200
            {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("prometheus exited at start: {status}\n{}", me.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready on {port}\n{}",
                me.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        me
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until every target has been scraped successfully (`health` `up`).
    pub async fn targets_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/api/v1/targets", self.base())).await
                && let Ok(v) = r.json::<Value>().await
            {
                let active = v["data"]["activeTargets"].as_array().cloned();
                if active.is_some_and(|a| !a.is_empty() && a.iter().all(|t| t["health"] == "up")) {
                    return;
                }
                last = v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("targets not up within {within:?}: {last}");
    }

    /// An instant query at the current time; returns `data.result` (the series), or the error
    /// Prometheus gave.
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base()))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        match &body["data"]["result"] {
            Value::Array(series) => Ok(series.clone()),
            other => Err(format!("not a vector: {other}")),
        }
    }

    /// Polls `promql` until some series has a value `accept` takes.
    pub async fn wait_for(&self, promql: &str, within: Duration, accept: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + within;
        let mut last = Ok(Vec::new());
        while Instant::now() < deadline {
            last = self.query(promql).await;
            if let Ok(series) = &last
                && series.iter().filter_map(value).any(&accept)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{promql} never had the value awaited within {within:?}: {last:?}");
    }
}

/// The value of one series of an instant vector.
pub fn value(series: &Value) -> Option<f64> {
    series["value"][1].as_str()?.parse().ok()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
