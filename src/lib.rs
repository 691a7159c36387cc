//! vestibule: serves data-science web apps to many users behind one login.

#[cfg(test)]
mod architecture;
pub mod auth;
pub mod backend;
pub mod clock;
pub mod config;
pub mod demo_app;
pub mod lifecycle;
mod listen;
pub mod observe;
pub mod proxy;
mod redirect;
mod reload;
pub mod spel;
pub mod store;
pub mod tls;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use auth::throttle::LoginThrottle;
use auth::{
    Authenticator, LdapAuthenticator, NoAuthenticator, Sessions, SimpleAuthenticator,
    WebserviceAuthenticator,
};
use backend::Backend;
use backend::docker::DockerBackend;
use backend::process::ProcessBackend;
use backend::swarm::SwarmBackend;
use config::{AuthMethod, BackendKind, Config};
use lifecycle::Manager;

/// How long a session lives without being used.
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// How long in-flight requests get to finish once shutdown starts.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// How long shutdown waits for usage-statistics events still being written.
const USAGE_FLUSH_TIME: Duration = Duration::from_secs(5);

/// What the server needs from its host beyond the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The vestibule binary, which supervises local app processes (`__supervise`).
    pub supervisor_exe: PathBuf,
    /// Where per-instance working directories are made.
    pub work_dir: PathBuf,
}

impl RunOptions {
    pub fn from_current_exe() -> std::io::Result<Self> {
        Ok(Self {
            supervisor_exe: std::env::current_exe()?,
            work_dir: std::env::temp_dir().join(format!("vestibule-{}", std::process::id())),
        })
    }
}

async fn build_backend(config: &Config, opts: &RunOptions) -> anyhow::Result<Arc<dyn Backend>> {
    match config.proxy.container_backend {
        BackendKind::Process => {
            if config.proxy.process.uid_range.is_some() {
                config_file_is_private(config)?;
            }
            Ok(Arc::new(ProcessBackend::new(
                opts.supervisor_exe.clone(),
                opts.work_dir.join("instances"),
                config.proxy.process.clone(),
            )?))
        }
        BackendKind::Docker => Ok(Arc::new(
            DockerBackend::connect(config.proxy.docker.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e))?
                .adopting_shinyproxy(config.proxy.recover_running_proxies),
        )),
        BackendKind::DockerSwarm => Ok(Arc::new(
            SwarmBackend::connect(config.proxy.docker.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e))?,
        )),
        BackendKind::Kubernetes => {
            let client = backend::kubernetes::connect(&config.proxy.kubernetes).await?;
            Ok(Arc::new(
                backend::kubernetes::KubernetesBackend::new(
                    client,
                    config.proxy.kubernetes.clone(),
                    config.proxy.container_wait_time,
                )
                .with_apps(&config.proxy.specs)
                .adopting_shinyproxy(config.proxy.recover_running_proxies),
            ))
        }
    }
}

