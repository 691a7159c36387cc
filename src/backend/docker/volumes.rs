//! `container-volumes`: per-user folders (`config::template` fills the user in), with the
//! host folder made when missing.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Resolves one `host:container[:mode]` entry for this user, creating a missing absolute host
/// folder (private to the owner: it may hold one user's data).
pub fn resolve(volume: &str, user: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let bind = crate::config::template::fill_volume(volume, user, env)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("SHINYPROXY_USERNAME".to_string(), "alice".to_string())])
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
