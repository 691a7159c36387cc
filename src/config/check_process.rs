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
}

impl Default for ProcessSettings {
    fn default() -> Self {
        Self {
            inherit_env: DEFAULT_INHERIT_ENV.iter().map(|s| s.to_string()).collect(),
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
    let Some((node, path)) = f.get("inherit-env") else {
        return ProcessSettings::default();
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
    ProcessSettings { inherit_env }
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
