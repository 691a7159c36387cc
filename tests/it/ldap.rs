//! LDAP login against a real OpenLDAP server (Debian's slapd), through the real login form.

use crate::common::{log_capture, slapd};

use crate::common::*;
use slapd::{ADMIN_DN, ADMIN_PASSWORD, BASE_DN, Slapd, free_port};
use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{AuthMethod, Config, LdapServer, load_str};

/// Three apps: `sales` for analysts, `finance` for the finance group, `open` for everyone.
fn apps_yaml() -> String {
    let echo = repo_path("tests/apps/echo/app.py");
    let app = |id: &str, groups: &str| {
        format!(
            "    - id: {id}\n      display-name: {id}-tile\n      container-cmd: [python3, \"{}\"]\n{groups}",
            echo.display()
        )
    };
    format!(
        "{}\n{}\n{}",
        app("sales", "      access-groups: analysts\n"),
        app("finance", "      access-groups: finance\n"),
        app("open", "")
    )
}

/// The file a ShinyProxy user would write: a user search by a manager whose password comes
/// from the environment, and the default group filter.
fn search_config(ldap: &Slapd) -> Config {
    let yaml = format!(
        "proxy:
  authentication: ldap
  container-backend: process
  admin-groups: admins
  ldap:
    url: {url}
    user-search-base: ou=people
    user-search-filter: (uid={{0}})
    group-search-base: ou=groups
    manager-dn: {ADMIN_DN}
    manager-password: ${{LDAP_MANAGER_PASSWORD}}
  specs:
{apps}",
        url = ldap.url(),
        apps = apps_yaml()
    );
    let env = HashMap::from([(
        "LDAP_MANAGER_PASSWORD".to_string(),
        ADMIN_PASSWORD.to_string(),
    )]);
    let loaded = load_str(Path::new("application.yml"), &yaml, &env).expect("config loads");
    assert_eq!(loaded.config.proxy.authentication, AuthMethod::Ldap);
    loaded.config
}

fn dn_pattern_server(url: String) -> LdapServer {
    let (url, base) = url.rsplit_once('/').expect("url with base");
    LdapServer {
        url: url.to_string(),
        base_dn: base.to_string(),
        starttls: false,
        user_dn_pattern: Some("uid={0},ou=people".into()),
        user_search_base: String::new(),
        user_search_filter: None,
        group_search_base: "ou=groups".into(),
        group_search_filter: "(uniqueMember={0})".into(),
        manager_dn: None,
        manager_password: None,
        ca_certs: Vec::new(),
    }
}

fn pattern_config(servers: Vec<LdapServer>) -> Config {
    let mut cfg = analysts_config();
    cfg.proxy.ldap = servers;
    cfg
}

fn analysts_config() -> Config {
    let mut cfg = config(vec![echo_spec("sales"), echo_spec("open")]);
    cfg.proxy.authentication = AuthMethod::Ldap;
    cfg.proxy.users.clear();
    cfg.proxy.specs[0].access_groups = vec!["analysts".into()];
    cfg
}

async fn portal(b: &Browser) -> String {
    let resp = b.get("/").await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("portal")
}

