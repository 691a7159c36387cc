//! The catalogue of keys (keys.rs) and the checkers that read them must agree: a key marked as
//! used that no checker reads would be accepted without a warning and silently do nothing, and a
//! key a checker reads that the catalogue does not list would be warned about as a typo.

use std::collections::BTreeSet;
use std::path::Path;

use super::check::check;
use super::convert::reads;
use super::keys::{Level, ROOT, Shape, Status};
use super::node;
use super::report::{Report, child};

/// Every key of the catalogue with its status, as `proxy.specs.container-image`.
fn catalogue() -> Vec<(String, Status)> {
    fn walk(level: &Level, path: &str, out: &mut Vec<(String, Status)>) {
        for key in level.keys {
            let here = child(path, key.name);
            out.push((here.clone(), key.status));
            match key.shape {
                Shape::Map(l) | Shape::List(l) | Shape::MapOrList(l) => walk(l, &here, out),
                Shape::Leaf | Shape::Free => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&ROOT, "", &mut out);
    out
}

/// Runs the checkers over a file with every section present, once per login method and backend,
/// since each of those turns on its own checker.
fn keys_the_checkers_read() -> BTreeSet<String> {
    reads::take();
    for auth in [
        "none",
        "simple",
        "ldap",
        "openid",
        "saml",
        "webservice",
        "customHeader",
    ] {
        for backend in ["process", "docker", "docker-swarm", "kubernetes"] {
            let yaml = format!(
                "proxy:
  authentication: {auth}
  container-backend: {backend}
  users: [{{name: a, password: b}}]
  ldap: {{url: 'ldap://127.0.0.1/dc=example'}}
  openid: {{issuer: 'https://idp.example', client-id: c}}
  oauth2: {{jwks-url: 'https://idp.example/jwks'}}
  saml: {{idp-metadata-url: 'https://idp.example/md', app-entity-id: e, app-base-url: 'https://x'}}
  custom-header: {{}}
  webservice: {{authentication-url: 'https://auth.example/login'}}
  usage-stats: [{{url: usage.csv}}]
  docker: {{}}
  kubernetes: {{}}
  template-groups: [{{id: g, properties: {{display-name: G}}}}]
  specs:
  - id: app
    container-cmd: [run]
    container-image: img
    pool: {{}}
    minimum-seats-available: 1
    parameters:
      definitions: [{{id: v, display-name: V, description: D, default-value: a, value-names: [{{value: a, name: A}}]}}]
      value-sets: [{{name: s, access-control: {{groups: g, users: u, expression: 'true', strict-expression: 'true'}}, values: {{v: [a]}}}}]
      template: t
server: {{ssl: {{certificate: c.pem, certificate-private-key: k.pem}}}}
management: {{server: {{}}}}
spring:
  session: {{store-type: none}}
  redis: {{sentinel: {{}}, ssl: {{enabled: false}}}}
  data: {{redis: {{sentinel: {{}}, ssl: {{enabled: false}}}}}}
"
            );
            let root = node::parse(&yaml).expect("test yaml");
            let mut report = Report::new(Path::new("catalogue.yml"));
            check(&root, Path::new("catalogue.yml"), &mut report);
        }
    }
    reads::take()
}

#[test]
fn every_used_key_is_read_and_every_read_key_is_catalogued_as_used() {
    let read = keys_the_checkers_read();
    assert!(
        read.contains("proxy.specs.container-image"),
        "the recorder must see the checkers' reads: {read:?}"
    );
    let catalogue = catalogue();
    let canonical = |k: &str| super::keys::canonical(k);
    let read_canonical: BTreeSet<String> = read.iter().map(|k| canonical(k)).collect();

    let never_read: Vec<&str> = catalogue
        .iter()
        .filter(|(_, status)| *status == Status::Used)
        .map(|(key, _)| key.as_str())
        .filter(|key| !read_canonical.contains(&canonical(key)))
        .collect();
    assert!(
        never_read.is_empty(),
        "marked as used in keys.rs but read by no checker (they would be silently ignored): \
         {never_read:#?}"
    );

    let not_used: Vec<String> = read
        .iter()
        .filter(|key| {
            !catalogue
                .iter()
                .any(|(k, s)| *s == Status::Used && canonical(k) == canonical(key))
        })
        .cloned()
        .collect();
    assert!(
        not_used.is_empty(),
        "read by a checker but not catalogued as used (they would be warned about): \
         {not_used:#?}"
    );
}

/// The key paths a YAML file sets, lists left out: `proxy.specs.container-image`.
fn paths_in(yaml: &str) -> BTreeSet<String> {
    fn walk(node: &node::Node, path: &str, out: &mut BTreeSet<String>) {
        match &node.value {
            node::Value::Map(entries) => {
                for e in entries {
                    let here = child(path, &super::keys::canonical(&e.key));
                    out.insert(here.clone());
                    walk(&e.value, &here, out);
                }
            }
            node::Value::Seq(items) => items.iter().for_each(|i| walk(i, path, out)),
            _ => {}
        }
    }
    let root = node::parse(yaml).expect("fixture yaml");
    let mut out = BTreeSet::new();
    walk(&root, "", &mut out);
    out
}

/// A key vestibule does not read is in the catalogue only because ShinyProxy has it; an invented
/// one would be offered as "did you mean" for a real key (as `always-switch-instance` was for
/// `always-show-switch-instance`). The fixture sets every ShinyProxy 3.2 key.
#[test]
fn every_key_vestibule_does_not_read_is_a_shinyproxy_key() {
    let shinyproxy = paths_in(include_str!(
        "../../tests/fixtures/shinyproxy-every-key.yml"
    ));
    // Spring Boot's own, which the ShinyProxy sources do not name.
    const SPRING_BOOT: &[&str] = &[
        "spring.servlet.multipart.max-file-size",
        "spring.servlet.multipart.max-request-size",
        "spring.servlet.multipart.file-size-threshold",
        "spring.servlet.multipart.location",
        "logging.pattern",
        "logging.config",
    ];
    let canonical_path = |p: &str| {
        p.split('.')
            .map(super::keys::canonical)
            .collect::<Vec<_>>()
            .join(".")
    };
    let invented: Vec<String> = catalogue()
        .into_iter()
        .filter(|(_, status)| *status != Status::Used)
        .map(|(key, _)| key)
        .filter(|key| !SPRING_BOOT.contains(&key.as_str()))
        .filter(|key| !shinyproxy.contains(&canonical_path(key)))
        .collect();
    assert!(
        invented.is_empty(),
        "in keys.rs but not a ShinyProxy 3.2 key (tests/fixtures/shinyproxy-every-key.yml): \
         {invented:#?}"
    );
}
