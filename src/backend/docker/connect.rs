//! `proxy.docker.url`: a unix socket (path or `unix://`), `tcp://`/`http://`, or, when unset,
//! `DOCKER_HOST` and then the local socket.

use bollard::{API_DEFAULT_VERSION, Docker};

const TIMEOUT_SECS: u64 = 120;

pub async fn connect(url: Option<&str>) -> Result<Docker, String> {
    let docker = match url.map(str::trim) {
        None => Docker::connect_with_defaults(),
        Some(path) if path.starts_with('/') => {
            Docker::connect_with_unix(path, TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        Some(url) if url.starts_with("unix://") => {
            Docker::connect_with_unix(url, TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        Some(url) if url.starts_with("tcp://") || url.starts_with("http://") => {
            Docker::connect_with_http(url, TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        Some(other) => {
            return Err(format!(
                "docker.url '{other}' is neither a socket path, unix://, tcp:// nor http://"
            ));
        }
    }
    .map_err(|e| format!("cannot reach the Docker engine: {e}"))?;
    // Older engines refuse a newer API version; talk theirs.
    docker.negotiate_version().await.map_err(|e| {
        format!(
            "cannot reach the Docker engine ({}): {e}",
            url.unwrap_or("DOCKER_HOST or /var/run/docker.sock")
        )
    })
}
