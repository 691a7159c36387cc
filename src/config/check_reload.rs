//! `proxy.reload.*` (vestibule's own): when the config file is read again while serving, and
//! what happens to the running instances of an app the new file no longer has.

use std::time::Duration;

use super::convert::Fields;
use super::report::Report;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSettings {
    /// `watch`: look at the file every `interval` and reload when its contents change (a
    /// Kubernetes ConfigMap update swaps a symlink, so the contents are compared, not events).
    /// SIGHUP reloads either way.
    pub watch: bool,
    /// `interval` (ms).
    pub interval: Duration,
    /// `stop-removed-apps`: stop the running instances of an app taken out of the file at
    /// once, rather than letting them run until they end.
    pub stop_removed_apps: bool,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            watch: true,
            interval: Duration::from_secs(2),
            stop_removed_apps: false,
        }
    }
}

pub fn check_reload(proxy: &Fields, report: &mut Report) -> ReloadSettings {
    let f = Fields::of(proxy.get("reload").map(|(n, _)| n), "proxy.reload", report);
    let defaults = ReloadSettings::default();
    let interval = match f.get("interval") {
        Some((node, path)) => match super::convert::int(node, &path, "milliseconds", report) {
            Some(ms) if ms >= 100 => Duration::from_millis(ms.unsigned_abs()),
            Some(_) => {
                report.error(
                    &node.at,
                    &path,
                    format!(
                        "must be at least 100 (milliseconds), found {}",
                        node.describe()
                    ),
                );
                defaults.interval
            }
            None => defaults.interval,
        },
        None => defaults.interval,
    };
    ReloadSettings {
        watch: f.boolean("watch", report).unwrap_or(defaults.watch),
        interval,
        stop_removed_apps: f
            .boolean("stop-removed-apps", report)
            .unwrap_or(defaults.stop_removed_apps),
    }
}
