//! `server.ssl.*`, Spring Boot's TLS keys: a PKCS#12 key store or PEM files. A setting that asks
//! for more security than vestibule can give (client certificates, a trust store, a cipher list)
//! stops the start: serving without it would be weaker than the file promises.

use std::path::PathBuf;

use super::convert::{self, Fields};
use super::report::Report;

#[derive(Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `key-store` (PKCS#12) with `key-store-password` and, among several keys, `key-alias`.
    Pkcs12 {
        path: PathBuf,
        password: String,
        alias: Option<String>,
    },
    /// `certificate` (a PEM chain) and `certificate-private-key` (a PEM key).
    Pem { certificate: PathBuf, key: PathBuf },
}

// Hand-written: the key store's password must never reach a log.
impl std::fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateSource::Pkcs12 { path, alias, .. } => f
                .debug_struct("Pkcs12")
                .field("path", path)
                .field("alias", alias)
                .finish_non_exhaustive(),
            CertificateSource::Pem { certificate, key } => f
                .debug_struct("Pem")
                .field("certificate", certificate)
                .field("key", key)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub source: CertificateSource,
    /// `enabled-protocols`: TLS 1.2 and 1.3 unless narrowed to one of them.
    pub tls12: bool,
    pub tls13: bool,
    /// `redirect-http-port` (vestibule's own): a second, plain-HTTP port that redirects every
    /// request to HTTPS on `proxy.port`.
    pub redirect_http_port: Option<u16>,
}

pub fn check_tls(server: &Fields, report: &mut Report) -> Option<TlsSettings> {
    let ssl = Fields::of(server.get("ssl").map(|(n, _)| n), "server.ssl", report);
    let enabled = ssl.boolean("enabled", report);
    let key_store = ssl.get("key-store");
    let password = ssl.text("key-store-password", report).unwrap_or_default();
    let key_password = ssl.get("key-password");
    let alias = ssl.text("key-alias", report);
    let certificate = ssl.text("certificate", report);
    let private_key = ssl.text("certificate-private-key", report);
    refuse_unhonoured(&ssl, report);
    let store_type = ssl.get("key-store-type");
    let protocols = ssl.get("enabled-protocols");
    let redirect_http_port = ssl
        .get("redirect-http-port")
        .and_then(|(n, p)| convert::port(n, &p, false, report));

    if enabled == Some(false) {
        return None;
    }
    if let Some((node, path)) = &store_type
        && let Some(t) = convert::text(node, path, report)
        && !t.eq_ignore_ascii_case("PKCS12")
    {
        report.error(
            &node.at,
            path,
            format!("key store type '{t}' is not supported; convert the key store to PKCS12 (keytool -importkeystore -deststoretype pkcs12)"),
        );
    }
    if let Some((node, path)) = &key_password
        && convert::text(node, path, report).is_some_and(|k| k != password)
    {
        report.error(
            &node.at,
            path,
            "a key password different from key-store-password is not supported; \
             re-export the PKCS12 file with one password",
        );
    }
    let (tls12, tls13) = match &protocols {
        None => (true, true),
        Some((node, path)) => {
            let list = convert::text_list(node, path, report).unwrap_or_default();
            let mut on = (false, false);
            for p in &list {
                match p.as_str() {
                    "TLSv1.2" => on.0 = true,
                    "TLSv1.3" => on.1 = true,
                    other => report.error(
                        &node.at,
                        path,
                        format!("protocol '{other}' is not offered (vestibule speaks TLSv1.2 and TLSv1.3)"),
                    ),
                }
            }
            if !on.0 && !on.1 {
                on = (true, true);
            }
            on
        }
    };
    let source = match (key_store, certificate, private_key) {
        (Some((node, path)), None, None) => CertificateSource::Pkcs12 {
            path: PathBuf::from(convert::text(node, &path, report)?),
            password,
            alias,
        },
        (None, Some(certificate), Some(key)) => CertificateSource::Pem {
            certificate: certificate.into(),
            key: key.into(),
        },
        (None, None, None) => {
            if let Some((node, path)) = ssl.get("enabled")
                && enabled == Some(true)
            {
                report.error(
                    &node.at,
                    &path,
                    "TLS is enabled but no certificate is given: set server.ssl.key-store \
                     (PKCS12) or server.ssl.certificate and server.ssl.certificate-private-key",
                );
            }
            return None;
        }
        (Some((node, path)), _, _) => {
            report.error(
                &node.at,
                &path,
                "give either key-store or certificate and certificate-private-key, not both",
            );
            return None;
        }
        (None, _, _) => {
            let (node, path) = ssl
                .get("certificate")
                .or_else(|| ssl.get("certificate-private-key"))?;
            report.error(
                &node.at,
                &path,
                "a PEM certificate needs both server.ssl.certificate and \
                 server.ssl.certificate-private-key",
            );
            return None;
        }
    };
    Some(TlsSettings {
        source,
        tls12,
        tls13,
        redirect_http_port,
    })
}

