//! The IdP's metadata: its SSO and logout URLs and its signing certificates. Fetched at the
//! first login rather than at start or `check` (a start must not depend on the IdP being up),
//! then kept for an hour; a failed refresh keeps the last good copy.

use samael::metadata::EntityDescriptor;
use std::sync::Arc;
use std::time::Duration;

use super::SamlError;
use crate::clock::Instant;
use crate::config::SamlMetadataSource;

const KEEP_FOR: Duration = Duration::from_secs(3600);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct IdpMetadata {
    source: SamlMetadataSource,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Arc<EntityDescriptor>, Instant)>>,
}

impl IdpMetadata {
    pub fn new(source: SamlMetadataSource) -> anyhow::Result<Self> {
        // The metadata URL is the operator's; redirects are not followed all the same.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(Self {
            source,
            http,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub async fn get(&self) -> Result<Arc<EntityDescriptor>, SamlError> {
        let mut cached = self.cached.lock().await;
        if let Some((md, at)) = cached.as_ref()
            && at.elapsed() < KEEP_FOR
        {
            return Ok(md.clone());
        }
        match self.load().await {
            Ok(md) => {
                let md = Arc::new(md);
                *cached = Some((md.clone(), Instant::now()));
                Ok(md)
            }
            Err(e) => match cached.as_ref() {
                Some((md, _)) => {
                    tracing::warn!(reason = %e.detail(), "kept the SAML IdP's last metadata");
                    Ok(md.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn load(&self) -> Result<EntityDescriptor, SamlError> {
        let (text, from) = match &self.source {
            SamlMetadataSource::Url(url) => {
                let unavailable =
                    |e: String| SamlError::Unavailable(format!("IdP metadata at {url}: {e}"));
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| unavailable(crate::auth::oidc::error_chain(&e)))?;
                if !response.status().is_success() {
                    return Err(unavailable(format!("answered {}", response.status())));
                }
                let body = response
                    .text()
                    .await
                    .map_err(|e| unavailable(crate::auth::oidc::error_chain(&e)))?;
                (body, url.clone())
            }
            SamlMetadataSource::File(path) => {
                let body = tokio::fs::read_to_string(path).await.map_err(|e| {
                    SamlError::Config(format!("IdP metadata {}: {e}", path.display()))
                })?;
                (body, path.display().to_string())
            }
        };
        let md: EntityDescriptor = text.parse().map_err(|e| {
            SamlError::Config(format!(
                "IdP metadata from {from} is not SAML metadata: {e}"
            ))
        })?;
        check(&md)
            .map_err(|what| SamlError::Config(format!("IdP metadata from {from}: {what}")))?;
        Ok(md)
    }
}

/// An IdP without signing certificates would make samael skip signature checks: refused.
fn check(md: &EntityDescriptor) -> Result<(), String> {
    let descriptors = md.idp_sso_descriptors.as_deref().unwrap_or_default();
    if descriptors.is_empty() {
        return Err("no IDPSSODescriptor".into());
    }
    let has_cert = descriptors
        .iter()
        .flat_map(|d| &d.key_descriptors)
        .any(|k| {
            k.key_use
                .as_deref()
                .is_none_or(|u| u.is_empty() || u == "signing")
                && k.key_info
                    .x509_data
                    .as_ref()
                    .is_some_and(|x| !x.certificates.is_empty())
        });
    if has_cert {
        Ok(())
    } else {
        Err("no signing certificate, so no signature could be checked".into())
    }
}
