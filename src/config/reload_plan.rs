//! What a config reload changes, worked out from the config in effect and the file's new
//! contents: which apps come and go, which settings apply at once, and which need a restart
//! and so keep their old value. `vestibule check --diff` prints the same plan.

use std::fmt;

use super::{AppSpec, Config};

/// What a reload would do; [`plan`] makes one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Shown in the portal and launchable at once.
    pub apps_added: Vec<String>,
    /// Gone from the portal; their running instances run until they end.
    pub apps_removed: Vec<String>,
    /// New launches use the new settings; running instances keep theirs.
    pub apps_changed: Vec<String>,
    /// Other settings that take effect at once, by key.
    pub applied: Vec<&'static str>,
    /// Changed settings kept at their old value until the server restarts, by key (or app).
    pub needs_restart: Vec<String>,
}

impl ReloadPlan {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for ReloadPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no change");
        }
        for app in &self.apps_added {
            writeln!(f, "+ app {app}: added")?;
        }
        for app in &self.apps_removed {
            writeln!(
                f,
                "- app {app}: removed (its running instances run until they end)"
            )?;
        }
        for app in &self.apps_changed {
            writeln!(f, "~ app {app}: changed (new launches only)")?;
        }
        for key in &self.applied {
            writeln!(f, "~ {key}: changed (applies at once)")?;
        }
        for key in &self.needs_restart {
            writeln!(
                f,
                "! {key}: changed, needs a restart (kept as before until then)"
            )?;
        }
        Ok(())
    }
}

/// A setting compared between two configs; a pinned one is also copied from the old config.
struct Setting {
    key: &'static str,
    same: fn(&Config, &Config) -> bool,
}

struct Pinned {
    key: &'static str,
    same: fn(&Config, &Config) -> bool,
    keep: fn(&mut Config, &Config),
}

macro_rules! setting {
    ($key:expr, $($field:tt)+) => {
        Setting { key: $key, same: |a, b| a.$($field)+ == b.$($field)+ }
    };
}

/// For settings whose types hold compiled expressions: equal when they print the same.
macro_rules! setting_debug {
    ($key:expr, $($field:tt)+) => {
        Setting {
            key: $key,
            same: |a, b| format!("{:?}", a.$($field)+) == format!("{:?}", b.$($field)+),
        }
    };
}

macro_rules! pinned {
    ($key:expr, $($field:tt)+) => {
        Pinned {
            key: $key,
            same: |a, b| a.$($field)+ == b.$($field)+,
            keep: |new, old| new.$($field)+ = old.$($field)+.clone(),
        }
    };
}

/// Read per request, per login or per launch from the config in effect.
const APPLIED: &[Setting] = &[
    setting_debug!("proxy.title", proxy.title),
    setting_debug!("proxy.logo-url", proxy.logo_url),
    setting!("proxy.favicon-path", proxy.favicon_path),
    setting!("proxy.landing-page", proxy.landing_page),
    setting!("proxy.my-apps-mode", proxy.my_apps_mode),
    setting!("proxy.hide-navbar", proxy.hide_navbar),
    setting!("proxy.body-classes", proxy.body_classes),
    setting!("proxy.notification-message", proxy.notification_message),
    setting!("proxy.template-groups", proxy.template_groups),
    setting!("proxy.admin-groups", proxy.admin_groups),
    setting!("proxy.admin-users", proxy.admin_users),
    setting_debug!("proxy.users", proxy.users),
    Setting {
        key: "proxy.users (passwords)",
        same: |a, b| {
            a.proxy.users.len() == b.proxy.users.len()
                && a.proxy
                    .users
                    .iter()
                    .zip(&b.proxy.users)
                    .all(|(x, y)| x.password == y.password)
        },
    },
    setting!("proxy.ldap", proxy.ldap),
    setting!("proxy.webservice", proxy.webservice),
    setting!("proxy.container-wait-time", proxy.container_wait_time),
    setting!("proxy.seat-wait-time", proxy.seat_wait_time),
    setting!("proxy.heartbeat-rate", proxy.heartbeat_rate),
    setting!("proxy.max-total-instances", proxy.max_total_instances),
    setting!(
        "proxy.stop-proxies-on-shutdown",
        proxy.stop_proxies_on_shutdown
    ),
    setting!(
        "proxy.recover-running-proxies",
        proxy.recover_running_proxies
    ),
    setting!("proxy.allowed-origins", proxy.allowed_origins),
    setting!("proxy.same-site-cookie", proxy.same_site_cookie),
    setting!("proxy.reload", proxy.reload),
    setting!("server.secure-cookies", server.secure_cookies),
    setting!("server.frame-options", server.frame_options),
];

/// Built into listeners, the store, the backend or the login flow when the server starts.
const PINNED: &[Pinned] = &[
    pinned!("proxy.port", proxy.port),
    pinned!("proxy.bind-address", proxy.bind_address),
    pinned!("proxy.authentication", proxy.authentication),
    pinned!("proxy.openid", proxy.openid),
    pinned!("proxy.saml", proxy.saml),
    pinned!("proxy.oauth2", proxy.oauth2),
    pinned!("proxy.custom-header", proxy.custom_header),
    pinned!("proxy.container-backend", proxy.container_backend),
    pinned!("proxy.docker", proxy.docker),
    pinned!("proxy.kubernetes", proxy.kubernetes),
    pinned!("proxy.process", proxy.process),
    pinned!("proxy.connections", proxy.connections),
    pinned!("proxy.app-domain", proxy.app_domain),
    pinned!("proxy.store-mode / spring.data.redis", store),
    pinned!("proxy.usage-stats", ops.usage_stats),
    pinned!("proxy.log-as-json", ops.log_as_json),
    pinned!("server.ssl", ops.tls),
    pinned!("management.server.port", server.management_port),
    pinned!("proxy.trusted-proxies", server.trusted_proxies),
    pinned!("server.servlet.context-path", server.context_path),
];

