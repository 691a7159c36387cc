//! `vestibule check` on the settings of LDAP, trusted-header and web-service login, and of
//! access expressions: every mistake is reported at its line and column with its key.

use std::collections::HashMap;
use std::path::Path;
use vestibule::config::{ConfigError, Diagnostic, Loaded, Severity, load_str};

const APP: &str = "  container-backend: process
  specs:
    - id: a
      container-cmd: [\"true\"]
";

fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_str(Path::new("app.yml"), yaml, &env)
}

fn errors(yaml: &str) -> Vec<Diagnostic> {
    match load(yaml, &[]) {
        Ok(l) => panic!("expected errors, loaded with warnings {:?}", l.warnings),
        Err(e) => e
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

fn about<'a>(diagnostics: &'a [Diagnostic], key: &str) -> &'a Diagnostic {
    diagnostics
        .iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("no diagnostic about {key}: {diagnostics:#?}"))
}

#[test]
fn ldap_servers_load_as_one_or_a_list_with_the_base_dn_from_the_url() {
    let yaml = format!(
        "proxy:
  authentication: ldap
  ldap:
    - url: ldap://a.example:389/dc=example,dc=org ldap://b.example:389/dc=example,dc=org
      user-dn-pattern: uid={{0}},ou=people
    - url: ldaps://ad.example/DC=corp,DC=example
      user-search-filter: (sAMAccountName={{0}})
      group-search-filter: (member={{0}})
      manager-dn: CN=reader,DC=corp,DC=example
      manager-password: ${{PW}}
{APP}"
    );
    let loaded = load(&yaml, &[("PW", "s3cret")]).expect("loads");
    let servers = &loaded.config.proxy.ldap;
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0].url, "ldap://a.example:389");
    assert_eq!(servers[1].url, "ldap://b.example:389");
    assert_eq!(servers[0].base_dn, "dc=example,dc=org");
    assert_eq!(servers[0].group_search_filter, "(uniqueMember={0})");
    assert_eq!(servers[2].base_dn, "DC=corp,DC=example");
    assert_eq!(servers[2].full_dn("OU=x"), "OU=x,DC=corp,DC=example");
    let shown = format!("{:?}", loaded.config.proxy.ldap);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn ldap_mistakes_are_errors_at_their_position() {
    let errs = errors(&format!(
        "proxy:
  authentication: ldap
  ldap:
    url: http://ldap.example
    user-search-filter: (uid={{0}}
    manager-dn: cn=admin
{APP}"
    ));
    let url = about(&errs, "proxy.ldap.url");
    assert_eq!((url.line, url.column), (4, 10));
    assert!(url.message.contains("ldap://"), "{url}");
    let filter = about(&errs, "proxy.ldap.user-search-filter");
    assert_eq!(filter.line, 5);
    assert!(
        filter.message.contains("not a valid LDAP filter"),
        "{filter}"
    );
    assert!(
        errs.iter().any(|d| d
            .message
            .contains("manager-dn is set without manager-password")),
        "{errs:#?}"
    );

    let missing = errors(&format!("proxy:\n  authentication: ldap\n{APP}"));
    assert!(
        about(&missing, "proxy.ldap")
            .message
            .contains("needs a proxy.ldap")
    );
}

#[test]
fn starttls_takes_shinyproxys_words_and_external_is_named_as_not_implemented() {
    let with = |starttls: &str| {
        format!(
            "proxy:
  authentication: ldap
  ldap:
    url: ldap://h/dc=x
    user-dn-pattern: uid={{0}}
    starttls: {starttls}
{APP}"
        )
    };
    for (written, upgraded) in [
        ("simple", true),
        ("SIMPLE", true),
        ("true", true),
        ("false", false),
    ] {
        let loaded = load(&with(written), &[]).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(loaded.config.proxy.ldap[0].starttls, upgraded, "{written}");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    let errs = errors(&with("external"));
    let e = about(&errs, "proxy.ldap.starttls");
    assert_eq!((e.line, e.column), (6, 15));
    assert!(
        e.message.contains("not implemented in vestibule yet"),
        "{e}"
    );
    assert!(!e.message.contains("expected"), "{e}");

    let errs = errors(&with("simpel"));
    let e = about(&errs, "proxy.ldap.starttls");
    assert!(
        e.message
            .starts_with("expected simple, external, true or false"),
        "{e}"
    );
}

#[test]
fn a_manager_password_written_in_the_file_is_warned_about_without_showing_it() {
    let loaded = load(
        &format!(
            "proxy:
  authentication: ldap
  ldap:
    url: ldap://h/dc=x
    user-dn-pattern: uid={{0}}
    manager-dn: cn=admin,dc=x
    manager-password: hunter2
{APP}"
        ),
        &[],
    )
    .expect("loads");
    let w = about(&loaded.warnings, "proxy.ldap.manager-password");
    assert!(w.message.contains("environment"), "{w}");
    assert!(!w.to_string().contains("hunter2"), "{w}");
}

#[test]
fn access_expressions_vestibule_cannot_evaluate_are_errors_at_their_position() {
    let errs = errors(
        "proxy:
  container-backend: process
  specs:
    - id: a
      container-cmd: [\"true\"]
      access-expression: \"#{T(java.lang.Runtime).getRuntime().exec('x')}\"
    - id: b
      container-cmd: [\"true\"]
      access-strict-expression: groups.contains('x')
    - id: c
      container-cmd: [\"true\"]
      access-cel: \"user == 'x'\"
",
    );
    let a = about(&errs, "proxy.specs[0].access-expression");
    assert_eq!((a.line, a.column), (6, 26));
    assert!(a.message.contains("type references"), "{a}");
    let b = about(&errs, "proxy.specs[1].access-strict-expression");
    assert!(b.message.contains("#{...}"), "{b}");
    let c = about(&errs, "proxy.specs[2].access-cel");
    assert!(c.message.contains("userId"), "{c}");
}

#[test]
fn custom_header_settings_with_trusted_networks() {
    let loaded = load(
        &format!(
            "proxy:
  authentication: header
  custom-header:
    username-header-name: X-Forwarded-User
    groups-header-name: X-Forwarded-Groups
    trusted-networks: [10.0.0.0/8, 192.168.1.5]
{APP}"
        ),
        &[],
    )
    .expect("loads");
    let h = &loaded.config.proxy.custom_header;
    assert_eq!(
        loaded.config.proxy.authentication,
        vestibule::config::AuthMethod::CustomHeader
    );
    assert_eq!(h.username_header, "X-Forwarded-User");
    assert_eq!(h.trusted_networks.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let errs = errors(&format!(
        "proxy:
  authentication: customHeader
  custom-header:
    trusted-networks: 10.0.0.0/33
{APP}"
    ));
    let e = about(&errs, "proxy.custom-header.trusted-networks");
    assert_eq!((e.line, e.column), (4, 23));
}

#[test]
fn webservice_settings() {
    let loaded = load(
        &format!(
            "proxy:
  authentication: webservice
  webservice:
    authentication-url: https://auth.example.org/login
{APP}"
        ),
        &[],
    )
    .expect("loads");
    let ws = loaded.config.proxy.webservice.expect("webservice");
    assert_eq!(ws.url, "https://auth.example.org/login");
    assert_eq!(ws.body_template, r#"{"username": "%s", "password": "%s"}"#);

    let errs = errors(&format!(
        "proxy:
  authentication: webservice
  webservice:
    authentication-url: auth.example.org
    authentication-request-body: '{{\"user\": \"%s\"}}'
{APP}"
    ));
    assert_eq!(about(&errs, "proxy.webservice.authentication-url").line, 4);
    assert_eq!(
        about(&errs, "proxy.webservice.authentication-request-body").line,
        5
    );
    let missing = errors(&format!("proxy:\n  authentication: webservice\n{APP}"));
    about(&missing, "proxy.webservice.authentication-url");
}

/// Every `yaml` block of docs/authentication.md is a complete config that loads.
#[test]
fn docs_examples_load() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/authentication.md"
    ))
    .expect("docs/authentication.md");
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(blocks.len() >= 5, "{}", blocks.len());
    for block in blocks {
        let env = [
            ("LDAP_MANAGER_PASSWORD", "x"),
            ("OIDC_CLIENT_SECRET", "x"),
            ("KEYCLOAK_CLIENT_SECRET", "x"),
            ("COGNITO_CLIENT_SECRET", "x"),
            ("ENTRA_CLIENT_SECRET", "x"),
        ];
        let loaded = load(block, &env).unwrap_or_else(|e| panic!("{e}\n---\n{block}"));
        // The OpenID Connect examples show the login settings alone, without apps.
        let warnings: Vec<String> = loaded
            .warnings
            .iter()
            .filter(|w| w.key != "proxy.specs")
            .map(|w| w.to_string())
            .collect();
        assert!(warnings.is_empty(), "{warnings:?}\n---\n{block}");
    }
}

#[test]
fn an_ldap_ca_cert_that_cannot_be_read_is_an_error() {
    let errs = errors(&format!(
        "proxy:
  authentication: ldap
  ldap:
    url: ldaps://h/dc=x
    user-dn-pattern: uid={{0}}
    ca-cert: /nonexistent/ca.pem
{APP}"
    ));
    let e = about(&errs, "proxy.ldap.ca-cert");
    assert_eq!((e.line, e.column), (6, 14));
    assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
}
