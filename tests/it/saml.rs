//! SAML 2.0 login against a real IdP (pysaml2, signing and encrypting with xmlsec1): the
//! login, each kind of bad answer an IdP or an attacker could send, an encrypted assertion,
//! single logout, the SP metadata, and the config checks.
#![cfg(feature = "saml")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::saml_idp::{PASSWORD, SamlIdp};
use crate::common::{Browser, TestServer, config, data, echo_spec, hidden_field};
use vestibule::config::AuthMethod;

struct Sp {
    server: TestServer,
    dir: PathBuf,
}

impl Drop for Sp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An SP key and certificate (PEM, PKCS#8) and the same as a PKCS12 keystore, in `dir`.
fn make_sp_keys(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "sp.key",
        "-out",
        "sp.crt",
        "-subj",
        "/CN=vestibule-sp",
        "-days",
        "2",
    ]);
    run(&[
        "pkcs12",
        "-export",
        "-in",
        "sp.crt",
        "-inkey",
        "sp.key",
        "-name",
        "sp",
        "-passout",
        "pass:keystore-secret",
        "-out",
        "sp.p12",
    ]);
}

/// A vestibule logging in at `idp` (see [`saml_config`]).
async fn sp(idp: &SamlIdp, extra: &str) -> Sp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (cfg, dir) = saml_config(idp, port, extra);
    let server = TestServer::start_on(cfg, listener).await;
    register(idp, &server).await;
    Sp { server, dir }
}

/// The config of a vestibule serving two apps, for the groups `analysts` and `sales`, whose
/// public address is 127.0.0.1:`port`, logging in at `idp`; `extra` is added under
/// `proxy.saml` (`{dir}` is the folder with the SP's keys, returned).
fn saml_config(idp: &SamlIdp, port: u16, extra: &str) -> (vestibule::config::Config, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "vestibule-saml-sp-{}-{port}-{}",
        std::process::id(),
        crate::common::oidc_provider::unique()
    ));
    std::fs::create_dir_all(&dir).expect("sp dir");
    make_sp_keys(&dir);
    let yaml = format!(
        "proxy:
  authentication: saml
  saml:
    idp-metadata-url: {md}
    app-entity-id: urn:vestibule-test:sp-{port}
    app-base-url: http://127.0.0.1:{port}
    name-attribute: uid
    roles-attribute: groups
{extra}",
        md = idp.metadata_url(),
    );
    let yaml = yaml.replace("{dir}", &dir.display().to_string());
    let loaded = vestibule::config::load_str(
        Path::new("saml.yml"),
        &yaml,
        &HashMap::<String, String>::new(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut analysts = echo_spec("analysts-app");
    analysts.access_groups = vec!["analysts".into()];
    let mut sales = echo_spec("sales-app");
    sales.access_groups = vec!["sales".into()];
    let mut cfg = config(vec![analysts, sales]);
    cfg.proxy.authentication = AuthMethod::Saml;
    cfg.proxy.users.clear();
    cfg.proxy.saml = loaded.config.proxy.saml;
    (cfg, dir)
}

/// Gives the IdP the SP metadata `server` serves.
async fn register(idp: &SamlIdp, server: &TestServer) {
    let metadata = reqwest::get(server.url("/saml/metadata"))
        .await
        .expect("SP metadata")
        .text()
        .await
        .expect("metadata text");
    idp.register(&metadata).await;
}

/// What the IdP posts back: the ACS URL, SAMLResponse and RelayState.
struct Answer {
    acs: String,
    response: String,
    relay: String,
    /// The IdP's login page, as the user saw it.
    login_page: String,
}

/// Starts a login at vestibule in `b` and signs in at the IdP as `user`, asking it for an
/// answer of `mode` ("" for a good one). Returns the IdP's answer, not yet posted.
async fn idp_answer(b: &Browser, idp: &SamlIdp, user: &str, mode: &str) -> Answer {
    let resp = b.get("/login?next=/").await;
    assert_eq!(resp.status(), 303, "/login sends the browser to the IdP");
    let sso = location(&resp);
    assert!(
        sso.starts_with(&idp.url("/sso/redirect?SAMLRequest=")),
        "{sso}"
    );
    let page = b.http.get(&sso).send().await.expect("IdP login page");
    let page = page.text().await.expect("IdP page");
    let key = hidden_field(&page, "key").unwrap_or_else(|| panic!("IdP login form: {page}"));
    let posted = b
        .http
        .post(idp.url("/login"))
        .form(&[
            ("user", user),
            ("password", PASSWORD),
            ("key", &key),
            ("mode", mode),
        ])
        .send()
        .await
        .expect("IdP login")
        .text()
        .await
        .expect("IdP answer");
    let acs = posted
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("IdP answer: {posted}"))
        .to_string();
    Answer {
        acs,
        response: hidden_field(&posted, "SAMLResponse").expect("SAMLResponse"),
        relay: hidden_field(&posted, "RelayState").unwrap_or_default(),
        login_page: page,
    }
}

