//! The embedded default backend: each instance is a local process (`container-backend: process`).
//!
//! `container-cmd` runs on the host through the supervisor (see [`super::supervisor`]), in its own
//! working directory, with the allocated port in `PORT` and in place of `{port}` in arguments.

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::config::ProcessSettings;

use super::supervisor::{self, PARENT_PID_ENV, STOP_GRACE};
use super::{Backend, BackendError, Health, LaunchRequest, LogBuffer, Started};

const LOG_LINES_KEPT: usize = 1000;

/// The variable an app finds its instance token in (see `ProcInstance::token`).
pub const TOKEN_ENV: &str = "VESTIBULE_INSTANCE_TOKEN";
/// The header vestibule sends it in.
pub const TOKEN_HEADER: &str = "x-vestibule-instance-token";

pub struct ProcessBackend {
    /// The vestibule binary that provides `__supervise`.
    supervisor_exe: PathBuf,
    /// Parent of the per-instance working directories.
    instances_dir: PathBuf,
    instances: Mutex<HashMap<String, Arc<ProcInstance>>>,
    /// Ports handed to instances that still run: the kernel may offer one of them again between
    /// our probe and the app's bind, and two apps on one port fail one user.
    ports_in_use: Mutex<std::collections::HashSet<u16>>,
    /// User ids of `uid-range` held by running instances: never two instances as one user.
    uids_in_use: Mutex<std::collections::HashSet<u32>>,
    /// Which of vestibule's environment variables an app inherits.
    settings: ProcessSettings,
    exits: tokio::sync::broadcast::Sender<super::Exit>,
}

struct ProcInstance {
    supervisor_pid: i32,
    port: u16,
    /// The user id it runs as, from `uid-range`.
    uid: Option<u32>,
    /// Sent to the app with every proxied request and given to it as
    /// `VESTIBULE_INSTANCE_TOKEN`: an app that checks it answers nobody but vestibule.
    token: String,
    log: Arc<LogBuffer>,
    /// The app's pid, which is also its process group's id; known once the supervisor says.
    app_pid: Arc<std::sync::OnceLock<i32>>,
    /// Becomes `Some(how)` when the instance has exited.
    exited: watch::Receiver<Option<String>>,
    dir: PathBuf,
}

impl ProcessBackend {
    pub fn new(
        supervisor_exe: PathBuf,
        instances_dir: PathBuf,
        settings: ProcessSettings,
    ) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&instances_dir)?;
        if settings.uid_range.is_some() {
            if !nix::unistd::geteuid().is_root() {
                return Err(std::io::Error::other(
                    "proxy.process.uid-range: apps can run as users of their own only when \
                     vestibule runs as root",
                ));
            }
            // Apps running as other users must reach their own folder below these, without
            // being able to list the others.
            for dir in [instances_dir.parent(), Some(instances_dir.as_path())]
                .into_iter()
                .flatten()
            {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
            }
        }
        Ok(Self {
            supervisor_exe,
            instances_dir,
            instances: Mutex::new(HashMap::new()),
            ports_in_use: Mutex::new(Default::default()),
            uids_in_use: Mutex::new(Default::default()),
            settings,
            exits: tokio::sync::broadcast::channel(256).0,
        })
    }

    fn get(&self, id: &str) -> Option<Arc<ProcInstance>> {
        self.instances.lock().get(id).cloned()
    }

    /// A free loopback port that no instance of ours holds, reserved until [`Self::release`].
    /// Another program could still take it before the app binds it; the launch then fails
    /// readably with the app's own message.
    fn reserve_port(&self) -> std::io::Result<u16> {
        let mut in_use = self.ports_in_use.lock();
        for _ in 0..64 {
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let port = listener.local_addr()?.port();
            if in_use.insert(port) {
                return Ok(port);
            }
        }
        Err(std::io::Error::other(
            "every port offered is held by an instance",
        ))
    }

    fn release(&self, port: u16) {
        self.ports_in_use.lock().remove(&port);
    }

    /// A user id of `uid-range` that no instance runs as, reserved until the instance stops;
    /// `Ok(None)` without a range (apps run as vestibule's own user).
    fn reserve_uid(&self) -> Result<Option<u32>, BackendError> {
        let Some(range) = self.settings.uid_range.clone() else {
            return Ok(None);
        };
        let mut in_use = self.uids_in_use.lock();
        let free = range
            .clone()
            .find(|uid| !in_use.contains(uid))
            .ok_or_else(|| {
                BackendError::Start(format!(
                    "every user id of proxy.process.uid-range ({}-{}) runs an instance",
                    range.start(),
                    range.end()
                ))
            })?;
        in_use.insert(free);
        Ok(Some(free))
    }
}

