//! SAML 2.0 login (`authentication: saml`): vestibule as a service provider (SP) of one
//! identity provider (IdP) — ADFS, Entra ID, Okta, Keycloak, Shibboleth.
//!
//! The AuthnRequest goes out by the Redirect binding and the Response comes back by the POST
//! binding to ShinyProxy's ACS path, `/saml/SSO`. XML signatures and encrypted assertions are
//! handled by `samael` on top of libxmlsec1 (never by hand): the Response or its assertion
//! must carry a valid signature by a certificate from the IdP's metadata, and an unsigned one
//! is refused. The checks beyond the signature (audience, recipient, destination, validity
//! window with a small clock skew, `InResponseTo`) are samael's too; those it cannot know
//! about — which requests this server issued, assertions already used, the age of the
//! authentication — are made here against the shared store, so any replica can finish a login.

mod compat;
mod errors;
mod idp;
mod pending;
mod subject;

pub use errors::SamlError;
pub use pending::Verified;

use base64::Engine;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::session::{SamlSubject, random_token};
use crate::config::{SamlConfig, SamlLogoutMethod};
use idp::IdpMetadata;
use pending::{Pending, PendingError, Request};

/// ShinyProxy's paths, so existing IdP registrations keep working.
pub const ACS_PATH: &str = "/saml/SSO";
pub const METADATA_PATH: &str = "/saml/metadata";
/// Where the IdP sends the browser back after single logout.
pub const SINGLE_LOGOUT_PATH: &str = "/saml/SingleLogout";
/// vestibule's second step after the ACS (see `web::saml`).
pub const COMPLETE_PATH: &str = "/saml/complete";
/// The short-lived cookie that ties the browser to its login in flight.
pub const PENDING_COOKIE: &str = "vestibule_saml";

/// How far the IdP's clock may be off from this server's.
const CLOCK_SKEW: Duration = Duration::from_secs(180);
/// How old a Response or assertion may be when it arrives (its IssueInstant).
const MAX_ISSUE_DELAY: Duration = Duration::from_secs(300);
/// Bounds on how long an accepted assertion id is remembered.
const MIN_REPLAY_MEMORY: Duration = Duration::from_secs(60);
const MAX_REPLAY_MEMORY: Duration = Duration::from_secs(24 * 3600);

pub struct Started {
    /// The value of [`PENDING_COOKIE`] (the browser's own, when it already had one).
    pub cookie: String,
    /// The IdP's SSO URL with the AuthnRequest.
    pub redirect_to: String,
}

pub struct SamlLogin {
    cfg: Arc<SamlConfig>,
    idp: IdpMetadata,
    key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
    pending: Pending,
}

