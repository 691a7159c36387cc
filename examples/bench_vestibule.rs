//! Stand-in for `vestibule serve --config bench.yml` while the config loader is not in main:
//! builds the same config in code and runs the same server, on the same runtime as the binary.
//!
//! `bench_vestibule --port 18080 --supervisor target/release/vestibule --app target/release/examples/bench_upstream`

use clap::Parser;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use vestibule::config::{AuthMethod, PasswordSpec, UserEntry, embedded_default};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// The vestibule binary (it supervises app processes with `__supervise`).
    #[arg(long)]
    supervisor: PathBuf,
    /// The app to serve as spec `upstream`.
    #[arg(long)]
    app: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("VESTIBULE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();

    // The same file as bench/run.sh writes for the real binary, in code.
    let mut cfg = embedded_default(&args.supervisor, String::new());
    cfg.proxy.port = args.port;
    cfg.proxy.bind_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
    cfg.proxy.authentication = AuthMethod::Simple;
    cfg.proxy.heartbeat_timeout = None;
    cfg.proxy.users = vec![UserEntry {
        name: "bench".into(),
        password: PasswordSpec::Plain("bench-password".into()),
        groups: vec!["bench".into()],
    }];
    let spec = &mut cfg.proxy.specs[0];
    spec.id = "upstream".into();
    spec.display_name = "Bench upstream".into();
    spec.container_cmd = vec![args.app.display().to_string()];
    spec.heartbeat_timeout = None;

    let opts = vestibule::RunOptions {
        supervisor_exe: args.supervisor,
        work_dir: std::env::temp_dir().join(format!("vestibule-bench-{}", std::process::id())),
    };
    // As `vestibule serve`: a multi-threaded runtime (TOKIO_WORKER_THREADS is honoured).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = SocketAddr::new(cfg.proxy.bind_address, cfg.proxy.port);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "listening");
        vestibule::run(cfg, opts, listener, async {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
        })
        .await
    })
}
