//! `proxy.ldap`: one directory server, or a list of them tried in order (ShinyProxy's shape).
//!
//! Spring's conventions are kept so ShinyProxy files mean the same here: the base DN is written
//! after the host in `url`, and the user, user-search and group-search DNs are relative to it,
//! while `manager-dn` is a full DN. Several URLs separated by spaces in one `url` are several
//! servers with the same settings.

use super::auth_model::LdapServer;
use super::convert::{self, Fields};
use super::model::AuthMethod;
use super::model::Secret;
use super::node::{At, Node, Origin, Value};
use super::report::{Report, index};

const DEFAULT_GROUP_FILTER: &str = "(uniqueMember={0})";

pub fn check_ldap(proxy: &Fields, auth: AuthMethod, report: &mut Report) -> Vec<LdapServer> {
    let Some((node, path)) = proxy.get("ldap") else {
        if auth == AuthMethod::Ldap {
            let at = proxy
                .get("authentication")
                .map(|(n, _)| n.at.clone())
                .unwrap_or_else(|| At::file(0, 0));
            report.error(
                &at,
                "proxy.ldap",
                "authentication: ldap needs a proxy.ldap section with at least a url",
            );
        }
        return Vec::new();
    };
    let items: Vec<(&Node, String)> = match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n, index(&path, i)))
            .collect(),
        _ => vec![(node, path.clone())],
    };
    let mut servers = Vec::new();
    for (item, item_path) in items {
        servers.extend(check_server(item, &item_path, report));
    }
    if auth == AuthMethod::Ldap && servers.is_empty() && !report.has_errors() {
        report.error(&node.at, &path, "no LDAP server is configured");
    }
    servers
}

fn check_server(node: &Node, path: &str, report: &mut Report) -> Vec<LdapServer> {
    let f = Fields::of(Some(node), path, report);
    if !matches!(node.value, Value::Map(_)) {
        return Vec::new();
    }
    let Some((url_node, url_path)) = f.get("url") else {
        report.error(
            &node.at,
            path,
            "this LDAP server has no url (e.g. ldap://ldap.example.org:389/dc=example,dc=org)",
        );
        return Vec::new();
    };
    let urls = convert::text(url_node, &url_path, report).unwrap_or_default();
    let starttls = starttls(&f, report);

    let user_dn_pattern = f.text("user-dn-pattern", report);
    let user_search_filter = filter(&f, "user-search-filter", report);
    if user_dn_pattern.is_none() && user_search_filter.is_none() {
        report.error(
            &node.at,
            path,
            "set user-dn-pattern (e.g. uid={0},ou=people) or user-search-filter (e.g. \
             (uid={0})), or vestibule cannot find the user in the directory",
        );
    }
    let manager_dn = f.text("manager-dn", report);
    let manager_password = manager_password(&f, report);
    if manager_dn.is_some() && manager_password.is_none() {
        report.error(
            &node.at,
            path,
            "manager-dn is set without manager-password (write manager-password: ${LDAP_PASSWORD} \
             to take it from the environment)",
        );
    }
    let template = LdapServer {
        url: String::new(),
        base_dn: String::new(),
        starttls,
        user_dn_pattern,
        user_search_base: f.text("user-search-base", report).unwrap_or_default(),
        user_search_filter,
        group_search_base: f.text("group-search-base", report).unwrap_or_default(),
        group_search_filter: filter(&f, "group-search-filter", report)
            .unwrap_or_else(|| DEFAULT_GROUP_FILTER.into()),
        manager_dn,
        manager_password,
        ca_certs: ca_certs(&f, report),
    };

    let mut servers = Vec::new();
    for written in urls.split_whitespace() {
        match split_url(written) {
            Ok((url, base_dn)) => {
                if starttls && url.starts_with("ldaps:") {
                    report.error(
                        &url_node.at,
                        &url_path,
                        "starttls upgrades a plain ldap:// connection; an ldaps:// URL is \
                         already encrypted (drop starttls or use ldap://)",
                    );
                }
                servers.push(LdapServer {
                    url,
                    base_dn,
                    ..template.clone()
                });
            }
            Err(why) => report.error(&url_node.at, &url_path, why),
        }
    }
    if urls.trim().is_empty() {
        report.error(&url_node.at, &url_path, "the url is empty");
    }
    servers
}

