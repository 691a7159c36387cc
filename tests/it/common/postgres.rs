//! A real PostgreSQL server (Debian's `postgresql`) for one test: its own cluster made with
//! `initdb` in a temporary directory, on a free 127.0.0.1 port. PostgreSQL refuses to run as
//! root, so as root the cluster belongs to the `postgres` user the package creates.
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

pub const USER: &str = "vestibule";
pub const PASSWORD: &str = "stats-db-secret";

fn bin(name: &str) -> PathBuf {
    for v in ["17", "16", "15", "14", "13"] {
        let p = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/{name}"));
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/install-test-deps.sh (Debian package postgresql)");
}

/// The user and group to run as: ourselves, or `postgres` when we are root.
fn owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user (Debian's postgresql package makes one)")
    };
    if id(&["-u"]) != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

fn as_owner(cmd: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = owner() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl Postgres {
    pub fn start() -> Self {
        let port = super::ports::free_port();
        let dir = std::env::temp_dir().join(format!("vestibule-pg-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("pg dir");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("pw file");
        if let Some((uid, gid)) = owner() {
            for p in [&dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
            }
        }
        let out = as_owner(&mut Command::new(bin("initdb")))
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let postgres = bin("postgres");
        let (d, sock) = (data.clone(), dir.clone());
        let child = super::keeper::spawn(move || {
            as_owner(super::keeper::dies_with_us(&mut Command::new(postgres)))
                .arg("-D")
                .arg(&d)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-k")
                .arg(&sock)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start postgres");
        let mut me = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("postgres exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// ShinyProxy's URL for this server's `postgres` database.
    pub fn jdbc_url(&self) -> String {
        format!("jdbc:postgresql://127.0.0.1:{}/postgres", self.port)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
