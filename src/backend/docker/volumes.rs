//! `container-volumes`: per-user folders through `#{proxy.userId}` and
//! `#{proxy.getRuntimeValue('NAME')}`, with the host folder made when missing.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Resolves one `host:container[:mode]` entry for this user, creating a missing absolute host
/// folder (private to the owner: it may hold one user's data).
pub fn resolve(volume: &str, user: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let bind = substitute(volume, user, env)?;
    let host = bind.split(':').next().unwrap_or_default();
    if host.starts_with('/') && !Path::new(host).exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(host)
            .map_err(|e| format!("cannot create the host folder {host} for a volume: {e}"))?;
    }
    Ok(bind)
}

fn substitute(text: &str, user: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let expr = after[..end].trim();
        let value = evaluate(expr, user, env)
            .ok_or_else(|| format!("cannot evaluate #{{{expr}}} in volume '{text}'"))?;
        check_safe(&value, expr)?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn evaluate(expr: &str, user: &str, env: &BTreeMap<String, String>) -> Option<String> {
    if expr == "proxy.userId" {
        return Some(user.to_string());
    }
    let arg = expr
        .strip_prefix("proxy.getRuntimeValue(")?
        .strip_suffix(')')?
        .trim();
    let name = arg.trim_matches(|c| c == '\'' || c == '"');
    env.get(name).cloned()
}

/// A user name becomes part of a host path: it must not climb out of, or reach across, the
/// folder the config names, nor add a mount option.
fn check_safe(value: &str, expr: &str) -> Result<(), String> {
    let bad = value.is_empty()
        || value == "."
        || value.contains("..")
        || value.contains(['/', '\\', ':', '\0']);
    if bad {
        return Err(format!(
            "the value of #{{{expr}}} ({value:?}) cannot be used in a volume path"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("SHINYPROXY_USERNAME".to_string(), "alice".to_string())])
    }

    #[test]
    fn substitutes_the_user() {
        assert_eq!(
            substitute("/data/#{proxy.userId}:/home/app", "alice", &env()),
            Ok("/data/alice:/home/app".to_string())
        );
        assert_eq!(
            substitute(
                "/d/#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}:/w:ro",
                "x",
                &env()
            ),
            Ok("/d/alice:/w:ro".to_string())
        );
    }

    #[test]
    fn refuses_names_that_escape_the_folder() {
        for user in ["..", "a/b", "../etc", "", "a:b"] {
            let r = substitute("/data/#{proxy.userId}:/w", user, &env());
            assert!(r.is_err(), "{user:?} gave {r:?}");
        }
    }

    #[test]
    fn creates_a_missing_host_folder_privately() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("vestibule-vol-{}", std::process::id()));
        let spec = format!("{}/#{{proxy.userId}}:/data", base.display());
        let bind = resolve(&spec, "alice", &env()).unwrap();
        let dir = base.join("alice");
        assert_eq!(bind, format!("{}:/data", dir.display()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        let _ = std::fs::remove_dir_all(base);
    }
}
