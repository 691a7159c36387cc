//! `proxy.saml.*`: the identity provider of `authentication: saml` (ShinyProxy's keys), and
//! the service provider's own key and certificate.
//!
//! Nothing is fetched here: the IdP's metadata URL is only read at the first login, so a
//! check works offline. The key files are read, so a missing or unreadable keystore is named
//! at its line. No message contains a password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::auth_model::{
    SAML_DEFAULT_NAME_ATTRIBUTE, SamlConfig, SamlCredentials, SamlLogoutMethod, SamlMetadataSource,
};
use super::convert::Fields;
use super::model::AuthMethod;
use super::node::{At, Node};
use super::report::Report;

/// Spring Security SAML's default for `max-authentication-age`, in seconds.
const DEFAULT_MAX_AUTHENTICATION_AGE: u64 = 7200;

pub fn check_saml(proxy: &Fields, auth: AuthMethod, report: &mut Report) -> Option<SamlConfig> {
    let section = proxy.get("saml");
    if auth != AuthMethod::Saml {
        return None;
    }
    let at = section
        .as_ref()
        .map(|(n, _)| n.at.clone())
        .or_else(|| proxy.get("authentication").map(|(n, _)| n.at.clone()))
        .unwrap_or_else(|| At::file(0, 0));
    let fields = Fields::of(section.map(|(n, _)| n), "proxy.saml", report);
    let missing = |name: &str, why: &str, report: &mut Report| {
        report.error(
            &at,
            &format!("proxy.saml.{name}"),
            format!("authentication: saml needs proxy.saml.{name}, {why}"),
        );
    };

    let idp_metadata = match fields.get("idp-metadata-url") {
        Some((node, path)) => metadata_source(node, &path, report),
        None => {
            missing(
                "idp-metadata-url",
                "the URL (or file) of the identity provider's metadata",
                report,
            );
            None
        }
    };
    let entity_id = fields.text("app-entity-id", report).unwrap_or_else(|| {
        missing(
            "app-entity-id",
            "the entity id this service is registered under at the identity provider",
            report,
        );
        String::new()
    });
    let base_url = match fields.get("app-base-url") {
        Some((node, path)) => http_url(node, &path, report).unwrap_or_default(),
        None => {
            missing(
                "app-base-url",
                "the public URL of this service (the ACS is <app-base-url>/saml/SSO)",
                report,
            );
            String::new()
        }
    };
    let logout_method = match fields.get("logout-method") {
        Some((node, path)) => {
            match super::convert::choice(node, &path, &["local", "saml"], report) {
                Some("saml") => SamlLogoutMethod::Saml,
                _ => SamlLogoutMethod::Local,
            }
        }
        None => SamlLogoutMethod::Local,
    };
    let max_authentication_age = fields
        .int("max-authentication-age", "seconds", report)
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(DEFAULT_MAX_AUTHENTICATION_AGE), |s| {
            Duration::from_secs(s.unsigned_abs())
        });
    let logout_url = fields
        .text("logout-url", report)
        .filter(|u| !u.trim().is_empty());
    Some(SamlConfig {
        idp_metadata: idp_metadata.unwrap_or(SamlMetadataSource::Url(String::new())),
        entity_id,
        base_url,
        name_attribute: fields
            .text("name-attribute", report)
            .unwrap_or_else(|| SAML_DEFAULT_NAME_ATTRIBUTE.into()),
        roles_attribute: fields
            .text("roles-attribute", report)
            .filter(|r| !r.trim().is_empty()),
        credentials: credentials(&fields, report),
        force_authn: fields.boolean("force-authn", report).unwrap_or(false),
        logout_url,
        logout_method,
        log_attributes: fields.boolean("log-attributes", report).unwrap_or(false),
        max_authentication_age,
    })
}

fn http_url(node: &Node, path: &str, report: &mut Report) -> Option<String> {
    let text = super::convert::text(node, path, report)?;
    let text = text.trim();
    if text.starts_with("https://") || text.starts_with("http://") {
        Some(text.trim_end_matches('/').to_string())
    } else {
        report.error(
            &node.at,
            path,
            format!("expected an http:// or https:// URL, found '{text}'"),
        );
        None
    }
}

/// An http(s) URL, or a file (`file:` URL or path) that must exist.
fn metadata_source(node: &Node, path: &str, report: &mut Report) -> Option<SamlMetadataSource> {
    let text = super::convert::text(node, path, report)?;
    let text = text.trim();
    if text.starts_with("https://") || text.starts_with("http://") {
        return Some(SamlMetadataSource::Url(text.to_string()));
    }
    let file = PathBuf::from(text.strip_prefix("file:").unwrap_or(text));
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Some(SamlMetadataSource::File(file)),
        Ok(_) => {
            report.error(&node.at, path, format!("{} is not a file", file.display()));
            None
        }
        Err(e) => {
            report.error(
                &node.at,
                path,
                format!(
                    "cannot read the identity provider's metadata from {}: {e} (write an \
                     http:// or https:// URL, or the path of a metadata file)",
                    file.display()
                ),
            );
            None
        }
    }
}

