//! A real round-robin load balancer (Debian's nginx) in front of several vestibule replicas, as
//! an ALB or an ingress would be: WebSockets upgraded, X-Forwarded-For added, and a request to
//! a replica that is gone retried on the next one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Nginx {
    pub fn round_robin(replicas: &[SocketAddr]) -> Self {
        let port = super::ports::free_port();
        let dir =
            std::env::temp_dir().join(format!("vestibule-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
        let servers: String = replicas
            .iter()
            .map(|a| format!("    server {a} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "worker_processes 1;
error_log {dir}/logs/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream vestibule {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://vestibule;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_next_upstream error timeout non_idempotent;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
    }}
  }}
}}
",
            dir = dir.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let prefix = dir.clone();
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new("/usr/sbin/nginx"))
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start nginx (Debian package nginx-light; scripts/install-test-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