/// `starttls`: ShinyProxy takes `true` or `simple` for StartTLS followed by a simple bind, and
/// `external` for StartTLS with the client certificate as the credential (SASL EXTERNAL).
fn starttls(f: &Fields, report: &mut Report) -> bool {
    let Some((node, path)) = f.get("starttls") else {
        return false;
    };
    let Some(text) = node.scalar_text() else {
        return convert::boolean(node, &path, report).unwrap_or(false);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "simple" => true,
        // Falling back to a password bind, or to no TLS, would log users in some other way
        // than the file says; refusing is the honest answer until client certificates exist.
        "external" => {
            report.error(
                &node.at,
                &path,
                "starttls: external (StartTLS with a client certificate, SASL EXTERNAL) is not \
                 implemented in vestibule yet; use starttls: simple with manager-dn and \
                 manager-password, or an ldaps:// URL",
            );
            false
        }
        _ if convert::boolean_text(&text).is_some() => {
            convert::boolean(node, &path, report).unwrap_or(false)
        }
        _ => {
            report.error(
                &node.at,
                &path,
                format!(
                    "expected simple, external, true or false, found {}",
                    node.describe()
                ),
            );
            false
        }
    }
}

/// A filter with `{0}` placeholders, checked for LDAP syntax once the placeholder is filled.
fn filter(f: &Fields, name: &str, report: &mut Report) -> Option<String> {
    let (node, path) = f.get(name)?;
    let text = convert::text(node, &path, report)?;
    let trial = text.replace("{0}", "x").replace("{1}", "x");
    if ldap3::parse_filter(&trial).is_err() {
        report.error(
            &node.at,
            &path,
            "this is not a valid LDAP filter; a filter is written in parentheses, e.g. \
             (uid={0}) or (&(objectClass=person)(sAMAccountName={0}))",
        );
        return None;
    }
    Some(text)
}

fn manager_password(f: &Fields, report: &mut Report) -> Option<Secret> {
    let (node, path) = f.get("manager-password")?;
    let pw = convert::text(node, &path, report)?;
    if node.at.origin == Origin::File {
        report.warn(
            &node.at,
            &path,
            "the manager password is written in the file; take it from the environment \
             instead (manager-password: ${LDAP_MANAGER_PASSWORD})",
        );
    }
    Some(Secret(pw))
}

/// `ca-cert`: a PEM file with one or more certificates.
fn ca_certs(f: &Fields, report: &mut Report) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let Some((node, path)) = f.get("ca-cert") else {
        return Vec::new();
    };
    let Some(file) = convert::text(node, &path, report) else {
        return Vec::new();
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(&file).and_then(Iterator::collect);
    match certs {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            report.error(&node.at, &path, format!("{file} holds no PEM certificate"));
            Vec::new()
        }
        Err(e) => {
            report.error(
                &node.at,
                &path,
                format!("cannot read certificates from {file}: {e}"),
            );
            Vec::new()
        }
    }
}

/// `ldap://host:389/dc=example,dc=org` → (`ldap://host:389`, `dc=example,dc=org`).
fn split_url(written: &str) -> Result<(String, String), String> {
    let Some((scheme, rest)) = written.split_once("://") else {
        return Err(format!(
            "'{written}' is not an LDAP URL; write ldap://host:389/dc=example,dc=org or \
             ldaps://host:636/..."
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "ldap" && scheme != "ldaps" {
        return Err(format!(
            "the URL scheme '{scheme}' is not supported; use ldap:// or ldaps://"
        ));
    }
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(format!("'{written}' names no host"));
    }
    let base = urlencoding::decode(base)
        .map_err(|_| format!("the base DN in '{written}' is not valid UTF-8"))?;
    Ok((format!("{scheme}://{authority}"), base.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dn_comes_from_the_url() {
        assert_eq!(
            split_url("ldap://h:389/dc=example,dc=org").unwrap(),
            ("ldap://h:389".into(), "dc=example,dc=org".into())
        );
        assert_eq!(
            split_url("LDAPS://h/ou=a%20b,dc=x").unwrap(),
            ("ldaps://h".into(), "ou=a b,dc=x".into())
        );
        assert_eq!(split_url("ldap://h").unwrap().1, "");
        assert!(split_url("http://h/").is_err());
        assert!(split_url("h:389").is_err());
    }
}