/// Spring settings vestibule cannot honour: each one given stops the start.
fn refuse_unhonoured(ssl: &Fields, report: &mut Report) {
    if let Some((node, path)) = ssl.get("client-auth")
        && convert::text(node, &path, report).is_some_and(|v| !v.eq_ignore_ascii_case("none"))
    {
        report.error(
            &node.at,
            &path,
            "client certificates are not supported by vestibule; without them the server \
             would admit clients this file refuses",
        );
    }
    for key in ["trust-store", "ciphers"] {
        if let Some((node, path)) = ssl.get(key) {
            report.error(
                &node.at,
                &path,
                format!(
                    "server.ssl.{key} is not supported by vestibule (it uses rustls's safe \
                     defaults); remove it to start"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node;
    use std::path::Path;

    fn read(yaml: &str) -> (Option<TlsSettings>, Report) {
        let root = node::parse(yaml).expect("yaml");
        let mut report = Report::new(Path::new("t.yml"));
        let top = Fields::of(Some(&root), "", &mut report);
        let server = Fields::of(top.get("server").map(|(n, _)| n), "server", &mut report);
        (check_tls(&server, &mut report), report)
    }

    #[test]
    fn a_key_store_or_pem_files() {
        let (t, r) = read(
            "server:\n  ssl:\n    key-store: /k.p12\n    key-store-password: s3cret\n    key-alias: web\n",
        );
        assert!(!r.has_errors());
        let t = t.expect("tls");
        assert_eq!(
            t.source,
            CertificateSource::Pkcs12 {
                path: "/k.p12".into(),
                password: "s3cret".into(),
                alias: Some("web".into())
            }
        );
        assert!(!format!("{t:?}").contains("s3cret"));
        let (t, r) = read(
            "server:\n  ssl:\n    certificate: /c.pem\n    certificate-private-key: /k.pem\n    enabled-protocols: TLSv1.3\n",
        );
        assert!(!r.has_errors());
        let t = t.expect("tls");
        assert!(t.tls13 && !t.tls12);
        let (t, r) = read("server:\n  ssl:\n    enabled: false\n    key-store: /k.p12\n");
        assert!(t.is_none() && !r.has_errors());
    }

    #[test]
    fn settings_that_cannot_be_honoured_stop_the_start() {
        for bad in [
            "client-auth: need",
            "trust-store: /t.p12",
            "ciphers: TLS_AES_128_GCM_SHA256",
            "key-store-type: JKS",
            "enabled-protocols: TLSv1.1",
        ] {
            let (_, r) = read(&format!(
                "server:\n  ssl:\n    key-store: /k.p12\n    {bad}\n"
            ));
            let key = bad.split(':').next().expect("key");
            assert!(
                r.diagnostics
                    .iter()
                    .any(|d| d.to_string().contains(&format!("server.ssl.{key}"))),
                "{bad}: {:?}",
                r.diagnostics
            );
            assert!(r.has_errors(), "{bad}");
        }
        let (_, r) = read("server:\n  ssl:\n    certificate: /c.pem\n");
        assert!(r.has_errors());
    }
}
