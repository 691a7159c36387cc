//! Redis behind Sentinel (Spring's `spring.data.redis.sentinel.*`): vestibule finds the master
//! through a real `redis-server --sentinel` that asks for its own password, and keeps working when the master dies and
//! Sentinel promotes its replica, as a managed Redis fails over.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::keeper::{dies_with_us, spawn};
use crate::common::*;
use vestibule::config::{RedisSentinel, RedisSettings, StoreConfig};

/// One `redis-server` process with its own folder, killed when dropped.
struct Process {
    child: Option<Child>,
    port: u16,
    password: Option<&'static str>,
}

impl Process {
    fn start(args: Vec<String>, port: u16, password: Option<&'static str>) -> Self {
        let child = spawn(move || {
            dies_with_us(&mut Command::new("redis-server"))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start redis-server (scripts/install-test-deps.sh)");
        let me = Self {
            child: Some(child),
            port,
            password,
        };
        for _ in 0..150 {
            if me.cli(&["PING"]).as_deref() == Some("PONG") {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {port} did not answer");
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(pw) = self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd.args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn data_server(dir: &std::path::Path, port: u16, replica_of: Option<u16>) -> Process {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.display().to_string());
    if let Some(master) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
    }
    Process::start(args, port, None)
}

/// The sentinels ask for a password of their own (`spring.data.redis.sentinel.password`).
const SENTINEL_PASSWORD: &str = "sentinel-secret";

#[tokio::test]
async fn through_sentinel_vestibule_follows_a_failover_and_keeps_its_sessions() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("vestibule-sentinel-{}", ports::free_port()));
    for sub in ["master", "replica", "sentinel"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dir");
    }
    let (master_port, replica_port, sentinel_port) =
        (ports::free_port(), ports::free_port(), ports::free_port());
    let mut master = data_server(&dir.join("master"), master_port, None);
    let replica = data_server(&dir.join("replica"), replica_port, Some(master_port));
    // Sentinel rewrites its own file, so it gets one of its own.
    let conf = dir.join("sentinel/sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
             requirepass {SENTINEL_PASSWORD}\n\
             sentinel monitor vmaster 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds vmaster 1000\n\
             sentinel failover-timeout vmaster 5000\n",
            dir.join("sentinel").display()
        ),
    )
    .expect("sentinel.conf");
    let _sentinel = Process::start(
        vec![conf.display().to_string(), "--sentinel".into()],
        sentinel_port,
        Some(SENTINEL_PASSWORD),
    );

    let mut cfg = config(vec![echo_spec("echo")]);
    cfg.store = StoreConfig::Redis(RedisSettings {
        sentinel: Some(RedisSentinel {
            master: "vmaster".into(),
            nodes: vec![("127.0.0.1".into(), sentinel_port)],
            password: Some(vestibule::config::Secret(SENTINEL_PASSWORD.into())),
        }),
        ..RedisSettings::default()
    });
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let before = alice.launch("echo").await;
    assert_eq!(before["status"], "Up", "{before}");
    // What alice's login wrote has reached the replica before the master goes.
    assert!(
        eventually(Duration::from_secs(10), || async {
            replica
                .cli(&["DBSIZE"])
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
        .await,
        "the replica copies the master"
    );

    master.kill();
    let promoted = eventually(Duration::from_secs(20), || async {
        replica
            .cli(&["ROLE"])
            .is_some_and(|r| r.starts_with("master"))
    })
    .await;
    assert!(promoted, "Sentinel promotes the replica");

    // New writes reach the new master once vestibule has asked Sentinel where it is: a new
    // login stores a session, then alice (still logged in) starts another instance.
    let bob = Browser::new(&server);
    let mut status = 0;
    for _ in 0..60 {
        status = bob.try_login("bob", PASSWORD).await.status().as_u16();
        if status == 303 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, 303, "logins work again after the failover");
    let after = alice.launch_named("echo", "second").await;
    assert_eq!(after["status"], "Up", "{after}");
    let mine = data_list(alice.get("/api/proxy").await).await;
    assert_eq!(
        mine.len(),
        2,
        "the instance from before the failover is still known: {mine:?}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
