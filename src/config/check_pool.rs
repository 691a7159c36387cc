//! A spec's `pool` block, and the `public` and `api-only` switches that go with shared apps.
//! Contradictions are refused here, at their line, rather than found by users at run time.

use super::convert::Fields;
use super::model::{PoolSettings, SeatSettings};
use super::node::{Node, Value};
use super::report::Report;
use std::time::Duration;

/// What `check_pool` reads of a spec.
pub struct Sharing {
    pub pool: Option<PoolSettings>,
    pub public: bool,
    pub api_only: bool,
    pub seats: Option<SeatSettings>,
}

/// `proxy.seat-wait-time`: ShinyProxy polls for a seat every 3 s, so it refuses less than that;
/// vestibule hands seats out as they come, but keeps the rule so a config means the same.
pub fn seat_wait_time(proxy: &Fields, report: &mut Report) -> Duration {
    let fallback = Duration::from_secs(300);
    let Some((n, p)) = proxy.get("seat-wait-time") else {
        return fallback;
    };
    match super::convert::int(n, &p, "milliseconds", report) {
        Some(ms) if ms >= 3000 => Duration::from_millis(ms.unsigned_abs()),
        Some(ms) => {
            report.error(
                &n.at,
                &p,
                format!("seat-wait-time must be at least 3000 ms (as in ShinyProxy), found {ms}"),
            );
            fallback
        }
        None => fallback,
    }
}

fn seat_settings(spec: &Fields, report: &mut Report) -> Option<SeatSettings> {
    spec.get("minimum-seats-available")?;
    let count = |name: &str, least: i64, report: &mut Report| -> Option<u32> {
        let (n, p) = spec.get(name)?;
        let v = super::convert::int(n, &p, "a count", report)?;
        match u32::try_from(v) {
            Ok(c) if v >= least => Some(c),
            _ => {
                report.error(
                    &n.at,
                    &p,
                    format!("expected a whole number of at least {least}, found {v}"),
                );
                None
            }
        }
    };
    let minimum_available = count("minimum-seats-available", 0, report).unwrap_or(0);
    let per_container = count("seats-per-container", 1, report).unwrap_or(1);
    let allow_reuse = spec
        .boolean("allow-container-re-use", report)
        .unwrap_or(true);
    if !allow_reuse
        && per_container != 1
        && let Some((n, p)) = spec.get("allow-container-re-use")
    {
        report.error(
            &n.at,
            &p,
            "allow-container-re-use: false gives each container to one user, so              seats-per-container must be 1 (ShinyProxy refuses this too)",
        );
    }
    let minutes = match spec.get("scale-down-delay") {
        Some((n, p)) => match super::convert::int(n, &p, "minutes", report) {
            Some(m) if m >= 0 => m.unsigned_abs(),
            Some(m) => {
                report.error(
                    &n.at,
                    &p,
                    format!("expected minutes of 0 or more, found {m}"),
                );
                2
            }
            None => 2,
        },
        None => 2,
    };
    Some(SeatSettings {
        minimum_available,
        per_container,
        allow_reuse,
        scale_down_delay: Duration::from_secs(minutes.saturating_mul(60)),
    })
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
    let seats = seat_settings(spec, report);
    if seats.is_some() {
        if let (Some(_), Some((n, p))) = (&pool, spec.get("minimum-seats-available")) {
            report.error(
                &n.at,
                &p,
                "an app has either seats (shared containers users claim a seat in) or a pool                  (requests balanced over instances), not both",
            );
        } else {
            refuse_user_dependence(spec, report);
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
        seats,
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
        client_rate_limit: f
            .get("client-rate-limit")
            .and_then(|_| std::num::NonZeroU32::new(count("client-rate-limit", 0, 1, report))),
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
    // Said once per spec, even when it has both seats and a pool.
    for key in ["container-cmd", "container-env", "container-volumes"] {
        let Some((node, path)) = spec.get(key) else {
            continue;
        };
        if let Some(at) = first_expression(node) {
            report.error(
                at,
                &path,
                "an app with a pool or seats shares its instances among users, so what they \
                 are started with cannot depend on a user (#{...}); send per-user values in \
                 http-headers, which are filled in per request",
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
    fn seats_are_read_with_shinyproxy_units_and_rules() {
        let (spec, messages) = check(&app(
            "    minimum-seats-available: 2\n    seats-per-container: 3\n    scale-down-delay: 5\n",
        ));
        let seats = spec.and_then(|s| s.seats).expect("seats");
        assert_eq!(
            (
                seats.minimum_available,
                seats.per_container,
                seats.allow_reuse
            ),
            (2, 3, true),
            "{messages:?}"
        );
        assert_eq!(
            seats.scale_down_delay.as_secs(),
            300,
            "minutes, as in ShinyProxy"
        );
        let (_, messages) = check(&app(
            "    minimum-seats-available: 1\n    seats-per-container: 2\n    allow-container-re-use: false\n",
        ));
        assert!(messages.join("\n").contains("must be 1"), "{messages:?}");
        let (_, messages) = check(&format!(
            "{}    minimum-seats-available: 1\n",
            app("").replace("proxy:\n", "proxy:\n  seat-wait-time: 1000\n")
        ));
        assert!(
            messages.join("\n").contains("at least 3000"),
            "{messages:?}"
        );
        let (_, messages) = check(&app("    minimum-seats-available: 1\n    pool: {}\n"));
        assert!(messages.join("\n").contains("not both"), "{messages:?}");
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
