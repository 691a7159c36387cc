//! Reading the config file again while serving, on SIGHUP or when its contents change. A file
//! with errors is refused and the running config kept; a good one is put in effect as
//! `config::reload_plan` says, and the log tells what changed and what waits for a restart.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::{self, ProcessEnv, reload_plan};
use crate::lifecycle::StopReason;
use crate::web::AppState;

/// An editor or `kubectl cp` may write the file in pieces: contents must stay the same this
/// long before they are read as the new config.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    Watch,
}

/// Starts watching the file the running config came from (nothing for the embedded default).
pub fn spawn(state: Arc<AppState>, stop: CancellationToken) {
    let Some(path) = state.config().source.clone() else {
        return;
    };
    tokio::spawn(run(state, path, stop));
}

async fn run(state: Arc<AppState>, path: PathBuf, stop: CancellationToken) {
    let mut hangup = signal(SignalKind::hangup())
        .inspect_err(|e| {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the config reloads on file change only")
        })
        .ok();
    let mut seen = digest_of(&path).await;
    loop {
        let settings = state.config().proxy.reload.clone();
        let trigger = tokio::select! {
            _ = stop.cancelled() => return,
            Some(()) = async { hangup.as_mut()?.recv().await } => Trigger::Signal,
            _ = tokio::time::sleep(settings.interval), if settings.watch => Trigger::Watch,
        };
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                // A ConfigMap update briefly swaps the file away; only a signal asked for it.
                if trigger == Trigger::Signal {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the config file; the running config is kept");
                }
                continue;
            }
        };
        let digest = digest(&text);
        if trigger == Trigger::Watch {
            if Some(digest) == seen {
                continue;
            }
            tokio::time::sleep(SETTLE).await;
            if digest_of(&path).await != Some(digest) {
                continue;
            }
        }
        seen = Some(digest);
        reload(&state, &path, &text, trigger).await;
    }
}

async fn digest_of(path: &Path) -> Option<u64> {
    tokio::fs::read_to_string(path)
        .await
        .ok()
        .map(|t| digest(&t))
}

fn digest(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

async fn reload(state: &Arc<AppState>, path: &Path, text: &str, trigger: Trigger) {
    let why = match trigger {
        Trigger::Signal => "SIGHUP",
        Trigger::Watch => "the file changed",
    };
    let metrics = state.manager.metrics();
    let loaded = match config::load_str(path, text, &ProcessEnv) {
        Ok(loaded) => loaded,
        Err(e) => {
            for d in &e.diagnostics {
                tracing::error!("{d}");
            }
            tracing::error!(file = %path.display(), trigger = why, "the config file has errors; the running config is kept");
            metrics.config_reloaded(false);
            return;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let current = state.manager.config().clone();
    let (plan, effective) = reload_plan::plan(&current, loaded.config);
    if plan.is_empty() {
        tracing::info!(file = %path.display(), trigger = why, "config file read again: no change");
        return;
    }
    let effective = Arc::new(effective);
    // Before anything changes: a directory whose certificate cannot be read refuses the
    // whole reload rather than leaving nobody able to log in.
    let authenticator = match crate::build_authenticator(&effective) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "the new login settings cannot be used; the running config is kept");
            metrics.config_reloaded(false);
            return;
        }
    };
    state.manager.replace_config(effective.clone());
    *state.authenticator.write() = authenticator;
    metrics.config_reloaded(true);
    tracing::info!(file = %path.display(), trigger = why, "config reloaded");
    for line in plan.to_string().lines() {
        if line.starts_with('!') {
            tracing::warn!("config reload: {line}");
        } else {
            tracing::info!("config reload: {line}");
        }
    }
    if effective.proxy.reload.stop_removed_apps && !plan.apps_removed.is_empty() {
        stop_instances_of(state, &plan.apps_removed).await;
    }
}

async fn stop_instances_of(state: &AppState, apps: &[String]) {
    let doomed: Vec<String> = state
        .manager
        .list(None)
        .await
        .into_iter()
        .filter(|v| apps.contains(&v.spec_id))
        .map(|v| v.id)
        .collect();
    for id in doomed {
        state.manager.stop(&id, StopReason::AppRemoved).await;
    }
}