#[tokio::test]
async fn directory_users_see_only_the_apps_their_groups_allow() {
    let ldap = Slapd::shared();
    let server = TestServer::start(search_config(ldap)).await;

    let alice = Browser::new(&server);
    assert_eq!(alice.try_login("alice", "alice-pw").await.status(), 303);
    let page = portal(&alice).await;
    assert!(
        page.contains("sales-tile") && page.contains("open-tile"),
        "{page}"
    );
    assert!(
        !page.contains("finance-tile"),
        "alice is not in finance: {page}"
    );
    assert_eq!(alice.get("/admin").await.status(), 403, "alice is no admin");

    // bob is in the admins group of the directory, so admin-groups makes him an admin.
    let bob = Browser::new(&server);
    assert_eq!(bob.try_login("bob", "bob-pw").await.status(), 303);
    assert_eq!(bob.get("/admin").await.status(), 200);

    // carol is in no group: only the app open to everyone.
    let carol = Browser::new(&server);
    assert_eq!(carol.try_login("carol", "carol-pw").await.status(), 303);
    let page = portal(&carol).await;
    assert!(
        page.contains("open-tile") && !page.contains("sales-tile"),
        "{page}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_passwords_injections_and_empty_passwords_are_refused() {
    let ldap = Slapd::shared();
    let server = TestServer::start(search_config(ldap)).await;
    let b = Browser::new(&server);

    let wrong = b.try_login("alice", "bob-pw").await;
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.expect("html");
    assert!(page.contains("Wrong user name or password"), "{page}");

    // Unescaped, this filter would match every user and log in as the first one found.
    for user in ["*)(uid=*", "*", "alice)(|(uid=*"] {
        let resp = b.try_login(user, "alice-pw").await;
        assert_eq!(resp.status(), 401, "{user}");
    }
    // An empty password is an anonymous bind, which the directory accepts.
    assert_eq!(b.try_login("bob", "").await.status(), 401);
    assert_eq!(b.try_login("nobody", "x").await.status(), 401);
    assert_eq!(b.get("/").await.status(), 303, "still logged out");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stopped_directory_is_reported_as_unavailable_not_as_a_wrong_password() {
    let logs = log_capture::capture_logs();
    let mut ldap = Slapd::start();
    let server = TestServer::start(search_config(&ldap)).await;
    ldap.stop();
    let b = Browser::new(&server);
    let resp = b.try_login("alice", "unique-pw-4711").await;
    assert_eq!(resp.status(), 503);
    let page = resp.text().await.expect("html");
    assert!(page.contains("unavailable"), "{page}");
    assert!(!page.contains("Wrong user name or password"), "{page}");
    // The operator reads which server failed, and never the password.
    let log = logs.text();
    let named = format!("server=ldap://127.0.0.1:{}", ldap.port);
    assert!(
        log.lines()
            .any(|l| l.contains("LDAP server failed") && l.contains(&named)),
        "{log}"
    );
    assert!(!log.contains("unique-pw-4711"), "{log}");
    assert!(!log.contains(ADMIN_PASSWORD), "{log}");
    server.shutdown().await;
}

#[tokio::test]
async fn servers_are_tried_in_order_past_one_that_is_down() {
    let ldap = Slapd::shared();
    let down = format!("ldap://127.0.0.1:{}/dc=example,dc=org", free_port());
    let cfg = pattern_config(vec![dn_pattern_server(down), dn_pattern_server(ldap.url())]);
    let server = TestServer::start(cfg).await;

    let alice = Browser::new(&server);
    assert_eq!(alice.try_login("alice", "alice-pw").await.status(), 303);
    let page = portal(&alice).await;
    assert!(
        page.contains("App sales"),
        "groups read without a manager: {page}"
    );
    server.shutdown().await;
}

/// erin, with the same password in two directories: an analyst in the first, an admin in the
/// second; dave only in the second.
fn erin_and_dave(first: &Slapd, second: &Slapd) {
    let person = |uid: &str, password: &str| {
        format!(
            "dn: uid={uid},ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: X\nuserPassword: {password}\n"
        )
    };
    let join = |group: &str, uid: &str| {
        format!(
            "dn: cn={group},ou=groups,{BASE_DN}\nchangetype: modify\nadd: uniqueMember\nuniqueMember: uid={uid},ou=people,{BASE_DN}\n"
        )
    };
    first.ldapadd(&format!(
        "{}\n{}",
        person("erin", "erin-pw"),
        join("analysts", "erin")
    ));
    second.ldapadd(&format!(
        "{}\n{}\n{}",
        person("erin", "erin-pw"),
        join("admins", "erin"),
        person("dave", "dave-pw")
    ));
}

/// Both servers answer: the first one that accepts the password decides the groups, and a
/// password the first refuses is still tried at the second.
#[tokio::test]
async fn the_first_server_that_accepts_the_password_decides_the_groups() {
    let (first, second) = (Slapd::start(), Slapd::start());
    erin_and_dave(&first, &second);
    let cfg = pattern_config(vec![
        dn_pattern_server(first.url()),
        dn_pattern_server(second.url()),
    ]);
    let server = TestServer::start(cfg).await;

    let erin = Browser::new(&server);
    assert_eq!(erin.try_login("erin", "erin-pw").await.status(), 303);
    let page = portal(&erin).await;
    assert!(
        page.contains("App sales"),
        "the first server's groups: {page}"
    );
    assert_eq!(
        erin.get("/admin").await.status(),
        403,
        "the second server's groups were used"
    );

    let dave = Browser::new(&server);
    assert_eq!(
        dave.try_login("dave", "dave-pw").await.status(),
        303,
        "a user the first server does not know is tried at the second"
    );

    // Every server answered and refused, so this is a wrong password, not an outage. A DN
    // pattern escapes the name too: "alice,ou=people" is not alice.
    let b = Browser::new(&server);
    for (user, password) in [("alice,ou=people", "alice-pw"), ("erin", "wrong")] {
        let resp = b.try_login(user, password).await;
        assert_eq!(resp.status(), 401, "{user}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn starttls_trusts_the_configured_ca_and_no_other() {
    let ldap = Slapd::start_with_tls();
    let ca = ldap.ca_file.clone().expect("ca");
    let tls_server = |ca_certs| LdapServer {
        starttls: true,
        ca_certs,
        ..dn_pattern_server(ldap.url())
    };
    let pem = std::fs::read(&ca).expect("ca pem");
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .expect("certs");

    let trusted = TestServer::start(pattern_config(vec![tls_server(certs)])).await;
    let b = Browser::new(&trusted);
    assert_eq!(b.try_login("alice", "alice-pw").await.status(), 303);
    assert!(portal(&b).await.contains("App sales"));
    trusted.shutdown().await;

    // Without the CA the certificate is not trusted: the login fails as unavailable.
    let untrusted = TestServer::start(pattern_config(vec![tls_server(Vec::new())])).await;
    let resp = Browser::new(&untrusted)
        .try_login("alice", "alice-pw")
        .await;
    assert_eq!(resp.status(), 503);
    untrusted.shutdown().await;
}

/// A folder removed when the test ends, pass or fail.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file a ShinyProxy user would write for an `ldaps://` directory whose certificate comes
/// from a private CA: `ca-cert` names the CA's PEM file.
fn ldaps_config(url: &str, ca_file: &Path) -> Config {
    let yaml = format!(
        "proxy:
  authentication: ldap
  container-backend: process
  ldap:
    url: {url}
    user-dn-pattern: uid={{0}},ou=people
    group-search-base: ou=groups
    ca-cert: {ca}
  specs:
{apps}",
        ca = ca_file.display(),
        apps = apps_yaml()
    );
    let loaded = load_str(Path::new("application.yml"), &yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config loads: {e:?}"));
    loaded.config
}

#[tokio::test]
async fn ldaps_trusts_the_configured_ca_and_no_other() {
    let ldap = Slapd::start_with_tls();
    let url = ldap.ldaps_url();
    let ca = ldap.ca_file.clone().expect("ca");

    let trusted = TestServer::start(ldaps_config(&url, &ca)).await;
    let alice = Browser::new(&trusted);
    assert_eq!(alice.try_login("alice", "alice-pw").await.status(), 303);
    let page = portal(&alice).await;
    assert!(
        page.contains("sales-tile") && !page.contains("finance-tile"),
        "the groups were read over ldaps: {page}"
    );
    let wrong = Browser::new(&trusted).try_login("alice", "bob-pw").await;
    assert_eq!(wrong.status(), 401, "a wrong password over ldaps");
    trusted.shutdown().await;

    // A CA that did not sign slapd's certificate: the connection is refused before any
    // password is sent, and the login fails as unavailable, not as a wrong password.
    let stranger = TempDir(std::env::temp_dir().join(format!(
        "vestibule-ldaps-stranger-{}-{}",
        std::process::id(),
        ldap.port
    )));
    std::fs::create_dir_all(&stranger.0).expect("stranger dir");
    let stranger_ca = crate::common::certs::make_certificates(&stranger.0);
    let untrusted = TestServer::start(ldaps_config(&url, &stranger_ca)).await;
    let resp = Browser::new(&untrusted)
        .try_login("alice", "alice-pw")
        .await;
    assert_eq!(resp.status(), 503, "a certificate from an untrusted CA");
    untrusted.shutdown().await;
}
