//! `authentication: ldap`: checks the password by binding to the directory as the user, and
//! reads the user's groups with the group search (ShinyProxy's `proxy.ldap.*`).
//!
//! Servers are tried in order. The first that accepts the password wins. A server that cannot
//! be asked is logged by URL and skipped; if none accepted the password and any could not be
//! asked, the user is told the directory is unavailable rather than that the password is
//! wrong, because it may not be.

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};
use std::sync::Arc;
use std::time::Duration;

use super::{AuthError, Authenticator, Identity};
use crate::config::{Config, LdapServer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For a whole login against one server: connect, searches and binds.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// LDAP result codes that mean "this user cannot log in with this password".
const INVALID_CREDENTIALS: u32 = 49;
const NO_SUCH_OBJECT: u32 = 32;
const INVALID_DN_SYNTAX: u32 = 34;
const UNWILLING_TO_PERFORM: u32 = 53;
const REFERRAL: u32 = 10;

pub struct LdapAuthenticator {
    config: Arc<Config>,
    /// Per server, in the order of `proxy.ldap`: its TLS settings when it has a `ca-cert`.
    tls: Vec<Option<Arc<rustls::ClientConfig>>>,
}

impl LdapAuthenticator {
    pub fn new(config: Arc<Config>) -> anyhow::Result<Self> {
        let tls = config
            .proxy
            .ldap
            .iter()
            .map(|s| tls_config(s).map_err(|e| anyhow::anyhow!("LDAP server {}: {e}", s.url)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { config, tls })
    }
}

/// For ldaps:// and StartTLS: the system's trusted certificates plus the server's `ca-cert`.
/// Built here with the ring provider rather than left to ldap3, whose default asks rustls for a
/// process-wide provider and panics when more than one is compiled in.
fn tls_config(server: &LdapServer) -> Result<Option<Arc<rustls::ClientConfig>>, rustls::Error> {
    if !server.starttls && !server.url.starts_with("ldaps:") {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in &server.ca_certs {
        roots.add(cert.clone())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// Why one server did not log the user in.
#[derive(Debug)]
enum Refusal {
    BadCredentials,
    Unavailable(String),
}

fn failed(what: &str) -> impl Fn(ldap3::LdapError) -> Refusal + '_ {
    move |e| Refusal::Unavailable(format!("{what}: {e}"))
}

#[async_trait]
impl Authenticator for LdapAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        // An empty password makes a simple bind "unauthenticated", which directories accept
        // as anonymous: it must never count as a login.
        if user.is_empty() || password.is_empty() {
            return Err(AuthError::BadCredentials);
        }
        let mut unavailable = Vec::new();
        for (i, server) in self.config.proxy.ldap.iter().enumerate() {
            let tls = self.tls.get(i).cloned().flatten();
            let attempt = tokio::time::timeout(SERVER_TIMEOUT, login(server, tls, user, password));
            let outcome = attempt.await.unwrap_or_else(|_| {
                Err(Refusal::Unavailable(format!(
                    "no answer within {} s",
                    SERVER_TIMEOUT.as_secs()
                )))
            });
            match outcome {
                Ok(groups) => {
                    return Ok(Identity {
                        is_admin: self.config.proxy.is_admin(user, &groups),
                        user: user.to_string(),
                        groups,
                    });
                }
                Err(Refusal::BadCredentials) => {}
                Err(Refusal::Unavailable(why)) => {
                    tracing::warn!(event = "ldap_unavailable", server = %server.url, error = %why, "LDAP server failed");
                    unavailable.push(server.url.clone());
                }
            }
        }
        if unavailable.is_empty() {
            Err(AuthError::BadCredentials)
        } else {
            Err(AuthError::Unavailable(format!(
                "directory unavailable: {}",
                unavailable.join(", ")
            )))
        }
    }
}

/// Logs `user` in at one server; returns their groups.
async fn login(
    server: &LdapServer,
    tls: Option<Arc<rustls::ClientConfig>>,
    user: &str,
    password: &str,
) -> Result<Vec<String>, Refusal> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(server.starttls);
    if let Some(tls) = tls {
        settings = settings.set_config(tls);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &server.url)
        .await
        .map_err(failed("cannot connect"))?;
    let url = server.url.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(server = %url, error = %e, "LDAP connection closed with an error");
        }
    });
    let result = login_on(&mut ldap, server, user, password).await;
    let _ = ldap.unbind().await;
    result
}