impl SamlLogin {
    pub fn new(cfg: SamlConfig, store: Arc<dyn crate::store::Store>) -> anyhow::Result<Self> {
        let key = match &cfg.credentials {
            Some(c) => Some(
                openssl::pkey::PKey::private_key_from_pkcs8(&c.key_der)
                    .map_err(|e| anyhow::anyhow!("proxy.saml: unusable private key: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            idp: IdpMetadata::new(cfg.idp_metadata.clone())?,
            cfg: Arc::new(cfg),
            key,
            pending: Pending::new(store),
        })
    }

    pub fn acs_url(&self) -> String {
        format!("{}{ACS_PATH}", self.cfg.base_url)
    }

    fn service_provider(&self, idp: &EntityDescriptor) -> Result<ServiceProvider, SamlError> {
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or(chrono::Duration::minutes(3));
        let delay =
            chrono::Duration::from_std(MAX_ISSUE_DELAY).unwrap_or(chrono::Duration::minutes(5));
        ServiceProviderBuilder::default()
            .entity_id(Some(self.cfg.entity_id.clone()))
            .acs_url(Some(self.acs_url()))
            .slo_url(Some(format!("{}{SINGLE_LOGOUT_PATH}", self.cfg.base_url)))
            .metadata_url(Some(format!("{}{METADATA_PATH}", self.cfg.base_url)))
            .idp_metadata(idp.clone())
            .key(self.key.clone())
            .certificate(
                self.cfg
                    .credentials
                    .as_ref()
                    .map(|c| CertificateDer::from(c.certificate_der.clone())),
            )
            .force_authn(self.cfg.force_authn)
            .allow_idp_initiated(false)
            .max_clock_skew(skew)
            .max_issue_delay(delay)
            // SHA-1 signatures are refused (algorithm substitution, collisions).
            .allowed_signature_algorithms(Some(vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha384,
                AllowedSignatureAlgorithm::RsaSha512,
                AllowedSignatureAlgorithm::EcdsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha384,
                AllowedSignatureAlgorithm::EcdsaSha512,
            ]))
            .build()
            .map_err(|e| SamlError::Config(format!("the service provider: {e}")))
    }

    /// The SP metadata for `/saml/metadata`, signed when a key is configured.
    pub async fn metadata_xml(&self) -> Result<String, SamlError> {
        // The SP's own metadata does not depend on the IdP being reachable.
        let sp = self.service_provider(&EntityDescriptor::default())?;
        let mut entity = sp
            .metadata()
            .map_err(|e| SamlError::Config(format!("the SP metadata: {e}")))?;
        // samael marks its encryption key "signing" too; IdPs pick the key they encrypt to by
        // use="encryption".
        for descriptor in entity.sp_sso_descriptors.iter_mut().flatten() {
            for key in descriptor.key_descriptors.iter_mut().flatten() {
                if key.encryption_methods.is_some() {
                    key.key_use = Some("encryption".into());
                }
            }
        }
        let cert = self
            .cfg
            .credentials
            .as_ref()
            .map(|c| CertificateDer::from(c.certificate_der.clone()));
        if let (Some(key), Some(cert)) = (&self.key, cert) {
            let id = format!("id-{}", random_token());
            let xml = with_signature_template(&to_xml(&entity)?, &id, &cert)?;
            let der = key
                .private_key_to_der()
                .map_err(|e| SamlError::Config(format!("the SP key: {e}")))?;
            return tokio::task::spawn_blocking(move || {
                samael::crypto::Crypto::sign_xml(xml, &der).map_err(|e| {
                    SamlError::Config(format!(
                        "signing the SP metadata: {}",
                        crate::auth::oidc::error_chain(&e)
                    ))
                })
            })
            .await
            .map_err(|e| SamlError::Config(format!("signing the SP metadata: {e}")))?;
        }
        to_xml(&entity)
    }

    /// Begins a login: the browser is to carry `cookie` and go to `redirect_to`.
    pub async fn start(&self, next: String, browser: Option<&str>) -> Result<Started, SamlError> {
        let idp = self.idp.get().await?;
        let sp = self.service_provider(&idp)?;
        let sso = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| {
                SamlError::Config(
                    "the IdP's metadata has no SingleSignOnService with the HTTP-Redirect binding"
                        .into(),
                )
            })?;
        let mut request = sp
            .make_authentication_request(&sso)
            .map_err(|e| SamlError::Config(format!("the AuthnRequest: {e}")))?;
        // samael's ids carry 32 random bits; InResponseTo is only as strong as this id.
        request.id = format!("id-{}", random_token());
        let cookie = match browser {
            // Only a value of our own shape is reused, so a planted cookie cannot be weak.
            Some(b) if b.len() == 43 => b.to_string(),
            _ => random_token(),
        };
        self.pending
            .issued(
                &request.id,
                &Request {
                    browser: cookie.clone(),
                    next,
                },
            )
            .await
            .map_err(|e| match e {
                PendingError::Flood => SamlError::Store(e.to_string()),
                PendingError::Store(s) => SamlError::Store(s.to_string()),
            })?;
        // RelayState carries the request id: the ACS needs no cookie to find the request.
        let url = request
            .redirect(&request.id)
            .map_err(|e| SamlError::Config(format!("the AuthnRequest: {e}")))?
            .ok_or_else(|| SamlError::Config("the AuthnRequest has no destination".into()))?;
        Ok(Started {
            cookie,
            redirect_to: url.to_string(),
        })
    }

