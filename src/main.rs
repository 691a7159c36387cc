//! The `vestibule` command line.

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vestibule::config::{self, ProcessEnv, Severity};

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::SplitAllocator = allocator::SplitAllocator;

#[derive(Parser)]
#[command(
    name = "vestibule",
    version,
    about = "Serves data-science web apps to many users behind one login"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (on the embedded default config when --config is not given).
    Serve {
        /// A ShinyProxy-style application.yml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the listening port.
        #[arg(long)]
        port: Option<u16>,
        /// Override the bind address.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
    },
    /// Check a config file and report every problem with file:line:column; with --diff, also
    /// print what reloading NEW over a server running OLD would change.
    Check {
        #[arg(long, short, required_unless_present = "diff", conflicts_with = "diff")]
        config: Option<PathBuf>,
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
        diff: Option<Vec<PathBuf>>,
    },
    /// Hash a password for `proxy.users[].password` (argon2id). Reads it from stdin.
    HashPassword,
    /// Run the built-in demo app (used by the embedded default config).
    DemoApp {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
    /// Internal: supervise one app process (started by the process backend).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    allocator::return_big_blocks_to_the_os();
    let cli = Cli::parse();
    match cli.command {
        Command::Supervise { cmd } => {
            ExitCode::from(vestibule::backend::supervisor::run(&cmd).clamp(0, 255) as u8)
        }
        Command::Check {
            diff: Some(files), ..
        } => match files.as_slice() {
            [old, new] => diff(old, new),
            _ => ExitCode::FAILURE,
        },
        Command::Check {
            config: Some(config),
            ..
        } => check(&config),
        Command::Check { .. } => ExitCode::FAILURE,
        Command::HashPassword => hash_password(),
        Command::Serve { config, port, bind } => with_runtime(serve(config, port, bind)),
        Command::DemoApp { port, bind } => with_runtime(demo_app(SocketAddr::new(bind, port))),
    }
}

/// Logs to standard error, as JSON lines with `proxy.log-as-json` (or
/// `VESTIBULE_LOG_FORMAT=json`); each line of a request carries its id (the `request` span).
fn init_logging(log_as_json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VESTIBULE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = log_as_json || std::env::var("VESTIBULE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn with_runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `check --diff OLD NEW`: both files are checked, then the reload plan is printed.
fn diff(old: &std::path::Path, new: &std::path::Path) -> ExitCode {
    let (Some(before), Some(after)) = (loaded_or_report(old), loaded_or_report(new)) else {
        return ExitCode::FAILURE;
    };
    let (plan, _) = config::reload_plan::plan(&before.config, after.config);
    print!("{plan}");
    ExitCode::SUCCESS
}

fn loaded_or_report(path: &std::path::Path) -> Option<config::Loaded> {
    match config::load_file(path, &ProcessEnv) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            report_errors(path, &e);
            None
        }
    }
}

fn report_errors(path: &std::path::Path, e: &config::ConfigError) {
    for d in &e.diagnostics {
        eprintln!("{d}");
    }
    let errors = e
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    eprintln!("{}: {errors} error(s)", path.display());
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load_file(path, &ProcessEnv) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            // The certificate is read as the server would, so a wrong password or alias shows
            // up here rather than at the start.
            if let Some(tls) = &loaded.config.ops.tls
                && let Err(e) = vestibule::tls::check(tls)
            {
                eprintln!("{}: server.ssl: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!(
                "{}: OK ({} app(s), {} warning(s))",
                path.display(),
                loaded.config.proxy.specs.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(path, &e);
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "Type the password and press Enter (it will be echoed; pipe it in to avoid that):"
        );
    }
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        eprintln!("error: could not read a password from stdin");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return ExitCode::FAILURE;
    }
    match vestibule::auth::password::hash(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    path: Option<PathBuf>,
    port: Option<u16>,
    bind: Option<std::net::IpAddr>,
) -> anyhow::Result<()> {
    let opts = vestibule::RunOptions::from_current_exe()?;
    let mut cfg = match &path {
        Some(p) => {
            // Read before logging starts, since the file says how to log.
            let loaded = config::load_file(p, &ProcessEnv).map_err(|e| anyhow::anyhow!("{e}"))?;
            init_logging(loaded.config.ops.log_as_json);
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            loaded.config
        }
        None => {
            init_logging(false);
            let password = vestibule::auth::session::random_token()[..16].to_string();
            let hash =
                vestibule::auth::password::hash(&password).map_err(|e| anyhow::anyhow!(e))?;
            let cfg = config::embedded_default(&opts.supervisor_exe, hash);
            let port = port.unwrap_or(cfg.proxy.port);
            println!();
            println!("  vestibule is running on its built-in demo configuration.");
            println!(
                "  Open http://localhost:{port}/ and log in as  admin  with password  {password}"
            );
            println!();
            cfg
        }
    };
    if let Some(port) = port {
        cfg.proxy.port = port;
    }
    if let Some(bind) = bind {
        cfg.proxy.bind_address = bind;
    }
    let addr = SocketAddr::new(cfg.proxy.bind_address, cfg.proxy.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "listening");
    vestibule::run(cfg, opts, listener, shutdown_signal()).await
}

async fn demo_app(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    vestibule::demo_app::serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM (from an orchestrator) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