/// Apps running as users of their own must not read the file that holds vestibule's secrets:
/// refused at the start rather than found out later.
fn config_file_is_private(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = &config.source else {
        return Ok(());
    };
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o044 != 0 {
        anyhow::bail!(
            "{}: proxy.process.uid-range runs apps as other users, and they could read this file \
             (mode {:o}); make it readable by vestibule's user only (chmod 600)",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

pub(crate) fn build_authenticator(config: &Arc<Config>) -> anyhow::Result<Arc<dyn Authenticator>> {
    Ok(match config.proxy.authentication {
        AuthMethod::Simple => Arc::new(SimpleAuthenticator::new(config.clone())),
        AuthMethod::Ldap => Arc::new(LdapAuthenticator::new(config.clone())?),
        AuthMethod::Webservice => Arc::new(WebserviceAuthenticator::new(config.clone())?),
        // No password is checked here: nobody logs in (none), the provider's pages log users
        // in (the redirect methods of web::login_method), or a login proxy names them in a
        // header (web::context). Form and Basic logins fail.
        _ => Arc::new(NoAuthenticator),
    })
}

/// Runs the whole server on `listener` until `shutdown` completes, then stops taking requests,
/// closes proxied connections and (with `stop-proxies-on-shutdown`) stops every instance.
pub async fn run(
    config: Config,
    opts: RunOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = store::open(&config.store).await?;
    // In the background: a large leftover folder must not delay the first answer.
    let work_dir = opts.work_dir.clone();
    tokio::task::spawn_blocking(move || remove_dead_runs_work_dirs(&work_dir));
    let backend = build_backend(&config, &opts).await?;
    let stopping = CancellationToken::new();
    // Before anything is started: a certificate that cannot be served stops the start.
    let tls = match &config.ops.tls {
        Some(settings) => Some(
            tls::acceptor(settings, stopping.clone())
                .map_err(|e| anyhow::anyhow!("server.ssl: {e}"))?,
        ),
        None => None,
    };
    let manager = Manager::new(config.clone(), backend.clone(), store.clone());
    attach_observers(&config, &manager);
    if let Some(logs) = &config.ops.container_logs {
        let archive = backend::log_file::LogArchive::new(logs, &opts.work_dir)
            .map_err(|e| anyhow::anyhow!("container-log-path: {e}"))?;
        manager.keep_logs(archive);
    }
    if store.is_shared() {
        // Other replicas may run what the backend finds: the leader sorts out what belongs to
        // nobody (lifecycle's culler), never this start.
    } else if config.proxy.recover_running_proxies {
        manager.adopt(backend.recover().await).await;
    } else {
        // Nobody can reach what an earlier run left: its routes died with it. In the
        // background, so containers slow to stop do not delay the first answer.
        let backend = backend.clone();
        tokio::spawn(async move { backend.remove_leftovers().await });
    }
    manager.spawn_culler(stopping.clone());
    let sessions = Sessions::new(store.clone(), SESSION_IDLE_TIMEOUT);
    let state = Arc::new(web::AppState {
        manager: manager.clone(),
        sessions,
        store: store.clone(),
        authenticator: parking_lot::RwLock::new(build_authenticator(&config)?),
        throttle: LoginThrottle::new(store.clone()),
        proxy: proxy::Proxy::new(stopping.clone(), manager.metrics().clone()),
        templates: web::Templates::new()?,
        login: web::login_method::register(&config, &store)?,
        request_authenticators: web::login_method::request_authenticators(&config),
        api_tokens: auth::api_tokens::ApiTokens::new(store.clone()),
        jwt_bearer: match config.proxy.oauth2.clone() {
            Some(cfg) => Some(auth::bearer_jwt::JwtBearer::new(cfg)?),
            None => None,
        },
    });
    spawn_housekeeping(state.clone(), stopping.clone());
    reload::spawn(state.clone(), stopping.clone());

    let management = match config.server.management_port {
        Some(port) => Some(
            TcpListener::bind((config.proxy.bind_address, port))
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on management port {port}: {e}"))?,
        ),
        None => None,
    };
    if let Some(listener) = management {
        let stop = stopping.clone();
        let router = web::management_router(manager.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "management server failed");
            }
        });
    }

    let proxy = state.proxy.clone();
    let app = web::router(state);
    let listener_port = listener.local_addr()?.port();
    let server = tokio::spawn(listen::serve(
        listener,
        app,
        listen::fit_to_open_files(config.proxy.connections.clone()),
        config.server.trusted_proxies.clone(),
        tls,
        stopping.clone(),
    ));
    if let Some(port) = config.ops.tls.as_ref().and_then(|t| t.redirect_http_port) {
        let https_port = listener_port;
        let plain = TcpListener::bind((config.proxy.bind_address, port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on server.ssl.redirect-http-port {port}: {e}")
            })?;
        tokio::spawn(redirect::serve(plain, https_port, stopping.clone()));
    }

    shutdown.await;
    tracing::info!("shutting down");
    // Drain first: no new connections or launches, in-flight requests finish against apps that
    // still run, and WebSockets get a going-away close frame so browsers reconnect elsewhere.
    // Instances are stopped last (with stop-proxies-on-shutdown), when nobody is using them.
    manager.refuse_launches();
    stopping.cancel();
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        let served = server.await;
        proxy.websockets_closed().await;
        served
    })
    .await;
    match drained {
        Ok(Ok(())) => {}
        Ok(Err(join)) => anyhow::bail!("the server task failed: {join}"),
        Err(_) => tracing::warn!("some connections did not close in time"),
    }
    manager.shutdown().await;
    // The stops just made are usage events too.
    manager.metrics().flush_usage(USAGE_FLUSH_TIME).await;
    manager.settle_logs(USAGE_FLUSH_TIME).await;
    let _ = tokio::fs::remove_dir_all(&opts.work_dir).await;
    Ok(())
}

/// Usage statistics and ShinyProxy's metric names listen where the metrics are recorded.
fn attach_observers(config: &Config, manager: &Arc<Manager>) {
    let stats = &config.ops.usage_stats;
    let usage = observe::usage::Usage::start(stats, manager.metrics().usage_dropped());
    let micrometer = stats.micrometer().then(|| {
        let apps: Vec<String> = config.proxy.specs.iter().map(|s| s.id.clone()).collect();
        observe::micrometer::Micrometer::new(&stats.micrometer_prefix, &apps)
    });
    // Weak: the manager holds the metrics, which hold this.
    let weak = Arc::downgrade(manager);
    let owner_of = Box::new(move |instance: &str| {
        let manager = weak.upgrade()?;
        let view = manager.watch(instance)?;
        let user = view.borrow().user.clone();
        Some(user)
    });
    manager.metrics().attach(usage, micrometer, owner_of);
}

/// Closes WebSockets whose session expired, whose token was revoked (perhaps on another
/// replica) or whose instance is gone; logout and revocation here close theirs at once.
async fn close_orphaned_websockets(state: &web::AppState) {
    use proxy::closers::Opener;
    let closers = state.proxy.closers();
    for opener in closers.openers() {
        let valid = match &opener {
            Opener::Session(id) => state.sessions.exists(id).await,
            Opener::Token(id) => state.api_tokens.exists(id).await,
            Opener::Instance(id) => state.manager.routes().get(id).is_some(),
        };
        if !valid {
            closers.close(&opener);
        }
    }
}

/// An earlier run killed with SIGKILL (or by the OOM killer) never removed its work folder
/// (`vestibule-<pid>` beside ours), and each run makes a new one: remove those whose process is
/// gone. A folder whose pid now belongs to another process is left alone.
fn remove_dead_runs_work_dirs(work_dir: &std::path::Path) {
    let Some(parent) = work_dir.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("vestibule-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        // Our own pid is alive, so our folder is never taken for a dead run's.
        if gone {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(folder = %entry.path().display(), "removed the work folder of a run that was killed")
                }
                Err(e) => {
                    tracing::debug!(folder = %entry.path().display(), error = %e, "could not remove an old work folder")
                }
            }
        }
    }
}

fn spawn_housekeeping(state: Arc<web::AppState>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {
                    state.sessions.purge_expired();
                    state.store.purge_expired();
                    close_orphaned_websockets(&state).await;
                }
            }
        }
    });
}
