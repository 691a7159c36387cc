//! A spec's `pool` block, and the `public` and `api-only` switches that go with shared apps.
//! Contradictions are refused here, at their line, rather than found by users at run time.

use super::convert::Fields;
use super::model::PoolSettings;
use super::node::{Node, Value};
use super::report::Report;
use std::time::Duration;

/// What `check_pool` reads of a spec.
pub struct Sharing {
    pub pool: Option<PoolSettings>,
    pub public: bool,
    pub api_only: bool,
}

pub fn check_sharing(spec: &Fields, report: &mut Report) -> Sharing {
    let pool = spec.get("pool").map(|(node, path)| {
        let f = Fields::of(Some(node), &path, report);
        pool_settings(&f, node, &path, report)
    });
    if pool.is_some() {
        refuse_user_dependence(spec, report);
        for key in ["heartbeat-timeout", "max-lifetime", "stop-on-logout"] {
            if let Some((n, p)) = spec.get(key) {
                report.warn(
                    &n.at,
                    &p,
                    "a pool's instances belong to no user, so this has no effect; the pool \
                     removes instances itself when the load falls",
                );
            }
        }
    }
    let public = spec.boolean("public", report).unwrap_or(false);
    let api_only = spec.boolean("api-only", report).unwrap_or(false);
    if public && let Some((n, p)) = spec.get("public") {
        if pool.is_none() {
            report.error(
                &n.at,
                &p,
                "public: true needs a 'pool' block: anonymous visitors share the app's \
                 instances, and without a pool each visitor would start one of their own",
            );
        }
        if api_only {
            report.error(
                &n.at,
                &p,
                "public and api-only contradict each other: a public app needs no credentials \
                 at all",
            );
        }
        for key in [
            "access-groups",
            "access-users",
            "access-expression",
            "access-cel",
        ] {
            if let Some((n, p)) = spec.get(key) {
                report.warn(
                    &n.at,
                    &p,
                    "a public app is open to everyone; this rule is ignored",
                );
            }
        }
    }
    Sharing {
        pool,
        public,
        api_only,
    }
}

fn pool_settings(f: &Fields, node: &Node, path: &str, report: &mut Report) -> PoolSettings {
    let defaults = PoolSettings::default();
    let count = |name: &str, fallback: u32, least: u32, report: &mut Report| -> u32 {
        let Some((n, p)) = f.get(name) else {
            return fallback;
        };
        let Some(v) = super::convert::int(n, &p, "a count", report) else {
            return fallback;
        };
        match u32::try_from(v) {
            Ok(v) if v >= least => v,
            _ => {
                report.error(
                    &n.at,
                    &p,
                    format!("expected a whole number of at least {least}, found {v}"),
                );
                fallback
            }
        }
    };
    let millis = |name: &str, fallback: Duration, report: &mut Report| -> Duration {
        match f.int(name, "milliseconds", report) {
            Some(ms) if ms >= 0 => Duration::from_millis(ms.unsigned_abs()),
            Some(ms) => {
                if let Some((n, p)) = f.get(name) {
                    report.error(
                        &n.at,
                        &p,
                        format!("expected milliseconds of 0 or more, found {ms}"),
                    );
                }
                fallback
            }
            None => fallback,
        }
    };
    let settings = PoolSettings {
        min_instances: count("min-instances", defaults.min_instances, 0, report),
        max_instances: count("max-instances", defaults.max_instances, 1, report),
        target_concurrency: count("target-concurrency", defaults.target_concurrency, 1, report),
        scale_down_delay: millis("scale-down-delay", defaults.scale_down_delay, report),
        session_affinity: f
            .boolean("session-affinity", report)
            .unwrap_or(defaults.session_affinity),
        stable_window: millis("stable-window", defaults.stable_window, report),
        queue_limit: count("queue-limit", defaults.queue_limit as u32, 1, report) as usize,
    };
    if settings.min_instances > settings.max_instances {
        let (n, p) = f.get("min-instances").unwrap_or((node, path.to_string()));
        report.error(
            &n.at,
            &p,
            format!(
                "min-instances ({}) is more than max-instances ({}); the pool could never \
                 satisfy both",
                settings.min_instances, settings.max_instances
            ),
        );
    }
    if settings.stable_window < Duration::from_secs(1)
        && let Some((n, p)) = f.get("stable-window")
    {
        report.error(
            &n.at,
            &p,
            "stable-window must be at least 1000 ms: the load is sampled into it",
        );
    }
    settings
}