    /// Checks a Response posted to the ACS. On success, returns the one-time code under which
    /// the verified login waits for its browser at [`COMPLETE_PATH`].
    pub async fn accept(
        &self,
        saml_response: &str,
        relay_state: &str,
    ) -> Result<String, SamlError> {
        let compact: String = saml_response.split_whitespace().collect();
        let xml = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| SamlError::Malformed("SAMLResponse is not base64 XML".into()))?;
        let xml = compat::declare_ds_on_key_info(&xml);
        let idp = self.idp.get().await?;
        let sp = self.service_provider(&idp)?;
        let request_id = relay_state.to_string();
        // libxmlsec1 works synchronously; a panic in samael ends only this task.
        let parsed = tokio::task::spawn_blocking(move || {
            let ids = [request_id.as_str()];
            sp.parse_xml_response(&xml, Some(&ids[..]))
                .map_err(errors::from_samael)
        })
        .await
        .map_err(|e| SamlError::Malformed(format!("the Response could not be read: {e}")))?;
        let assertion = parsed?;
        let now = chrono::Utc::now();
        if let Some(instant) = assertion
            .authn_statements
            .iter()
            .flatten()
            .filter_map(|s| s.authn_instant)
            .max()
        {
            let max_age = chrono::Duration::from_std(self.cfg.max_authentication_age)
                .unwrap_or(chrono::Duration::hours(2));
            if instant + max_age < now {
                return Err(SamlError::Expired(format!(
                    "the user authenticated at the IdP at {instant}, longer ago than \
                     proxy.saml.max-authentication-age"
                )));
            }
        }
        let keep = subject::valid_until(&assertion)
            .and_then(|t| (t - now).to_std().ok())
            .map(|d| d + CLOCK_SKEW)
            .unwrap_or(MAX_REPLAY_MEMORY)
            .clamp(MIN_REPLAY_MEMORY, MAX_REPLAY_MEMORY);
        let first = self
            .pending
            .first_use(&assertion.id, keep)
            .await
            .map_err(|e| SamlError::Store(e.to_string()))?;
        if !first {
            return Err(SamlError::Replayed);
        }
        let request = self
            .pending
            .answered(relay_state)
            .await
            .map_err(|e| SamlError::Store(e.to_string()))?
            .ok_or(SamlError::Unsolicited)?;
        let found = subject::identity(&assertion, &self.cfg)?;
        if self.cfg.log_attributes {
            for (name, values) in subject::attributes(&assertion) {
                tracing::info!(user = %found.user, attribute = %name, values = ?values, "SAML attribute");
            }
        }
        let code = random_token();
        self.pending
            .hold(
                &code,
                &Verified {
                    browser: request.browser,
                    next: request.next,
                    user: found.user,
                    groups: found.groups,
                    subject: found.subject,
                },
            )
            .await
            .map_err(|e| SamlError::Store(e.to_string()))?;
        Ok(code)
    }

    /// The verified login under `code`, if `browser` is the one that started it.
    pub async fn complete(&self, code: &str, browser: Option<&str>) -> Result<Verified, SamlError> {
        let verified = self
            .pending
            .collect(code)
            .await
            .map_err(|e| SamlError::Store(e.to_string()))?
            .ok_or(SamlError::NoPendingLogin)?;
        if !crate::auth::csrf::matches(&verified.browser, browser) {
            return Err(SamlError::OtherBrowser);
        }
        Ok(verified)
    }

    /// Where the browser goes after the local logout: the IdP's single logout with a
    /// LogoutRequest (`logout-method: saml`), else `logout-url`.
    pub async fn logout_redirect(&self, subject: Option<&SamlSubject>) -> Option<String> {
        if self.cfg.logout_method == SamlLogoutMethod::Saml
            && let Some(subject) = subject
        {
            match self.logout_request(subject).await {
                Ok(url) => return Some(url),
                Err(e) => {
                    tracing::warn!(reason = %e.detail(), "no single logout at the SAML IdP")
                }
            }
        }
        self.cfg.logout_url.clone()
    }

    /// Where to go once the IdP's single logout came back.
    pub fn logout_url(&self) -> Option<String> {
        self.cfg.logout_url.clone()
    }

    async fn logout_request(&self, subject: &SamlSubject) -> Result<String, SamlError> {
        let idp = self.idp.get().await?;
        let sp = self.service_provider(&idp)?;
        let slo = sp
            .slo_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| {
                SamlError::Config(
                    "the IdP's metadata has no SingleLogoutService with the HTTP-Redirect binding"
                        .into(),
                )
            })?;
        let xml = subject::logout_request_xml(
            &format!("id-{}", random_token()),
            &self.cfg.entity_id,
            &slo,
            subject,
        );
        let mut deflated = Vec::new();
        {
            use std::io::Write;
            let mut encoder =
                flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
            encoder
                .write_all(xml.as_bytes())
                .map_err(|e| SamlError::Config(format!("the LogoutRequest: {e}")))?;
        }
        let mut url: url::Url = slo
            .parse()
            .map_err(|e| SamlError::Config(format!("the IdP's logout URL '{slo}': {e}")))?;
        url.query_pairs_mut().append_pair(
            "SAMLRequest",
            &base64::engine::general_purpose::STANDARD.encode(&deflated),
        );
        let url = match &self.key {
            // IdPs that know the SP's certificate expect their logout requests signed.
            Some(key) => samael::crypto::sign_url(url, key)
                .map_err(|e| SamlError::Config(format!("signing the LogoutRequest: {e}")))?,
            None => url,
        };
        Ok(url.to_string())
    }
}

