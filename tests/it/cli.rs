//! The `vestibule` binary as a user runs it: `check`, `hash-password`, and `serve` surviving
//! nothing when it is killed.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn vestibule(args: &[&str]) -> std::process::Output {
    Command::new(vestibule_exe())
        .args(args)
        .output()
        .expect("run vestibule")
}

#[test]
fn check_accepts_the_seed_application_yml_with_warnings() {
    let seed = repo_path("tests/fixtures/seed-application.yml");
    let out = vestibule(&["check", "--config", seed.to_str().unwrap_or_default()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (2 app(s)"));
    assert!(stderr.contains("plain-text password"), "{stderr}");
    assert!(
        !stderr.contains("Admin@123"),
        "a password leaked into the output"
    );
}

#[test]
fn check_reports_a_typo_and_a_bad_value_with_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("vestibule-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("application.yml");
    std::fs::write(
        &file,
        "proxy:\n  heartbeat-timout: 1000\n  port: eighty\n  container-backend: process\n  specs:\n  - id: a\n    container-cmd: [\"true\"]\n",
    )
    .expect("write");
    let out = vestibule(&["check", "--config", file.to_str().unwrap_or_default()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let path = file.display().to_string();
    assert!(
        stderr.contains(&format!("{path}:2:3")) && stderr.contains("heartbeat-timeout"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:3:9")) && stderr.contains("proxy.port"),
        "{stderr}"
    );
}

#[test]
fn check_diff_prints_what_a_reload_would_change() {
    let dir = std::env::temp_dir().join(format!("vestibule-cli-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let base = "proxy:\n  port: 8080\n  container-backend: process\n  authentication: simple\n  users:\n  - name: alice\n    password: s3cret-one\n  specs:\n  - id: one\n    container-cmd: [\"true\"]\n  - id: two\n    container-cmd: [\"true\"]\n";
    let next = base
        .replace("port: 8080", "port: 9090")
        .replace("s3cret-one", "s3cret-two")
        .replace(
            "  - id: two\n    container-cmd: [\"true\"]\n",
            "  - id: three\n    container-cmd: [\"true\"]\n",
        );
    let (old, new) = (dir.join("old.yml"), dir.join("new.yml"));
    std::fs::write(&old, base).expect("write");
    std::fs::write(&new, next).expect("write");
    let out = vestibule(&[
        "check",
        "--diff",
        old.to_str().unwrap_or_default(),
        new.to_str().unwrap_or_default(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "+ app three: added",
        "- app two: removed",
        "~ proxy.users (passwords): changed (applies at once)",
        "! proxy.port: changed, needs a restart",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    assert!(!stdout.contains("s3cret"), "a password leaked: {stdout}");
    // A broken new file is reported like `check` reports it, and nothing is planned.
    std::fs::write(&new, "proxy:\n  port: eighty\n").expect("write");
    let out = vestibule(&[
        "check",
        "--diff",
        old.to_str().unwrap_or_default(),
        new.to_str().unwrap_or_default(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("new.yml:2:"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hash_password_makes_an_argon2_hash() {
    let mut child = Command::new(vestibule_exe())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(vestibule::auth::password::verify(
        &vestibule::config::PasswordSpec::Argon2(hash),
        "s3cret"
    ));
}

/// A `vestibule serve` process with one running echo app whose background child's pid is known.
struct Served {
    server: std::process::Child,
    child_pid: i32,
    app_pids: Vec<i32>,
}

async fn serve_with_running_app(tag: &str) -> Served {
    let dir = std::env::temp_dir().join(format!("vestibule-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pid_file = dir.join("app.pid");
    let port = crate::common::ports::free_port();
    let config = dir.join("application.yml");
    let echo = repo_path("tests/apps/echo/app.py");
    // Tests run side by side: an argument unique to this one tells its app processes apart.
    let marker = format!("marker-{tag}-{}", std::process::id());
    std::fs::write(
        &config,
        format!(
            "proxy:\n  port: {port}\n  bind-address: 127.0.0.1\n  authentication: simple\n  container-backend: process\n  users:\n  - name: alice\n    password: \"{PASSWORD}\"\n  specs:\n  - id: echo\n    container-cmd: [\"sh\", \"-c\", \"sleep 1000 & echo $! > {pids}; exec python3 {echo} {marker}\"]\n",
            pids = pid_file.display(),
            echo = echo.display(),
            marker = marker,
        ),
    )
    .expect("config");
    let server = Command::new(vestibule_exe())
        .args(["serve", "--config", config.to_str().unwrap_or_default()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(Duration::from_secs(10), || async {
        http.get(format!("{base}/actuator/health"))
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(up, "vestibule did not start");
    let view: serde_json::Value = data(
        http.post(format!("{base}/api/proxy/echo"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .expect("launch"),
    )
    .await;
    let id = view["id"].as_str().expect("id").to_string();
    let running = eventually(Duration::from_secs(15), || async {
        let v: serde_json::Value = data(
            http.get(format!("{base}/api/proxy/{id}"))
                .basic_auth("alice", Some(PASSWORD))
                .send()
                .await
                .expect("status"),
        )
        .await;
        v["status"] == "Up"
    })
    .await;
    assert!(running);
    let child_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let app_pids: Vec<i32> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                .unwrap_or(false)
        })
        .collect();
    assert!(!app_pids.is_empty() && pid_alive(child_pid));
    Served {
        server,
        child_pid,
        app_pids,
    }
}

impl Served {
    async fn all_gone(&self) -> bool {
        eventually(Duration::from_secs(10), || async {
            !pid_alive(self.child_pid) && self.app_pids.iter().all(|p| !pid_alive(*p))
        })
        .await
    }

    /// The processes still alive, with their command lines, for a failure message.
    fn survivors(&self) -> Vec<String> {
        std::iter::once(self.child_pid)
            .chain(self.app_pids.iter().copied())
            .filter(|p| pid_alive(*p))
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
            })
            .collect()
    }
}

#[tokio::test]
async fn no_app_process_survives_vestibule_being_killed_with_sigkill() {
    let mut served = serve_with_running_app("kill").await;
    served.server.kill().expect("SIGKILL");
    let _ = served.server.wait();
    assert!(
        served.all_gone().await,
        "orphans survived SIGKILL: {:?}",
        served.survivors()
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_stops_the_apps() {
    let mut served = serve_with_running_app("term").await;
    let pid = nix::unistd::Pid::from_raw(served.server.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = served.server.wait().expect("wait");
    assert!(status.success(), "vestibule exited with {status}");
    assert!(
        served.all_gone().await,
        "apps survived shutdown: {:?}",
        served.survivors()
    );
}