/// A pool's instances are started for nobody, so nothing they are started with may name a
/// user: `#{proxy.userId}` could not be filled in.
fn refuse_user_dependence(spec: &Fields, report: &mut Report) {
    for key in ["container-cmd", "container-env", "container-volumes"] {
        let Some((node, path)) = spec.get(key) else {
            continue;
        };
        if let Some(at) = first_expression(node) {
            report.error(
                at,
                &path,
                "an app with a pool shares its instances among users, so what they are started \
                 with cannot depend on a user (#{...}); send per-user values in http-headers, \
                 which are filled in per request",
            );
        }
    }
}

fn first_expression(node: &Node) -> Option<&super::node::At> {
    match &node.value {
        Value::Str(s) if s.contains("#{") => Some(&node.at),
        Value::Seq(items) => items.iter().find_map(first_expression),
        Value::Map(entries) => entries.iter().find_map(|e| first_expression(&e.value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    fn check(yaml: &str) -> (Option<crate::config::AppSpec>, Vec<String>) {
        let env: HashMap<String, String> = HashMap::new();
        match crate::config::load_str(Path::new("application.yml"), yaml, &env) {
            Ok(loaded) => (
                loaded.config.proxy.specs.first().cloned(),
                loaded.warnings.iter().map(|d| d.to_string()).collect(),
            ),
            Err(e) => (None, e.diagnostics.iter().map(|d| d.to_string()).collect()),
        }
    }

    fn app(extra: &str) -> String {
        format!(
            "proxy:\n  container-backend: process\n  specs:\n  - id: api\n    container-cmd: [run]\n{extra}"
        )
    }

    #[test]
    fn a_pool_block_is_read_with_defaults() {
        let (spec, messages) = check(&app(
            "    pool:\n      max-instances: 8\n      scale-down-delay: 5000\n",
        ));
        let pool = spec.and_then(|s| s.pool).expect("a pool");
        assert_eq!(
            (
                pool.min_instances,
                pool.max_instances,
                pool.target_concurrency
            ),
            (0, 8, 10),
            "{messages:?}"
        );
        assert_eq!(pool.scale_down_delay.as_millis(), 5000);
    }

    #[test]
    fn min_above_max_is_refused_at_its_line() {
        let (_, messages) = check(&app(
            "    pool:\n      min-instances: 5\n      max-instances: 2\n",
        ));
        let text = messages.join("\n");
        assert!(
            text.contains("application.yml:7") && text.contains("min-instances (5)"),
            "{text}"
        );
    }

    #[test]
    fn a_target_of_zero_is_refused() {
        let (_, messages) = check(&app("    pool:\n      target-concurrency: 0\n"));
        assert!(
            messages.join("\n").contains("target-concurrency"),
            "{messages:?}"
        );
    }

    #[test]
    fn a_pool_cannot_start_instances_with_user_values() {
        let (_, messages) = check(&app(
            "    container-env: {HOME_DIR: '/home/#{proxy.userId}'}\n    pool: {}\n",
        ));
        assert!(
            messages.join("\n").contains("cannot depend on a user"),
            "{messages:?}"
        );
    }

    #[test]
    fn public_needs_a_pool_and_excludes_api_only() {
        let (_, messages) = check(&app("    public: true\n"));
        assert!(
            messages.join("\n").contains("needs a 'pool'"),
            "{messages:?}"
        );
        let (_, messages) = check(&app("    public: true\n    api-only: true\n    pool: {}\n"));
        assert!(messages.join("\n").contains("contradict"), "{messages:?}");
        let (spec, _) = check(&app("    public: true\n    pool: {}\n"));
        assert!(spec.is_some_and(|s| s.public));
    }
}