/// 32 random bytes as hex: an app compares it as text, in a header, with no decoding.
fn instance_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies an output stream into the instance log. On stderr, the first line is the app's pid
/// (see [`supervisor::APP_PID_LINE`]); it goes to `app_pid`, not to the log.
fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<LogBuffer>,
    app_pid: Option<Arc<std::sync::OnceLock<i32>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        let mut first = true;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let pid = app_pid.as_ref().filter(|_| first).and_then(|slot| {
                        let pid = line.trim_end().strip_prefix(supervisor::APP_PID_LINE)?;
                        slot.set(pid.parse().ok()?).ok()
                    });
                    first = false;
                    if pid.is_none() {
                        log.push(&line);
                    }
                }
            }
        }
    });
}

impl ProcessBackend {
    /// Starts the supervisor and the app on `port`.
    async fn spawn(
        &self,
        req: &LaunchRequest,
        port: u16,
        uid: Option<u32>,
    ) -> Result<Started, BackendError> {
        let args: Vec<String> = req
            .spec
            .container_cmd
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        if args.is_empty() {
            return Err(BackendError::Start(format!(
                "app '{}' has no container-cmd to run",
                req.spec.id
            )));
        }
        let dir = self.instances_dir.join(&req.instance_id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| BackendError::Start(format!("cannot create {}: {e}", dir.display())))?;
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).map_err(|e| {
                BackendError::Start(format!("cannot give {} to user {uid}: {e}", dir.display()))
            })?;
        }
        let cwd = req
            .spec
            .process_workdir
            .clone()
            .unwrap_or_else(|| dir.clone());

        let mut cmd = Command::new(&self.supervisor_exe);
        cmd.arg("__supervise")
            .arg("--")
            .args(&args)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // vestibule's environment carries secrets (`${OIDC_CLIENT_SECRET}` and the like, env
        // overrides): an app starts from an empty one and gets only the allowed names, then
        // what its spec and vestibule give it.
        cmd.env_clear();
        for (key, value) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| self.settings.inherits(k)) {
                cmd.env(key, value);
            }
        }
        let token = instance_token();
        if let Some(uid) = uid {
            // std drops the supplementary groups too when it changes user as root.
            cmd.uid(uid).gid(uid);
            cmd.env("HOME", &dir);
        }
        cmd.envs(&req.env)
            .env("PORT", port.to_string())
            .env(TOKEN_ENV, &token)
            .env("VESTIBULE_INSTANCE_DIR", &dir)
            .env(PARENT_PID_ENV, std::process::id().to_string());

        let mut child = cmd.spawn().map_err(|e| {
            BackendError::Start(format!(
                "cannot run the supervisor {}: {e}",
                self.supervisor_exe.display()
            ))
        })?;
        let supervisor_pid = child
            .id()
            .ok_or_else(|| BackendError::Start("the app exited at once".into()))?
            as i32;
        let log = Arc::new(LogBuffer::new(LOG_LINES_KEPT));
        let app_pid = Arc::new(std::sync::OnceLock::new());
        let app_pid_slot = app_pid.clone();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone(), None);
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone(), Some(app_pid.clone()));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let exit_log = log.clone();
        let exits = self.exits.clone();
        let instance_id = req.instance_id.clone();
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => {
                    // The supervisor reports how the app itself ended; prefer that.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let reported = exit_log
                        .last(5)
                        .into_iter()
                        .rev()
                        .find_map(|l| l.strip_prefix("[vestibule] app ").map(str::to_string));
                    match reported {
                        Some(how) => how,
                        None => {
                            // The supervisor died without reporting (SIGKILL, the OOM killer):
                            // the app's group would run on with nobody to serve it.
                            if let Some(pid) = app_pid.get() {
                                let _ = kill(Pid::from_raw(-*pid), Signal::SIGKILL);
                            }
                            format!(
                                "was stopped because its supervisor {}",
                                supervisor::describe(status)
                            )
                        }
                    }
                }
                Err(e) => format!("could not be waited for: {e}"),
            };
            let _ = exit_tx.send(Some(how.clone()));
            let _ = exits.send(super::Exit { instance_id, how });
        });

        self.instances.lock().insert(
            req.instance_id.clone(),
            Arc::new(ProcInstance {
                supervisor_pid,
                port,
                uid,
                token,
                log,
                app_pid: app_pid_slot,
                exited: exit_rx,
                dir,
            }),
        );
        Ok(Started {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        })
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError> {
        let port = self
            .reserve_port()
            .map_err(|e| BackendError::Start(format!("no free port: {e}")))?;
        let uid = match self.reserve_uid() {
            Ok(uid) => uid,
            Err(e) => {
                self.release(port);
                return Err(e);
            }
        };
        let started = self.spawn(req, port, uid).await;
        if started.is_err() {
            self.release(port);
            if let Some(uid) = uid {
                self.uids_in_use.lock().remove(&uid);
            }
        }
        started
    }

    async fn stop(&self, instance_id: &str) -> Result<(), BackendError> {
        let Some(inst) = self.get(instance_id) else {
            return Ok(());
        };
        let mut exited = inst.exited.clone();
        if exited.borrow().is_none() {
            let _ = kill(Pid::from_raw(inst.supervisor_pid), Signal::SIGTERM);
            let patience = STOP_GRACE + std::time::Duration::from_secs(3);
            let done = tokio::time::timeout(patience, exited.wait_for(|e| e.is_some())).await;
            if done.is_err() {
                // The supervisor itself is stuck: take its group down by force.
                let _ = kill(Pid::from_raw(-inst.supervisor_pid), Signal::SIGKILL);
                return Err(BackendError::Stop {
                    id: instance_id.to_string(),
                    reason: "the supervisor did not exit; killed it".into(),
                });
            }
        }
        self.instances.lock().remove(instance_id);
        self.release(inst.port);
        if let Some(uid) = inst.uid {
            self.uids_in_use.lock().remove(&uid);
        }
        let _ = tokio::fs::remove_dir_all(&inst.dir).await;
        Ok(())
    }

    async fn list(&self) -> Vec<String> {
        self.instances.lock().keys().cloned().collect()
    }

    async fn health(&self, instance_id: &str) -> Health {
        match self.get(instance_id) {
            None => Health::Unknown,
            Some(inst) => match inst.exited.borrow().as_ref() {
                None => Health::Running,
                Some(how) => Health::Exited(how.clone()),
            },
        }
    }

    fn last_log_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        self.get(instance_id)
            .map(|i| i.log.last(n))
            .unwrap_or_default()
    }

    fn instance_headers(&self, instance_id: &str) -> Vec<(String, String)> {
        self.get(instance_id)
            .map(|i| vec![(TOKEN_HEADER.to_string(), i.token.clone())])
            .unwrap_or_default()
    }

    async fn check_listener(&self, instance_id: &str) -> Result<(), String> {
        use super::listener_owner::{Holder, holder_of};
        let Some(inst) = self.get(instance_id) else {
            return Ok(());
        };
        let (port, root) = (inst.port, inst.supervisor_pid);
        match tokio::task::spawn_blocking(move || holder_of(port, root)).await {
            Ok(Ok(Holder::Instance)) => Ok(()),
            Ok(Ok(Holder::Stranger(pids))) => {
                let whom = match pids.as_slice() {
                    [] => "another user's process".to_string(),
                    pids => format!(
                        "another process (pid {})",
                        pids.iter()
                            .map(i32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Err(format!(
                    "its port {port} is held by {whom}, not by the app; its user's requests are not sent there"
                ))
            }
            Ok(Ok(Holder::Nobody)) => Err(format!("nothing listens on its port {port} any more")),
            Ok(Err(e)) => {
                tracing::warn!(instance = instance_id, error = %e, "cannot tell who holds an app's port");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(instance = instance_id, error = %e, "cannot tell who holds an app's port");
                Ok(())
            }
        }
    }

    fn log(&self, instance_id: &str) -> Option<Arc<LogBuffer>> {
        self.get(instance_id).map(|i| i.log.clone())
    }

    async fn usage(&self, instance_id: &str) -> Option<super::ResourceUsage> {
        let inst = self.get(instance_id)?;
        if inst.exited.borrow().is_some() {
            return None;
        }
        super::proc_stats::sample(*inst.app_pid.get()?).await
    }

    fn exits(&self) -> Option<tokio::sync::broadcast::Receiver<super::Exit>> {
        Some(self.exits.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_an_instance_is_never_offered_again_until_released() {
        let dir = std::env::temp_dir().join(format!("vestibule-ports-{}", std::process::id()));
        let backend = ProcessBackend::new("/bin/true".into(), dir.clone(), Default::default())
            .expect("backend");
        let held: Vec<u16> = (0..300)
            .map(|_| backend.reserve_port().expect("port"))
            .collect();
        let distinct: std::collections::HashSet<u16> = held.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            held.len(),
            "a burst of launches shares no port"
        );
        backend.release(held[0]);
        assert!(!backend.ports_in_use.lock().contains(&held[0]));
        let _ = std::fs::remove_dir_all(dir);
    }
}
