//! A local S3 server for one test: moto's (`moto[server]` from PyPI, in the test venv that
//! scripts/install-test-deps.sh builds) on a free 127.0.0.1 port.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct S3 {
    child: Option<Child>,
    pub port: u16,
}

impl S3 {
    pub fn start() -> Self {
        let venv = std::env::var_os("VESTIBULE_TEST_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vestibule/venv"))
            })
            .expect("VESTIBULE_TEST_VENV or HOME");
        let server = venv.join("bin/moto_server");
        assert!(
            server.exists(),
            "{} not found: run scripts/install-test-deps.sh (moto[server])",
            server.display()
        );
        let port = super::ports::free_port();
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(server))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start moto_server");
        let mut me = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("moto_server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
    }

    fn bucket(&self, bucket: &str) -> rusty_s3::Bucket {
        rusty_s3::Bucket::new(
            self.endpoint().parse().expect("endpoint"),
            rusty_s3::UrlStyle::Path,
            bucket.to_string(),
            "us-east-1",
        )
        .expect("bucket")
    }

    /// The keys under `prefix` in `bucket` (moto refuses unsigned reads).
    pub async fn keys(&self, bucket: &str, prefix: &str, key: &str, secret: &str) -> Vec<String> {
        use rusty_s3::S3Action;
        let bucket = self.bucket(bucket);
        let credentials = rusty_s3::Credentials::new(key, secret);
        let mut list = bucket.list_objects_v2(Some(&credentials));
        list.with_prefix(prefix);
        let xml = reqwest::get(list.sign(Duration::from_secs(60)).as_str())
            .await
            .expect("list objects")
            .text()
            .await
            .unwrap_or_default();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    pub async fn object(&self, bucket: &str, object: &str, key: &str, secret: &str) -> String {
        use rusty_s3::S3Action;
        let bucket = self.bucket(bucket);
        let credentials = rusty_s3::Credentials::new(key, secret);
        let get = bucket.get_object(Some(&credentials), object);
        reqwest::get(get.sign(Duration::from_secs(60)).as_str())
            .await
            .expect("get object")
            .text()
            .await
            .unwrap_or_default()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