/// The SP key pair: ShinyProxy's PKCS12 `keystore`, or vestibule's PEM `certificate` and
/// `certificate-private-key`.
fn credentials(f: &Fields, report: &mut Report) -> Option<SamlCredentials> {
    let cert_password = f.text("encryption-cert-password", report);
    // ShinyProxy: the keystore password defaults to the certificate's.
    let password = f
        .text("keystore-password", report)
        .or_else(|| cert_password.clone())
        .unwrap_or_default();
    let alias = f.text("encryption-cert-name", report);
    let cert = f.get("certificate");
    let key = f.get("certificate-private-key");
    if let Some((node, path)) = f.get("keystore") {
        let file = super::convert::text(node, &path, report)?;
        return match pkcs12(
            Path::new(&file),
            &password,
            cert_password.as_deref(),
            alias.as_deref(),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                report.error(&node.at, &path, e);
                None
            }
        };
    }
    match (cert, key) {
        (None, None) => None,
        (Some((node, path)), None) | (None, Some((node, path))) => {
            report.error(
                &node.at,
                &path,
                "proxy.saml.certificate and proxy.saml.certificate-private-key go together",
            );
            None
        }
        (Some((cn, cp)), Some((kn, kp))) => {
            let cert_file = super::convert::text(cn, &cp, report)?;
            let key_file = super::convert::text(kn, &kp, report)?;
            let certificate_der = match pem_certificate(Path::new(&cert_file)) {
                Ok(c) => Some(c),
                Err(e) => {
                    report.error(&cn.at, &cp, e);
                    None
                }
            };
            let key_der = match pem_key(Path::new(&key_file)) {
                Ok(k) => Some(k),
                Err(e) => {
                    report.error(&kn.at, &kp, e);
                    None
                }
            };
            Some(SamlCredentials {
                certificate_der: certificate_der?,
                key_der: key_der?,
            })
        }
    }
}

fn read(file: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn pem_certificate(file: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bytes = read(file)?;
    CertificateDer::pem_slice_iter(&bytes)
        .next()
        .and_then(Result::ok)
        .map(|c| c.to_vec())
        .ok_or_else(|| format!("{} holds no PEM certificate", file.display()))
}

fn pem_key(file: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    let bytes = read(file)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(PrivateKeyDer::Pkcs8(k)) => Ok(k.secret_pkcs8_der().to_vec()),
        Ok(_) => Err(format!(
            "{}: the private key must be PKCS#8 ('BEGIN PRIVATE KEY'); convert it with \
             openssl pkcs8 -topk8 -nocrypt",
            file.display()
        )),
        Err(e) => Err(format!("{} holds no PEM private key: {e}", file.display())),
    }
}

fn pkcs12(
    file: &Path,
    password: &str,
    cert_password: Option<&str>,
    alias: Option<&str>,
) -> Result<SamlCredentials, String> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let bytes = read(file)?;
    let opened = KeyStore::from_pkcs12(&bytes, password, Pkcs12ImportPolicy::Strict).or_else(|e| {
        // A keystore whose key has its own password (encryption-cert-password).
        match cert_password {
            Some(p) if p != password => {
                KeyStore::from_pkcs12(&bytes, p, Pkcs12ImportPolicy::Strict)
            }
            _ => Err(e),
        }
    });
    let store = opened.map_err(|e| {
        format!(
            "cannot open the PKCS12 keystore {} (wrong keystore-password?): {e}",
            file.display()
        )
    })?;
    let chain = match alias {
        Some(alias) => match store.entry(alias) {
            Some(KeyStoreEntry::PrivateKeyChain(chain)) => chain,
            _ => {
                let known: Vec<&str> = store.entries().map(|(a, _)| a.as_str()).collect();
                return Err(format!(
                    "{} has no private key under encryption-cert-name '{alias}' (names: {known:?})",
                    file.display()
                ));
            }
        },
        None => match store.private_key_chain() {
            Some((_, chain)) => chain,
            None => return Err(format!("{} holds no private key", file.display())),
        },
    };
    let certificate_der = chain
        .certs()
        .first()
        .map(|c| c.as_der().to_vec())
        .ok_or_else(|| format!("{} holds no certificate for its key", file.display()))?;
    Ok(SamlCredentials {
        certificate_der,
        key_der: chain.key().as_der().to_vec(),
    })
}
