//! `proxy.process.*`: settings of the process backend (vestibule's own keys).

use super::convert::Fields;
use super::report::Report;

/// What an app started as a local process inherits from vestibule's environment when
/// `proxy.process.inherit-env` is not set: what a program needs to find its tools, its home,
/// its language and its time zone, and nothing that could carry a secret.
pub const DEFAULT_INHERIT_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
];

/// `proxy.process.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `inherit-env`: names of vestibule's environment variables an app gets; `NAME*` matches a
    /// prefix. Everything else (client secrets, passwords given as `${VAR}`) stays with vestibule.
    pub inherit_env: Vec<String>,
    /// `uid-range` (`61000-61999`): each instance runs as a user id of its own from this range
    /// (its group id the same number), so apps cannot read each other's files or vestibule's.
    /// Needs vestibule to run as root; the ids must belong to nobody else.
    pub uid_range: Option<std::ops::RangeInclusive<u32>>,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        Self {
            inherit_env: DEFAULT_INHERIT_ENV.iter().map(|s| s.to_string()).collect(),
            uid_range: None,
        }
    }
}

impl ProcessSettings {
    /// Whether an app may inherit vestibule's variable `name`.
    pub fn inherits(&self, name: &str) -> bool {
        self.inherit_env
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

pub fn check_process_settings(proxy: &Fields, report: &mut Report) -> ProcessSettings {
    let f = Fields::of(
        proxy.get("process").map(|(n, _)| n),
        "proxy.process",
        report,
    );
    let uid_range = uid_range(&f, report);
    let Some((node, path)) = f.get("inherit-env") else {
        return ProcessSettings {
            uid_range,
            ..ProcessSettings::default()
        };
    };
    let names = f.text_list("inherit-env", report).unwrap_or_default();
    let mut inherit_env = Vec::new();
    for name in names {
        let bare = name.strip_suffix('*').unwrap_or(&name);
        if bare.is_empty() || bare.contains(['=', '*']) {
            report.error(
                &node.at,
                &path,
                format!(
                    "'{name}' is not an environment variable name (write NAME, or PREFIX* for \
                     every name that starts with PREFIX)"
                ),
            );
        } else {
            inherit_env.push(name);
        }
    }
    ProcessSettings {
        inherit_env,
        uid_range,
    }
}

fn uid_range(f: &Fields, report: &mut Report) -> Option<std::ops::RangeInclusive<u32>> {
    let (node, path) = f.get("uid-range")?;
    let text = f.text("uid-range", report)?;
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    match parsed {
        // Below 1000 are the system's own accounts; an app must never become one of them.
        Some((first, last)) if first >= 1000 && first <= last => Some(first..=last),
        _ => {
            report.error(
                &node.at,
                &path,
                format!(
                    "must be FIRST-LAST, two user ids of 1000 or more with FIRST <= LAST \
                     (for example 61000-61999), found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes() {
        let s = ProcessSettings::default();
        for name in ["PATH", "LC_ALL", "LC_CTYPE", "HOME"] {
            assert!(s.inherits(name), "{name}");
        }
        for name in [
            "OIDC_CLIENT_SECRET",
            "ALICE_PW",
            "PATHX",
            "VESTIBULE_X",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(!s.inherits(name), "{name}");
        }
    }
}
