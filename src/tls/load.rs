//! Reads the server's certificate and key from a PKCS#12 key store or PEM files into what
//! rustls serves. Errors name the file and say what is wrong with it, never the password.

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use std::sync::Arc;

use crate::config::CertificateSource;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
}

fn invalid(path: &Path, what: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        path: path.display().to_string(),
        what: what.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The raw bytes of every file `source` names, to notice when they change.
pub fn fingerprint(source: &CertificateSource) -> Vec<Vec<u8>> {
    let files: Vec<&Path> = match source {
        CertificateSource::Pkcs12 { path, .. } => vec![path],
        CertificateSource::Pem { certificate, key } => vec![certificate, key],
    };
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

pub fn load(source: &CertificateSource) -> Result<Arc<CertifiedKey>, LoadError> {
    let (chain, key, path) = match source {
        CertificateSource::Pem { certificate, key } => {
            let chain = CertificateDer::pem_slice_iter(&read(certificate)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(certificate, format!("not a PEM certificate chain: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| invalid(key, format!("no PEM private key: {e}")))?;
            (chain, key, certificate.as_path())
        }
        CertificateSource::Pkcs12 {
            path,
            password,
            alias,
        } => {
            let (chain, key) = pkcs12(path, password, alias.as_deref())?;
            (chain, key, path.as_path())
        }
    };
    if chain.is_empty() {
        return Err(invalid(path, "holds no certificate"));
    }
    let signing = any_supported_type(&key)
        .map_err(|e| invalid(path, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            path,
            format!("the key does not belong to the certificate: {e}"),
        )
    })?;
    Ok(Arc::new(certified))
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn pkcs12(path: &Path, password: &str, alias: Option<&str>) -> Result<Pair, LoadError> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let store =
        KeyStore::from_pkcs12(&read(path)?, password, Pkcs12ImportPolicy::Strict).map_err(|e| {
            invalid(
                path,
                format!("cannot open the PKCS12 key store (wrong key-store-password?): {e}"),
            )
        })?;
    let chain = match alias {
        Some(alias) => match store.entry(alias) {
            Some(KeyStoreEntry::PrivateKeyChain(chain)) => chain,
            _ => {
                let known: Vec<&str> = store.entries().map(|(a, _)| a.as_str()).collect();
                return Err(invalid(
                    path,
                    format!("no private key under key-alias '{alias}' (aliases: {known:?})"),
                ));
            }
        },
        None => match store.private_key_chain() {
            Some((_, chain)) => chain,
            None => return Err(invalid(path, "holds no private key")),
        },
    };
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}
