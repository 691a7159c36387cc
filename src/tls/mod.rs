//! TLS on the main port (`server.ssl.*`): rustls with ring, HTTP/2 offered by ALPN, and a
//! certificate that is read again when its files change or on SIGHUP. A handshake takes the
//! certificate of its moment, so connections that are open keep theirs.

mod load;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::TlsSettings;

pub use load::LoadError;

/// How often the certificate files are compared with what is served.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What `Strict-Transport-Security` says on every answer over TLS: a year, this host only.
pub const HSTS: &str = "max-age=31536000";

#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Builds the acceptor (a bad certificate stops the start) and keeps its certificate current
/// until `stop`.
pub fn acceptor(
    settings: &TlsSettings,
    stop: CancellationToken,
) -> Result<tokio_rustls::TlsAcceptor, LoadError> {
    let current = Arc::new(Current(ArcSwap::new(load::load(&settings.source)?)));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (settings.tls13, &rustls::version::TLS13),
        (settings.tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter_map(|(on, v)| on.then_some(v))
    .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| LoadError::Invalid {
            path: "server.ssl.enabled-protocols".into(),
            what: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio::spawn(keep_current(settings.clone(), current, stop));
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reloads on SIGHUP and when the files' contents change. A file caught half-written, or a
/// wrong new certificate, is logged and the old one kept, so the server goes on serving.
async fn keep_current(settings: TlsSettings, current: Arc<Current>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates reload on file change only");
            None
        }
    };
    let mut seen = load::fingerprint(&settings.source);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async { hangup.as_mut()?.recv().await } => true,
        };
        let now = load::fingerprint(&settings.source);
        if !forced && now == seen {
            continue;
        }
        match load::load(&settings.source) {
            Ok(key) => {
                current.0.store(key);
                seen = now;
                tracing::info!(
                    why = if forced {
                        "SIGHUP"
                    } else {
                        "the files changed"
                    },
                    "TLS certificate reloaded"
                );
            }
            Err(e) => {
                // Marked as seen, so the error is logged once: the write that completes a
                // half-written file changes it again and is picked up then.
                seen = now;
                tracing::error!(error = %e, "the new TLS certificate cannot be used; still serving the old one");
            }
        }
    }
}

/// Checks the certificate loads, for `vestibule check` and the start.
pub fn check(settings: &TlsSettings) -> Result<(), LoadError> {
    load::load(&settings.source).map(|_| ())
}