async fn login_on(
    ldap: &mut Ldap,
    server: &LdapServer,
    user: &str,
    password: &str,
) -> Result<Vec<String>, Refusal> {
    let dn = match &server.user_dn_pattern {
        Some(pattern) => server.full_dn(&fill(pattern, &[&dn_escape(user)])),
        None => find_user(ldap, server, user).await?,
    };
    let bound = ldap
        .simple_bind(&dn, password)
        .await
        .map_err(failed("user bind"))?;
    match bound.rc {
        0 => {}
        INVALID_CREDENTIALS | NO_SUCH_OBJECT | INVALID_DN_SYNTAX | UNWILLING_TO_PERFORM => {
            return Err(Refusal::BadCredentials);
        }
        _ => return Err(Refusal::Unavailable(format!("user bind: {bound}"))),
    }
    // Groups are read with the manager's rights where there is a manager (as Spring does),
    // otherwise with the user's own.
    bind_manager(ldap, server).await?;
    groups(ldap, server, user, &dn).await
}

async fn bind_manager(ldap: &mut Ldap, server: &LdapServer) -> Result<(), Refusal> {
    let (Some(dn), Some(pw)) = (&server.manager_dn, &server.manager_password) else {
        return Ok(());
    };
    let res = ldap
        .simple_bind(dn, &pw.0)
        .await
        .map_err(failed("manager bind"))?;
    if res.rc != 0 {
        return Err(Refusal::Unavailable(format!(
            "the directory refused manager-dn {dn}: {res}"
        )));
    }
    Ok(())
}

/// The DN of the one entry `user-search-filter` finds for `user`.
async fn find_user(ldap: &mut Ldap, server: &LdapServer, user: &str) -> Result<String, Refusal> {
    bind_manager(ldap, server).await?;
    let template = server.user_search_filter.as_deref().unwrap_or("(uid={0})");
    let filter = fill(template, &[&ldap_escape(user)]);
    let base = server.full_dn(&server.user_search_base);
    let found = search(ldap, &base, &filter, vec!["1.1"], "user search").await?;
    match found.as_slice() {
        [one] => Ok(one.dn.clone()),
        [] => Err(Refusal::BadCredentials),
        many => {
            tracing::warn!(server = %server.url, user, entries = many.len(), "the user search found several entries; refusing the login");
            Err(Refusal::BadCredentials)
        }
    }
}

async fn groups(
    ldap: &mut Ldap,
    server: &LdapServer,
    user: &str,
    dn: &str,
) -> Result<Vec<String>, Refusal> {
    let filter = fill(
        &server.group_search_filter,
        &[&ldap_escape(dn), &ldap_escape(user)],
    );
    let base = server.full_dn(&server.group_search_base);
    let found = search(ldap, &base, &filter, vec!["cn"], "group search").await?;
    let mut names: Vec<String> = found
        .into_iter()
        .filter_map(|e| e.attrs.get("cn").and_then(|v| v.first().cloned()))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

async fn search(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: Vec<&str>,
    what: &str,
) -> Result<Vec<SearchEntry>, Refusal> {
    let ldap3::SearchResult(entries, res) = ldap
        .search(base, Scope::Subtree, filter, attrs)
        .await
        .map_err(failed(what))?;
    // Active Directory answers a search from the domain root with referrals to its other
    // partitions; the entries found are still good.
    if res.rc != 0 && res.rc != REFERRAL {
        return Err(Refusal::Unavailable(format!(
            "{what} under '{base}': {res}"
        )));
    }
    Ok(entries
        .into_iter()
        .filter(|e| !e.is_ref())
        .map(SearchEntry::construct)
        .collect())
}

/// Replaces `{0}`, `{1}`, … in one pass, so a value that itself contains `{1}` stays as it is.
fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let slot = after
            .find('}')
            .and_then(|end| after[..end].parse::<usize>().ok().map(|i| (i, end)));
        match slot.and_then(|(i, end)| values.get(i).map(|v| (v, end))) {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(fill("(uid={0})", &["a"]), "(uid=a)");
        assert_eq!(
            fill("(|(member={0})(memberUid={1}))", &["cn=x{1}", "x"]),
            "(|(member=cn=x{1})(memberUid=x))"
        );
        assert_eq!(fill("{2}{x}{", &["a"]), "{2}{x}{");
    }

    #[test]
    fn user_names_cannot_change_a_filter_or_dn() {
        let user = "*)(uid=*";
        assert_eq!(
            fill("(uid={0})", &[&ldap_escape(user)]),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            fill("uid={0},ou=people", &[&dn_escape("x,ou=admins")]),
            "uid=x\\2cou\\3dadmins,ou=people"
        );
    }
}
