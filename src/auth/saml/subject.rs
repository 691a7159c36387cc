//! Who an accepted assertion names: the user (NameID or `name-attribute`), the groups
//! (`roles-attribute`, every value of every matching attribute), and what single logout needs.

use samael::schema::Assertion;

use super::SamlError;
use crate::auth::session::SamlSubject;
use crate::config::{SAML_NAME_ID, SamlConfig};

pub struct Found {
    pub user: String,
    pub groups: Vec<String>,
    pub subject: SamlSubject,
}

pub fn identity(assertion: &Assertion, cfg: &SamlConfig) -> Result<Found, SamlError> {
    let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref());
    let user = if cfg.name_attribute.eq_ignore_ascii_case(SAML_NAME_ID) {
        name_id.map(|n| n.value.trim().to_string())
    } else {
        values(assertion, &cfg.name_attribute).into_iter().next()
    }
    .filter(|u| !u.is_empty())
    .ok_or_else(|| {
        SamlError::Malformed(format!(
            "the assertion has no '{}' attribute to name the user (proxy.saml.name-attribute)",
            cfg.name_attribute
        ))
    })?;
    let groups = match &cfg.roles_attribute {
        Some(attr) => {
            let found = values(assertion, attr);
            if found.is_empty() {
                tracing::warn!(%user, attribute = %attr, "the SAML assertion has no roles attribute");
            }
            found
        }
        None => Vec::new(),
    };
    let session_index = assertion
        .authn_statements
        .iter()
        .flatten()
        .find_map(|s| s.session_index.clone());
    Ok(Found {
        subject: SamlSubject {
            name_id: name_id
                .map(|n| n.value.clone())
                .unwrap_or_else(|| user.clone()),
            name_id_format: name_id.and_then(|n| n.format.clone()),
            session_index,
        },
        user,
        groups,
    })
}

/// Every value of the attributes called `name` (by Name or FriendlyName, ignoring case, as
/// ShinyProxy does).
fn values(assertion: &Assertion, name: &str) -> Vec<String> {
    assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
        .filter(|a| {
            [&a.name, &a.friendly_name]
                .iter()
                .any(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        })
        .flat_map(|a| &a.values)
        .filter_map(|v| v.value.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

/// Every attribute's name and values, for `log-attributes`.
pub fn attributes(assertion: &Assertion) -> Vec<(String, Vec<String>)> {
    assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
        .map(|a| {
            (
                a.name.clone().unwrap_or_default(),
                a.values.iter().filter_map(|v| v.value.clone()).collect(),
            )
        })
        .collect()
}

/// Until when the assertion may be used: its bearer confirmation's NotOnOrAfter, else its
/// conditions'.
pub fn valid_until(assertion: &Assertion) -> Option<chrono::DateTime<chrono::Utc>> {
    let confirmation = assertion
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.subject_confirmation_data.as_ref())
        .filter_map(|d| d.not_on_or_after)
        .max();
    confirmation.or_else(|| {
        assertion
            .conditions
            .as_ref()
            .and_then(|c| c.not_on_or_after)
    })
}

/// A LogoutRequest (SAML core 3.7.1) for the Redirect binding. Written here because samael
/// puts SessionIndex before NameID, which the schema forbids.
pub fn logout_request_xml(id: &str, issuer: &str, destination: &str, s: &SamlSubject) -> String {
    let format = s
        .name_id_format
        .as_deref()
        .map(|f| format!(" Format=\"{}\"", escape(f)))
        .unwrap_or_default();
    let index = s
        .session_index
        .as_deref()
        .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(i)))
        .unwrap_or_default();
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{now}\" Destination=\"{dest}\"><saml:Issuer>{issuer}</saml:Issuer>\
         <saml:NameID{format}>{name}</saml:NameID>{index}</samlp:LogoutRequest>",
        id = escape(id),
        now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dest = escape(destination),
        issuer = escape(issuer),
        name = escape(&s.name_id),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_request_escapes_what_the_idp_named() {
        let xml = logout_request_xml(
            "id-1",
            "https://sp",
            "https://idp/slo",
            &SamlSubject {
                name_id: "a<b>&\"c".into(),
                name_id_format: None,
                session_index: Some("s1".into()),
            },
        );
        assert!(xml.contains("<saml:NameID>a&lt;b&gt;&amp;&quot;c</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex>"), "{xml}");
    }
}
