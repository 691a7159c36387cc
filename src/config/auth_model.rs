//! The checked settings of the login methods beyond `simple`: LDAP / Active Directory, trusted
//! headers and web-service login.

use ipnet::IpNet;

use super::model::Secret;

/// One directory server of `proxy.ldap` (ShinyProxy allows a list; they are tried in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapServer {
    /// `ldap://host:port` or `ldaps://host:port`, without the base DN.
    pub url: String,
    /// The base DN written after the host in `url` (Spring's convention); every other DN but
    /// `manager-dn` is relative to it.
    pub base_dn: String,
    pub starttls: bool,
    /// `uid={0},ou=people`: the user's DN, relative to the base, `{0}` the user name.
    pub user_dn_pattern: Option<String>,
    pub user_search_base: String,
    /// `(uid={0})`: finds the user's entry when there is no DN pattern.
    pub user_search_filter: Option<String>,
    pub group_search_base: String,
    /// `{0}` is the user's full DN, `{1}` the user name.
    pub group_search_filter: String,
    pub manager_dn: Option<String>,
    pub manager_password: Option<Secret>,
    /// vestibule's own `ca-cert`: PEM certificates trusted for ldaps:// and StartTLS besides
    /// the system's (directories often have a private CA). Checked when the config is loaded.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl LdapServer {
    /// `relative,base` as a full DN (either may be empty).
    pub fn full_dn(&self, relative: &str) -> String {
        match (relative.trim(), self.base_dn.trim()) {
            ("", base) => base.to_string(),
            (rel, "") => rel.to_string(),
            (rel, base) => format!("{rel},{base}"),
        }
    }
}

/// `authentication: customHeader`: a proxy in front has logged the user in and says who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHeaderConfig {
    pub username_header: String,
    pub groups_header: Option<String>,
    /// Only requests from these networks may assert an identity (vestibule's own key).
    pub trusted_networks: Vec<IpNet>,
}

impl Default for CustomHeaderConfig {
    fn default() -> Self {
        Self {
            username_header: "REMOTE_USER".into(),
            groups_header: None,
            trusted_networks: default_trusted_networks(),
        }
    }
}

pub fn default_trusted_networks() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `authentication: webservice`: a URL that answers 2xx for a right user name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebserviceConfig {
    pub url: String,
    /// The body posted, with `%s` for the user name and then the password (ShinyProxy's
    /// `String.format`).
    pub body_template: String,
}

/// `authentication: saml`: vestibule is a SAML 2.0 service provider (SP) of one identity
/// provider (IdP), with ShinyProxy's `proxy.saml.*` keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlConfig {
    /// Where the IdP's metadata is: an http(s) URL, fetched at the first login (never when the
    /// config is checked), or a local file.
    pub idp_metadata: SamlMetadataSource,
    /// This service's entity id: the audience every assertion must name.
    pub entity_id: String,
    /// The public URL of this service, without a trailing slash: the ACS is
    /// `<app-base-url>/saml/SSO`, and assertions must name it as their recipient.
    pub base_url: String,
    /// The attribute that names the user; [`SAML_NAME_ID`] means the NameID.
    pub name_attribute: String,
    /// The attribute whose values (one or many) are the user's groups.
    pub roles_attribute: Option<String>,
    /// The SP's key and certificate: decrypts encrypted assertions and signs the metadata.
    pub credentials: Option<SamlCredentials>,
    pub force_authn: bool,
    /// Where the browser goes once logged out (ShinyProxy's `logout-url`).
    pub logout_url: Option<String>,
    pub logout_method: SamlLogoutMethod,
    /// Log the assertion's attribute names and values at each login (for setting up the
    /// attribute keys; off by default, as they are personal data).
    pub log_attributes: bool,
    /// How long ago the user may have authenticated at the IdP.
    pub max_authentication_age: std::time::Duration,
}

/// ShinyProxy's value of `name-attribute` that takes the user name from the NameID.
pub const SAML_NAME_ID: &str = "https://shinyproxy.io/nameid";
/// ShinyProxy's default `name-attribute`: the e-mail claim of ADFS and Entra ID.
pub const SAML_DEFAULT_NAME_ATTRIBUTE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamlMetadataSource {
    Url(String),
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlLogoutMethod {
    /// Ends the session here only.
    Local,
    /// Also sends a LogoutRequest to the IdP (SP-initiated single logout).
    Saml,
}

/// The SP's certificate and private key, read when the config is checked.
#[derive(Clone, PartialEq, Eq)]
pub struct SamlCredentials {
    pub certificate_der: Vec<u8>,
    /// PKCS#8, DER.
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for SamlCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SamlCredentials(<redacted>)")
    }
}