/// Posts an answer to the ACS as the IdP's page would, and follows vestibule's redirect to
/// /saml/complete. Returns vestibule's last answer.
async fn post_answer(b: &Browser, a: &Answer) -> reqwest::Response {
    let resp = b
        .http
        .post(&a.acs)
        .form(&[("SAMLResponse", &a.response), ("RelayState", &a.relay)])
        .send()
        .await
        .expect("post to the ACS");
    if resp.status() != 303 {
        return resp;
    }
    let next = location(&resp);
    assert!(next.starts_with("/saml/complete?code="), "{next}");
    b.get(&next).await
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a redirect")
        .to_string()
}

async fn page_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("page"))
}

async fn spec_ids(b: &Browser) -> Vec<String> {
    let specs: serde_json::Value = data(b.get("/api/proxyspec").await).await;
    specs
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_logs_in_through_the_idp_and_sees_only_her_groups_apps() {
    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    let b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "alice", "").await;
    assert_eq!(
        answer.acs,
        sp.server.url("/saml/SSO"),
        "ShinyProxy's ACS path"
    );
    let resp = post_answer(&b, &answer).await;
    assert_eq!(resp.status(), 303, "logged in: {}", page_of(resp).await.1);
    assert_eq!(location(&resp), "/");
    assert_eq!(spec_ids(&b).await, ["analysts-app"]);
    let portal = b.get("/").await.text().await.expect("portal");
    assert!(portal.contains("alice"), "the portal names the user");
    // Scripts cannot log in with a password through a SAML server.
    let basic = reqwest::Client::new()
        .get(sp.server.url("/api/proxyspec"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("basic");
    assert_eq!(basic.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_whose_signed_content_was_changed_is_refused() {
    use base64::Engine;
    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    let b = Browser::new(&sp.server);
    let mut answer = idp_answer(&b, idp, "bob", "").await;
    let engine = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(engine.decode(&answer.response).expect("base64")).expect("xml");
    // bob makes himself an analyst.
    let tampered = xml.replace(">sales<", ">analysts<");
    assert_ne!(tampered, xml, "the groups are in the assertion: {xml}");
    answer.response = engine.encode(tampered);
    let (status, page) = page_of(post_answer(&b, &answer).await).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("invalid signature"), "{page}");
    assert!(
        !page.contains("analysts<"),
        "the page never shows the assertion"
    );
    assert!(
        b.get("/api/proxyspec").await.status() == 401,
        "not logged in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_early_misaddressed_unsolicited_and_unsigned_answers_each_get_their_own_refusal() {
    let logs = crate::common::log_capture::capture_logs();
    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    for (mode, status, heading) in [
        ("expired", 401, "Login refused: expired"),
        ("skew", 401, "Login refused: clocks disagree"),
        ("audience", 401, "Login refused: wrong audience"),
        ("unsolicited", 400, "Login refused"),
        ("unsigned", 401, "Login refused: invalid signature"),
    ] {
        let b = Browser::new(&sp.server);
        let answer = idp_answer(&b, idp, "alice", mode).await;
        let (got, page) = page_of(post_answer(&b, &answer).await).await;
        assert_eq!(got, status, "{mode}: {page}");
        assert!(page.contains(heading), "{mode}: {page}");
        assert_eq!(
            b.get("/api/proxyspec").await.status(),
            401,
            "{mode}: not logged in"
        );
        // The audit event names the reason; no log line carries the Response or its values.
        assert!(!logs.text().contains(&answer.response[..40]), "{mode}");
    }
    let text = logs.text();
    for reason in [
        "expired",
        "clock_skew",
        "wrong_audience",
        "unsolicited",
        "bad_signature",
    ] {
        assert!(
            text.contains(&format!(
                "event=\"login_failed\" method=\"saml\" ip=127.0.0.1 reason=\"{reason}\""
            )),
            "{reason}: {text}"
        );
    }
    assert!(
        !text.contains("alice@example.org"),
        "no attribute values in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_response_and_one_from_another_browser_are_refused() {
    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    let alice = Browser::new(&sp.server);
    let answer = idp_answer(&alice, idp, "alice", "").await;

    // An attacker who got alice's answer posts it from their own browser first: the answer is
    // good, but it belongs to the login alice's browser started.
    let attacker = Browser::new(&sp.server);
    let (status, page) = page_of(post_answer(&attacker, &answer).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("another browser"), "{page}");
    assert_eq!(attacker.get("/api/proxyspec").await.status(), 401);

    // The same answer again (in alice's browser) is a replay.
    let (status, page) = page_of(post_answer(&alice, &answer).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already used"), "{page}");

    // A fresh login in alice's browser works, and its answer cannot be used twice.
    let fresh = idp_answer(&alice, idp, "alice", "").await;
    assert_eq!(post_answer(&alice, &fresh).await.status(), 303);
    let (status, page) = page_of(post_answer(&Browser::new(&sp.server), &fresh).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already used"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_assertion_is_decrypted_with_the_keystore() {
    let idp = SamlIdp::shared().await;
    let sp = sp(
        idp,
        "    keystore: {dir}/sp.p12
    keystore-password: keystore-secret
    encryption-cert-name: sp
    encryption-cert-password: keystore-secret
",
    )
    .await;
    let b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "bob", "encrypted").await;
    {
        use base64::Engine;
        let xml = base64::engine::general_purpose::STANDARD
            .decode(&answer.response)
            .expect("base64");
        let xml = String::from_utf8_lossy(&xml);
        assert!(xml.contains("EncryptedAssertion"), "the IdP encrypted it");
        assert!(
            !xml.contains("bob-persistent"),
            "nothing readable in the clear"
        );
    }
    let logs = crate::common::log_capture::capture_logs();
    let resp = post_answer(&b, &answer).await;
    assert_eq!(resp.status(), 303, "{}", logs.text());
    assert_eq!(spec_ids(&b).await, ["sales-app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_here_and_at_the_idp() {
    let idp = SamlIdp::shared().await;
    let sp = sp(
        idp,
        "    certificate: {dir}/sp.crt
    certificate-private-key: {dir}/sp.key
    logout-method: saml
",
    )
    .await;
    let mut b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "alice", "").await;
    assert_eq!(post_answer(&b, &answer).await.status(), 303);
    let portal = b.get("/").await.text().await.expect("portal");
    b.csrf = hidden_field(&portal, "_csrf").expect("csrf");
    let resp = b
        .http
        .post(sp.server.url("/logout"))
        .form(&[("_csrf", b.csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 303);
    let slo = location(&resp);
    assert!(
        slo.starts_with(&idp.url("/slo/redirect?SAMLRequest=")),
        "{slo}"
    );
    assert!(slo.contains("&Signature="), "signed with the SP key: {slo}");
    assert_eq!(
        b.get("/api/proxyspec").await.status(),
        401,
        "logged out here"
    );
    let at_idp = b.http.get(&slo).send().await.expect("IdP logout");
    let (status, page) = page_of(at_idp).await;
    assert_eq!(status, 200, "the IdP accepted the LogoutRequest: {page}");
    assert!(page.contains("alice-persistent"), "{page}");
    // The IdP sends the browser back to ShinyProxy's single-logout path.
    let back = b
        .get("/saml/SingleLogout")
        .await
        .text()
        .await
        .expect("page");
    assert!(back.contains("Logged out"), "{back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sp_metadata_is_signed_and_names_the_acs() {
    let idp = SamlIdp::shared().await;
    let sp = sp(
        idp,
        "    certificate: {dir}/sp.crt
    certificate-private-key: {dir}/sp.key
",
    )
    .await;
    let xml = reqwest::get(sp.server.url("/saml/metadata"))
        .await
        .expect("metadata")
        .text()
        .await
        .expect("text");
    assert!(
        xml.contains(&format!("Location=\"{}\"", sp.server.url("/saml/SSO"))),
        "{xml}"
    );
    assert!(xml.contains("SignatureValue"), "signed: {xml}");
    // The signature verifies with xmlsec1 against the SP's certificate.
    let file = sp.dir.join("metadata.xml");
    std::fs::write(&file, &xml).expect("write metadata");
    let out = std::process::Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(sp.dir.join("sp.crt"))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
        ])
        .arg(&file)
        .output()
        .expect("xmlsec1 (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        xml.contains("use=\"encryption\""),
        "offers its encryption key: {xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_saml_login_ends_on_the_portal_with_only_the_permitted_apps() {
    use crate::common::chrome::Chrome;
    use fantoccini::Locator;

    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    c.goto(&sp.server.url("/")).await.expect("open vestibule");
    let wait = Duration::from_secs(20);
    // The IdP is another site (localhost vs 127.0.0.1): its POST to the ACS is cross-site.
    chrome.wait_for("#idp-submit", wait).await;
    c.find(Locator::Css("#idp-username"))
        .await
        .expect("user field")
        .send_keys("alice")
        .await
        .expect("type user");
    c.find(Locator::Css("#idp-password"))
        .await
        .expect("password field")
        .send_keys(PASSWORD)
        .await
        .expect("type password");
    c.find(Locator::Css("#idp-submit"))
        .await
        .expect("button")
        .click()
        .await
        .expect("sign in");
    chrome.wait_for("#tile-analysts-app", wait).await;
    chrome.screenshot("saml-portal").await;
    assert_eq!(
        c.current_url().await.expect("url").as_str(),
        sp.server.url("/"),
        "back on vestibule's portal"
    );
    let tiles = c.find_all(Locator::Css(".tile h2")).await.expect("tiles");
    let mut names = Vec::new();
    for t in tiles {
        names.push(t.text().await.expect("tile text"));
    }
    assert_eq!(
        names,
        ["App analysts-app"],
        "alice (analysts) sees only her app"
    );
    chrome.stop().await;
}

fn check_errors(yaml: &str) -> String {
    match vestibule::config::load_str(
        Path::new("application.yml"),
        yaml,
        &HashMap::<String, String>::new(),
    ) {
        Ok(_) => panic!("expected errors:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn check_names_a_missing_keystore_at_its_line_and_fetches_nothing() {
    let text = check_errors(
        "proxy:
  authentication: saml
  saml:
    idp-metadata-url: https://idp.invalid/metadata
    app-entity-id: urn:sp
    app-base-url: https://apps.example.org
    keystore: /nonexistent/saml.p12
    keystore-password: hunter2
",
    );
    assert!(text.contains("application.yml:7:"), "{text}");
    assert!(text.contains("proxy.saml.keystore"), "{text}");
    assert!(text.contains("/nonexistent/saml.p12"), "{text}");
    assert!(!text.contains("hunter2"), "no password in messages: {text}");
    // idp.invalid cannot resolve: only a missing keystore is reported, nothing was fetched.
    assert!(!text.contains("idp.invalid"), "{text}");
}

#[test]
fn check_names_every_missing_saml_key() {
    let text = check_errors("proxy:\n  authentication: saml\n");
    for key in ["idp-metadata-url", "app-entity-id", "app-base-url"] {
        assert!(text.contains(&format!("proxy.saml.{key}")), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_of_a_multi_valued_roles_attribute_is_a_group() {
    let idp = SamlIdp::shared().await;
    let sp = sp(idp, "").await;
    // root is in admins and analysts (two values of one attribute); admin-groups: admins.
    let b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "root", "").await;
    assert_eq!(post_answer(&b, &answer).await.status(), 303);
    assert_eq!(spec_ids(&b).await, ["analysts-app"]);
    assert_eq!(
        b.get("/admin").await.status(),
        200,
        "admin through the second value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_one_replica_completes_on_another() {
    let idp = SamlIdp::shared().await;
    let redis = crate::common::redis::RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Both replicas have the same public address (a balancer's, in production).
    let (mut cfg, dir) = saml_config(idp, port, "");
    cfg.store = redis.store_config();
    let first = TestServer::start_on(cfg.clone(), listener).await;
    let second = TestServer::start(cfg).await;
    register(idp, &first).await;
    let browser = Browser::new(&first);
    let answer = idp_answer(&browser, idp, "bob", "").await;
    // The IdP's POST and the browser's next request reach the other replica.
    let resp = browser
        .http
        .post(second.url("/saml/SSO"))
        .form(&[
            ("SAMLResponse", &answer.response),
            ("RelayState", &answer.relay),
        ])
        .send()
        .await
        .expect("post to the second replica");
    assert_eq!(resp.status(), 303, "{}", page_of(resp).await.1);
    let done = browser
        .http
        .get(second.url(&location(&resp)))
        .send()
        .await
        .expect("complete on the second replica");
    assert_eq!(done.status(), 303, "{}", page_of(done).await.1);
    // The session is shared too: the first replica knows bob.
    assert_eq!(spec_ids(&browser).await, ["sales-app"]);
    // And the answer cannot be used again on either replica.
    let again = Browser::new(&first);
    let (status, page) = page_of(post_answer(&again, &answer).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already used"), "{page}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The SAML examples of docs/authentication.md (ADFS, Entra ID, Okta, Keycloak) load as SAML
/// configs (`config_auth::docs_examples_load` checks every example has no warning).
#[test]
fn every_saml_example_in_the_docs_loads() {
    let doc = std::fs::read_to_string(crate::common::repo_path("docs/authentication.md"))
        .expect("docs/authentication.md");
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("authentication: saml"))
        .collect();
    assert_eq!(blocks.len(), 4, "ADFS, Entra ID, Okta and Keycloak");
    for block in blocks {
        let loaded = vestibule::config::load_str(
            Path::new("application.yml"),
            block,
            &HashMap::<String, String>::new(),
        )
        .unwrap_or_else(|e| panic!("{e}\n---\n{block}"));
        let saml = loaded.config.proxy.saml.expect("a SAML config");
        assert!(saml.base_url.starts_with("https://"), "{block}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_authn_is_asked_for_and_an_old_authentication_is_refused() {
    let idp = SamlIdp::shared().await;
    let plain = sp(idp, "").await;
    let b = Browser::new(&plain.server);
    let answer = idp_answer(&b, idp, "alice", "").await;
    assert!(
        answer.login_page.contains("ForceAuthn: false"),
        "{}",
        answer.login_page
    );

    let sp = sp(
        idp,
        "    force-authn: true
    max-authentication-age: 3600
",
    )
    .await;
    let b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "alice", "").await;
    assert!(
        answer.login_page.contains("ForceAuthn: true"),
        "{}",
        answer.login_page
    );
    assert_eq!(
        post_answer(&b, &answer).await.status(),
        303,
        "a fresh sign-in"
    );
    let b = Browser::new(&sp.server);
    let answer = idp_answer(&b, idp, "alice", "oldauth").await;
    let (status, page) = page_of(post_answer(&b, &answer).await).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("Login refused: expired"), "{page}");
}