/// What reloading `new` over `old` changes, and the config to put in effect: `new`, with every
/// setting that needs a restart kept as in `old`. Apps with a `pool` or seats keep their old
/// spec too (their scalers are started with the server), and are neither added nor removed.
pub fn plan(old: &Config, new: Config) -> (ReloadPlan, Config) {
    let mut effective = new;
    let mut plan = ReloadPlan::default();
    for p in PINNED {
        if !(p.same)(old, &effective) {
            plan.needs_restart.push(p.key.to_string());
            (p.keep)(&mut effective, old);
        }
    }
    for s in APPLIED {
        if !(s.same)(old, &effective) {
            plan.applied.push(s.key);
        }
    }
    effective.proxy.specs = plan_apps(&old.proxy.specs, effective.proxy.specs, &mut plan);
    effective.source = old.source.clone().or(effective.source);
    (plan, effective)
}

fn plan_apps(old: &[AppSpec], new: Vec<AppSpec>, plan: &mut ReloadPlan) -> Vec<AppSpec> {
    let shared = |s: &AppSpec| s.pool.is_some() || s.seats.is_some();
    let find = |specs: &[AppSpec], id: &str| specs.iter().position(|s| s.id == id);
    let mut kept = Vec::with_capacity(new.len());
    for spec in new {
        match find(old, &spec.id).map(|i| &old[i]) {
            None if shared(&spec) => plan
                .needs_restart
                .push(format!("app {} (added, with a pool or seats)", spec.id)),
            None => {
                plan.apps_added.push(spec.id.clone());
                kept.push(spec);
            }
            Some(before) if format!("{before:?}") == format!("{spec:?}") => kept.push(spec),
            Some(before) if shared(before) || shared(&spec) => {
                plan.needs_restart
                    .push(format!("app {} (a pool or seats)", spec.id));
                kept.push(before.clone());
            }
            Some(_) => {
                plan.apps_changed.push(spec.id.clone());
                kept.push(spec);
            }
        }
    }
    for before in old {
        if find(&kept, &before.id).is_some() {
            continue;
        }
        if shared(before) {
            plan.needs_restart
                .push(format!("app {} (removed, with a pool or seats)", before.id));
            kept.push(before.clone());
        } else {
            plan.apps_removed.push(before.id.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvSource, load_str};
    use std::collections::HashMap;
    use std::path::Path;

    fn load(yaml: &str) -> Config {
        let env: HashMap<String, String> = HashMap::new();
        let env: &dyn EnvSource = &env;
        load_str(Path::new("application.yml"), yaml, env)
            .expect("valid config")
            .config
    }

    const BASE: &str = "
proxy:
  port: 8080
  authentication: simple
  container-backend: process
  admin-groups: admins
  users:
    - name: alice
      password: a
  specs:
    - id: one
      container-cmd: [one]
    - id: two
      container-cmd: [two]
    - id: pooled
      container-cmd: [p]
      pool:
        max-instances: 2
";

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let (plan, _) = plan(&load(BASE), load(BASE));
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn apps_are_added_removed_and_changed_and_users_apply_at_once() {
        let next = BASE
            .replace("    - id: two\n      container-cmd: [two]\n", "")
            .replace("container-cmd: [one]", "container-cmd: [one, --fast]")
            .replace(
                "  specs:\n",
                "  specs:\n    - id: three\n      container-cmd: [three]\n",
            )
            .replace("password: a", "password: b");
        let (plan, effective) = plan(&load(BASE), load(&next));
        assert_eq!(plan.apps_added, ["three"]);
        assert_eq!(plan.apps_removed, ["two"]);
        assert_eq!(plan.apps_changed, ["one"]);
        assert_eq!(plan.applied, ["proxy.users (passwords)"]);
        assert!(plan.needs_restart.is_empty(), "{plan}");
        let ids: Vec<&str> = effective
            .proxy
            .specs
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["three", "one", "pooled"]);
    }

    #[test]
    fn the_port_and_login_method_keep_their_old_values_and_say_so() {
        let next = BASE
            .replace("port: 8080", "port: 9090")
            .replace("authentication: simple", "authentication: none");
        let (plan, effective) = plan(&load(BASE), load(&next));
        assert_eq!(
            plan.needs_restart,
            ["proxy.port", "proxy.authentication"],
            "{plan}"
        );
        assert_eq!(effective.proxy.port, 8080);
        assert_eq!(
            effective.proxy.authentication,
            crate::config::AuthMethod::Simple
        );
        assert!(
            plan.to_string()
                .contains("! proxy.port: changed, needs a restart")
        );
    }

    #[test]
    fn a_pooled_app_keeps_its_old_spec_until_a_restart() {
        let next = BASE.replace("max-instances: 2", "max-instances: 5");
        let (plan, effective) = plan(&load(BASE), load(&next));
        assert_eq!(plan.needs_restart, ["app pooled (a pool or seats)"]);
        let pooled = effective.proxy.spec("pooled").expect("kept");
        assert_eq!(pooled.pool.as_ref().map(|p| p.max_instances), Some(2));

        let gone = BASE.replace(
            "    - id: pooled\n      container-cmd: [p]\n      pool:\n        max-instances: 2\n",
            "",
        );
        let (plan, effective) = super::plan(&load(BASE), load(&gone));
        assert!(plan.apps_removed.is_empty());
        assert!(effective.proxy.spec("pooled").is_some(), "{plan}");
    }
}