/// `xml` with the root's `ID` and an enveloped-signature template for it as the root's first
/// child, where the metadata schema puts it (samael serializes neither for an
/// EntityDescriptor).
fn with_signature_template(
    xml: &str,
    id: &str,
    cert: &CertificateDer,
) -> Result<String, SamlError> {
    use samael::traits::ToXml;
    let template = samael::signature::Signature::template(id, cert)
        .to_string()
        .map_err(|e| SamlError::Config(format!("the metadata signature: {e}")))?;
    let template = template
        .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        .unwrap_or(&template)
        // samael's template digests with SHA-1.
        .replace(
            "http://www.w3.org/2000/09/xmldsig#sha1",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        );
    let end_of_root_tag = xml
        .find("EntityDescriptor")
        .and_then(|start| xml[start..].find('>').map(|end| start + end))
        .ok_or_else(|| SamlError::Config("the SP metadata has no EntityDescriptor".into()))?;
    Ok(format!(
        "{} ID=\"{id}\">{template}{}",
        &xml[..end_of_root_tag],
        &xml[end_of_root_tag + 1..]
    ))
}

fn to_xml(entity: &EntityDescriptor) -> Result<String, SamlError> {
    use samael::traits::ToXml;
    entity
        .to_string()
        .map_err(|e| SamlError::Config(format!("the SP metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SamlConfig, SamlCredentials, SamlLogoutMethod, SamlMetadataSource};

    fn credentials() -> SamlCredentials {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
        let mut name = x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "sp").expect("cn");
        let name = name.build();
        let mut cert = x509::X509Builder::new().expect("cert");
        cert.set_subject_name(&name).expect("subject");
        cert.set_issuer_name(&name).expect("issuer");
        cert.set_pubkey(&key).expect("pubkey");
        cert.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        cert.set_not_after(&Asn1Time::days_from_now(2).expect("t"))
            .expect("na");
        cert.sign(&key, MessageDigest::sha256()).expect("sign");
        SamlCredentials {
            certificate_der: cert.build().to_der().expect("der"),
            key_der: key.private_key_to_pkcs8().expect("pkcs8"),
        }
    }

    fn login(credentials: Option<SamlCredentials>) -> SamlLogin {
        SamlLogin::new(
            SamlConfig {
                // Never fetched by these tests.
                idp_metadata: SamlMetadataSource::Url("http://127.0.0.1:9/md".into()),
                entity_id: "urn:sp".into(),
                base_url: "https://apps.example.org".into(),
                name_attribute: crate::config::SAML_NAME_ID.into(),
                roles_attribute: None,
                credentials,
                force_authn: false,
                logout_url: None,
                logout_method: SamlLogoutMethod::Local,
                log_attributes: false,
                max_authentication_age: Duration::from_secs(7200),
            },
            Arc::new(crate::store::MemoryStore::default()),
        )
        .expect("login")
    }

    #[tokio::test]
    async fn the_metadata_is_signed_when_there_is_a_key_and_never_needs_the_idp() {
        let plain = login(None).metadata_xml().await.expect("metadata");
        assert!(
            plain.contains("Location=\"https://apps.example.org/saml/SSO\""),
            "{plain}"
        );
        assert!(!plain.contains("SignatureValue"), "{plain}");
        let signed = login(Some(credentials()))
            .metadata_xml()
            .await
            .expect("signed metadata");
        assert!(signed.contains("SignatureValue"), "{signed}");
        assert!(signed.contains("use=\"encryption\""), "{signed}");
    }
}
