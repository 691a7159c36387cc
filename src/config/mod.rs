//! Configuration: the file shape of ShinyProxy's `application.yml` (plus vestibule's own keys),
//! checked into a runtime [`Config`]. Problems are reported as [`Diagnostic`]s that carry
//! file:line:column.
//!
//! Loading goes through these steps, each in its own module:
//!
//! 1. `node`: the YAML text becomes a tree of values that remember their line and column;
//! 2. `interpolate`: `${VAR}` and `${VAR:default}` inside text values are replaced from the
//!    environment, so `port: ${PORT}` is checked as a number afterwards;
//! 3. [`env_overrides`]: `VESTIBULE_PROXY__PORT=9000` and the like are laid on top of the file;
//! 4. `key_check`: every key is looked up in the catalogue (`keys`): a typo is warned about with
//!    the closest known key, a ShinyProxy key vestibule does not implement yet is warned about
//!    and ignored;
//! 5. `check`: values are read with ShinyProxy's units and defaults into [`Config`]; a wrong
//!    value is an error.
//!
//! Every problem of every step is collected, so one run shows them all. App settings are also
//! scanned for `#{...}` expressions vestibule does not evaluate ([`expressions`]).
//!
//! Conventions worth knowing:
//! - `container-backend` defaults to `docker`, as in ShinyProxy; vestibule's embedded backend
//!   is `process`.
//! - Durations are milliseconds (`container-wait-time`, `heartbeat-rate`, `heartbeat-timeout`;
//!   0 or less switches a timeout off); `max-lifetime` and `default-proxy-max-lifetime` are
//!   minutes, -1 for none; instance limits take -1 for no limit.
//! - Group and user lists (`admin-groups`, `access-groups`, a user's `groups`, ...) take one
//!   name, a list, or a comma-separated string.
//! - `container-cmd` is a list; a single string is split at whitespace, and one holding quotes
//!   must be written as a list.
//! - Keys are matched as Spring Boot matches them, ignoring case, dashes and underscores.
//! - `authentication` methods vestibule does not implement, and access expressions it cannot
//!   evaluate, are errors rather than warnings: ignoring them would let in people the file
//!   keeps out.

pub mod access;
mod auth_model;
#[cfg(test)]
mod catalogue_test;
mod check;
mod check_access;
mod check_browser;
mod check_connections;
mod check_container;
mod check_docker;
mod check_forwarding;
mod check_header;
mod check_kubernetes;
mod check_ldap;
mod check_logging;
mod check_openid;
mod check_parameters;
mod check_pool;
mod check_portal;
mod check_process;
mod check_reload;
mod check_saml;
mod check_specs;
mod check_store;
mod check_tls;
mod check_usage;
mod check_users;
mod check_webservice;
mod container;
mod convert;
mod defaults;
mod diagnostics;
pub mod env_overrides;
mod interpolate;
mod key_check;
mod keys;
mod kubernetes;
mod mask;
mod model;
mod node;
pub mod parameters;
pub mod reload_plan;
mod report;
pub mod template;

pub use auth_model::*;
pub use check_browser::{FrameOptions, normalise_origin};
pub use check_connections::ConnectionLimits;
pub use check_forwarding::{canonical_ip, is_trusted_proxy, private_ranges};
pub use check_logging::{ContainerLogs, S3Logs};
pub use check_process::{DEFAULT_INHERIT_ENV, ProcessSettings};
pub use check_reload::ReloadSettings;
pub use check_tls::{CertificateSource, TlsSettings};
pub use check_usage::{UsageSink, UsageStatsConfig};
pub use defaults::embedded_default;
pub use diagnostics::{ConfigError, Diagnostic, Severity};
pub use model::*;
pub use template::Template;

use std::collections::HashMap;
use std::path::Path;

/// Where environment variables come from, so tests never touch the process environment.
pub trait EnvSource {
    fn get(&self, key: &str) -> Option<String>;
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// A loaded config and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Reads, checks and defaults a config file, applying `${VAR}` references and `VESTIBULE_*`
/// overrides from `env`. Every error found is returned at once, not just the first.
pub fn load_file(path: &Path, env: &dyn EnvSource) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(Diagnostic::error(
            path,
            0,
            0,
            "",
            format!("cannot read file: {e}"),
        ))
    })?;
    load_str(path, &text, env)
}

/// As [`load_file`], from text already read; `path` is only used in messages.
pub fn load_str(path: &Path, text: &str, env: &dyn EnvSource) -> Result<Loaded, ConfigError> {
    let mut root = node::parse(text).map_err(|e| {
        ConfigError::single(Diagnostic::error(
            path,
            e.line,
            e.column,
            "",
            format!("this is not valid YAML: {}", e.message),
        ))
    })?;
    let mut report = report::Report::new(path);
    interpolate::interpolate(&mut root, "", env, &mut report);
    env_overrides::apply(&mut root, env, &mut report);
    key_check::check_keys(&root, &mut report);
    let mut config = check::check(&root, path, &mut report);
    config.ops.masked = mask::render(&root);

    let failed = report.has_errors();
    let mut diagnostics = report.diagnostics;
    // File order reads best; problems without a line (environment overrides) come last.
    diagnostics.sort_by_key(|d| (d.line == 0, d.line, d.column));
    if failed {
        return Err(ConfigError { diagnostics });
    }
    Ok(Loaded {
        config,
        warnings: diagnostics,
    })
}
