//! What a person sees when vestibule reads their `application.yml`: the values it takes, and
//! the warnings and errors it prints, at which line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vestibule::config::{
    AuthMethod, BackendKind, ConfigError, Diagnostic, Loaded, PasswordSpec, SameSite, Severity,
    load_file, load_str,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(yaml: &str, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    load_str(Path::new("app.yml"), yaml, env)
}

fn ok(yaml: &str) -> Loaded {
    load(yaml, &no_env()).unwrap_or_else(|e| panic!("expected the config to load:\n{e}"))
}

fn errors(yaml: &str, env: &HashMap<String, String>) -> Vec<Diagnostic> {
    match load(yaml, env) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

/// The one diagnostic about `key`; fails when there is none or several.
fn about<'a>(diagnostics: &'a [Diagnostic], key: &str) -> &'a Diagnostic {
    let found: Vec<_> = diagnostics.iter().filter(|d| d.key == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one diagnostic about {key}, got: {diagnostics:#?}"
    );
    found[0]
}

const PROCESS_APP: &str = "  container-backend: process
  specs:
  - id: app
    container-cmd: [run, '{port}']
";

// ---------------------------------------------------------------------------------------------
// The seed's application.yml, copied verbatim.

#[test]
fn seed_loads_with_its_two_apps_and_groups() {
    let loaded = load_file(&fixture("seed-application.yml"), &no_env())
        .unwrap_or_else(|e| panic!("the seed must load:\n{e}"));
    let p = &loaded.config.proxy;
    assert_eq!(p.port, 8080);
    assert_eq!(p.authentication, AuthMethod::Simple);
    assert_eq!(p.container_backend, BackendKind::Kubernetes);
    assert_eq!(p.admin_groups, vec!["admins"]);
    assert_eq!(p.container_wait_time, Duration::from_secs(300));
    assert_eq!(p.heartbeat_rate, Duration::from_secs(10));
    assert_eq!(p.specs[0].heartbeat_timeout, Some(Duration::from_secs(300)));
    assert_eq!(p.title, "ShinyProxy");
    assert_eq!(p.landing_page, vestibule::config::LandingPage::Portal);
    assert_eq!(p.default_max_instances, Some(1));

    let names: Vec<_> = p.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["admin", "guest"]);
    assert_eq!(p.users[0].groups, vec!["admins"]);
    assert_eq!(p.users[1].groups, vec!["guest"]);
    assert!(matches!(p.users[0].password, PasswordSpec::Plain(_)));

    assert_eq!(p.specs.len(), 2);
    let demo = &p.specs[0];
    assert_eq!(demo.id, "00_demo_shiny_application");
    assert_eq!(demo.display_name, "Simple Shiny Application Demo");
    assert_eq!(demo.container_cmd, ["sh", "/usr/bin/shiny-server.sh"]);
    assert_eq!(
        demo.container_image.as_deref(),
        Some("<AWS账号ID>.dkr.ecr.cn-northwest-1.amazonaws.com.cn/shiny-application:v1")
    );
    assert_eq!(demo.port, 3838);
    let hello = &p.specs[1];
    assert_eq!(hello.id, "01_hello_shiny_application");
    assert_eq!(
        hello.container_cmd,
        ["R", "-e", "shinyproxy::run_01_hello()"]
    );
    for spec in &p.specs {
        assert_eq!(spec.access_groups, vec!["admins", "guest"]);
        assert_eq!(spec.heartbeat_timeout, Some(Duration::from_secs(300)));
        assert!(spec.stop_on_logout);
        assert_eq!(spec.max_instances, Some(1));
        assert!(spec.allows("guest", &["guest".into()], None));
        assert!(!spec.allows("eve", &["visitors".into()], None));
    }
}

#[test]
fn seed_warns_about_plain_passwords_only() {
    let loaded = load_file(&fixture("seed-application.yml"), &no_env()).unwrap();
    let shown: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let text = shown.join("\n");

    // The Kubernetes backend reads every setting under proxy.kubernetes.
    assert!(!text.contains("proxy.kubernetes"), "{text}");
    let k = &loaded.config.proxy.kubernetes;
    assert!(k.internal_networking);
    assert_eq!(k.url.as_deref(), Some("http://localhost:8001"));
    assert_eq!(k.namespace, "shiny");
    assert_eq!(k.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert!(k.image_pull_secrets.is_empty());
    // Both plain-text passwords, without the passwords themselves.
    let admin = about(&loaded.warnings, "proxy.users[0].password");
    assert_eq!((admin.line, admin.column), (7, 15));
    assert!(
        admin
            .message
            .contains("plain-text password for user 'admin'")
    );
    about(&loaded.warnings, "proxy.users[1].password");
    assert!(
        !text.contains("Admin@123") && !text.contains("Guest@123"),
        "{text}"
    );

    // Spring's upload limits and the log file are not worth a typo warning.
    assert!(!text.contains("multipart"), "{text}");
    assert_eq!(loaded.warnings.len(), 2 + 1, "{text}");
    about(&loaded.warnings, "logging.file");
}

// ---------------------------------------------------------------------------------------------
// A good config for the embedded process backend.

#[test]
fn process_fixture_loads_with_resolved_per_app_values() {
    let loaded = load_file(&fixture("process-apps.yml"), &no_env())
        .unwrap_or_else(|e| panic!("process-apps.yml must load:\n{e}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(
        c.source.as_deref(),
        Some(fixture("process-apps.yml").as_path())
    );
    assert!(c.server.secure_cookies);
    assert_eq!(c.server.management_port, Some(9090));
    let p = &c.proxy;
    assert_eq!(p.title, "Data apps");
    assert_eq!(p.bind_address.to_string(), "127.0.0.1");
    assert_eq!(p.container_backend, BackendKind::Process);
    assert_eq!(p.same_site_cookie, SameSite::Strict);
    assert_eq!(p.default_max_instances, Some(2));
    assert_eq!(p.max_total_instances, Some(20));
    assert_eq!(p.default_max_lifetime, Some(Duration::from_secs(8 * 3600)));
    assert!(matches!(p.users[0].password, PasswordSpec::Argon2(_)));
    assert!(matches!(p.users[1].password, PasswordSpec::Bcrypt(_)));
    assert_eq!(p.users[0].groups, vec!["admins", "analysts"]);
    assert!(p.is_admin("alice", &p.users[0].groups));

    let dash = p.spec("dash-demo").unwrap();
    assert_eq!(
        dash.container_cmd,
        ["python3", "-m", "dash_demo", "--port", "{port}"]
    );
    assert_eq!(dash.container_env["DEBUG"], "false");
    assert_eq!(dash.container_env["WORKERS"], "2");
    assert_eq!(dash.container_env["EMPTY"], "");
    assert_eq!(dash.heartbeat_timeout, None, "0 switches idle culling off");
    assert_eq!(dash.max_lifetime, Some(Duration::from_secs(8 * 3600)));
    assert_eq!(dash.max_instances, Some(2));
    assert!(dash.stop_on_logout);
    assert_eq!(
        dash.process_workdir.as_deref(),
        Some(Path::new("/srv/apps/dash"))
    );
    assert_eq!(dash.access_groups, vec!["analysts"]);

    let st = p.spec("streamlit.app").unwrap();
    assert_eq!(
        st.display_name, "streamlit.app",
        "display name defaults to the id"
    );
    assert_eq!(
        st.container_cmd,
        ["streamlit", "run", "app.py", "--server.port", "{port}"]
    );
    assert_eq!(st.heartbeat_timeout, Some(Duration::from_secs(120)));
    assert_eq!(st.max_instances, None, "-1 is unlimited");
    assert_eq!(st.max_lifetime, None, "-1 is no limit");
    assert!(!st.stop_on_logout);
    assert_eq!(st.access_users, vec!["bob"]);
}

#[test]
fn shinyproxy_defaults_apply_to_an_almost_empty_file() {
    let loaded = ok(&format!("proxy:\n{PROCESS_APP}"));
    let p = &loaded.config.proxy;
    assert_eq!(p.port, 8080);
    assert_eq!(p.bind_address.to_string(), "0.0.0.0");
    assert_eq!(p.title, "ShinyProxy");
    assert_eq!(p.authentication, AuthMethod::None);
    assert_eq!(p.container_wait_time, Duration::from_millis(20_000));
    assert_eq!(p.heartbeat_rate, Duration::from_millis(10_000));
    assert_eq!(
        p.specs[0].heartbeat_timeout,
        Some(Duration::from_millis(60_000))
    );
    assert_eq!(p.default_max_instances, Some(1));
    assert_eq!(p.max_total_instances, None);
    assert_eq!(p.default_max_lifetime, None);
    assert!(p.default_stop_proxy_on_logout && p.stop_proxies_on_shutdown);
    assert_eq!(p.same_site_cookie, SameSite::Lax);
    assert!(!loaded.config.server.secure_cookies);
    assert_eq!(loaded.config.server.management_port, None);
    let app = &p.specs[0];
    assert_eq!(app.port, 3838);
    assert_eq!(app.heartbeat_timeout, Some(Duration::from_secs(60)));
    assert_eq!(app.max_instances, Some(1));
}

#[test]
fn container_backend_defaults_to_docker_as_in_shinyproxy() {
    let loaded = ok("proxy:\n  specs:\n  - id: a\n    container-image: img\n");
    assert_eq!(loaded.config.proxy.container_backend, BackendKind::Docker);
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and keys not implemented yet: warnings.

#[test]
fn typo_key_warns_at_its_position_with_a_suggestion() {
    let loaded = load_file(&fixture("bad-typo.yml"), &no_env()).unwrap();
    let w = about(&loaded.warnings, "proxy.heartbeat-timout");
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!((w.line, w.column), (3, 3));
    assert_eq!(w.message, "unknown key; did you mean 'heartbeat-timeout'?");
    assert!(
        w.to_string()
            .ends_with("bad-typo.yml:3:3: warning: proxy.heartbeat-timout: unknown key; did you mean 'heartbeat-timeout'?"),
        "{w}"
    );
    // The misspelt key (5000) is not taken for the real one: the app keeps the default.
    assert_eq!(
        loaded.config.proxy.specs[0].heartbeat_timeout,
        Some(Duration::from_secs(60))
    );
}

#[test]
fn typos_are_found_inside_specs_and_users() {
    let loaded = ok("proxy:
  authentication: simple
  users:
  - name: a
    pasword: $2b$10$abcdefghijklmnopqrstuv
    password: $2b$10$abcdefghijklmnopqrstuv
  container-backend: process
  specs:
  - id: app
    container-cmd: [run]
    acess-groups: [x]
");
    let w = about(&loaded.warnings, "proxy.users[0].pasword");
    assert_eq!((w.line, w.column), (5, 5));
    assert!(w.message.contains("did you mean 'password'?"));
    let w = about(&loaded.warnings, "proxy.specs[0].acess-groups");
    assert_eq!((w.line, w.column), (11, 5));
    assert!(w.message.contains("did you mean 'access-groups'?"));
}

#[test]
fn key_far_from_any_known_key_is_unknown_without_a_suggestion() {
    let loaded = ok(&format!("proxy:\n  zebra: 1\n{PROCESS_APP}"));
    let w = about(&loaded.warnings, "proxy.zebra");
    assert!(w.message.starts_with("unknown key"), "{w}");
    assert!(!w.message.contains("did you mean"), "{w}");
}

#[test]
fn known_shinyproxy_keys_not_implemented_warn_and_are_ignored() {
    let loaded = ok(&format!(
        "proxy:
  docker:
    cert-path: /certs
{PROCESS_APP}    shiny-force-full-reload: true
"
    ));
    for key in [
        "proxy.docker.cert-path",
        "proxy.specs[0].shiny-force-full-reload",
    ] {
        let w = about(&loaded.warnings, key);
        assert_eq!(w.severity, Severity::Warning);
        assert!(
            w.message
                .contains("not implemented in vestibule yet and is ignored"),
            "{w}"
        );
    }
}

/// Every diagnostic of a load, whether it loaded or not.
fn diagnostics(loaded: Result<Loaded, ConfigError>) -> Vec<Diagnostic> {
    match loaded {
        Ok(l) => l.warnings,
        Err(e) => e.diagnostics,
    }
}

#[test]
fn every_shinyproxy_3_2_key_is_read_or_named_as_not_implemented_never_unknown() {
    let loaded = load_file(&fixture("shinyproxy-every-key.yml"), &no_env());
    let all = diagnostics(loaded);
    let unknown: Vec<_> = all
        .iter()
        .filter(|d| d.message.contains("unknown key"))
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    // The one error: the fixture names Kubernetes certificate files that are not here.
    let errors: Vec<_> = all
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.key.as_str())
        .collect();
    assert_eq!(errors, ["proxy.kubernetes.cert-path"]);
    for key in [
        "proxy.specs[0].shiny-force-full-reload",
        "proxy.webservice.groups-expression",
        "proxy.openid.client-authentication-method",
        "proxy.ms-graph",
        "app-namespaces",
    ] {
        let d = about(&all, key);
        assert_eq!(d.severity, Severity::Warning, "{d}");
        assert!(
            d.message.contains("not implemented in vestibule yet"),
            "{d}"
        );
    }
    // Keys vestibule reads stay silent.
    for key in [
        "proxy.usage-stats-micrometer-prefix",
        "proxy.log-as-json",
        "proxy.specs[1].scale-down-delay",
        "proxy.favicon-path",
        "proxy.notification-message",
        "proxy.hide-navbar",
        "proxy.template-groups",
        "proxy.specs[0].always-show-switch-instance",
        "proxy.default-always-switch-instance",
        "proxy.specs[0].template-group",
        "server.servlet.context-path",
        "proxy.specs[0].docker-ipc",
        "proxy.specs[0].docker-runtime",
        "proxy.specs[0].container-dns",
        "proxy.specs[0].docker-group-add",
        "proxy.specs[0].max-total-instances",
    ] {
        assert!(all.iter().all(|d| d.key != key), "{key}: {all:#?}");
    }
}

#[test]
fn shinyproxys_example_configs_have_no_unknown_key_and_load() {
    let dir = fixture("shinyproxy-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the examples folder")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11, "{files:?}");
    // 20-ecs-minimal takes its cluster from the environment.
    let ecs_env = env(&[
        ("CLUSTER_NAME", "c"),
        ("AWS_REGION", "eu-west-1"),
        ("SUBNET_0", "s0"),
        ("SUBNET_1", "s1"),
        ("SECURITY_GROUP", "sg"),
    ]);
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let loaded = load_file(file, &ecs_env);
        let ecs = name.starts_with("20-");
        let all = diagnostics(loaded);
        let unknown: Vec<_> = all
            .iter()
            .filter(|d| d.message.contains("unknown key"))
            .collect();
        assert!(unknown.is_empty(), "{name}: {unknown:#?}");
        let errors: Vec<_> = all
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if ecs {
            // vestibule has no ECS backend: that, and only that, stops this one.
            assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
            assert_eq!(errors[0].key, "proxy.containerBackend");
            assert!(
                errors[0]
                    .message
                    .contains("ecs backend (Amazon ECS) is not implemented in vestibule yet"),
                "{}",
                errors[0]
            );
        } else {
            assert!(errors.is_empty(), "{name}: {errors:#?}");
        }
    }
}

#[test]
fn thymeleaf_and_html_text_keeps_its_dollar_braces_while_other_values_need_the_variable() {
    let loaded = ok(&format!(
        "proxy:
  notification-message: '<b>${{when}}</b>'
  template-groups:
  - id: g
    properties:
      display-name: '${{title}}'
{PROCESS_APP}    description: 'Made by ${{team}}'
    template-group: g
    parameters:
      definitions:
      - id: v
        description: '${{v}}'
      value-sets:
      - values: {{v: [a]}}
      template: '<p th:text=\"${{appName}}\"></p>'
"
    ));
    assert_eq!(
        loaded.config.proxy.specs[0].description.as_deref(),
        Some("Made by ${team}")
    );
    let errs = errors(
        &format!("proxy:\n  title: '${{when}}'\n{PROCESS_APP}"),
        &no_env(),
    );
    assert!(
        about(&errs, "proxy.title")
            .message
            .contains("when is not set"),
        "{errs:#?}"
    );
}

#[test]
fn spring_boot_keys_are_read_or_accepted() {
    let loaded = ok(&format!(
        "proxy:
{PROCESS_APP}server:
  secure-cookies: true
  servlet:
    context-path: /apps
management:
  server:
    port: 9191
spring:
  servlet:
    multipart:
      max-file-size: 2GB
  application:
    name: portal
"
    ));
    assert!(loaded.config.server.secure_cookies);
    assert_eq!(loaded.config.server.management_port, Some(9191));
    assert_eq!(loaded.config.server.context_path, "/apps");
    let keys: Vec<_> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn relaxed_spellings_are_the_same_key_and_duplicates_are_errors() {
    let loaded = ok(&format!("proxy:\n  heartbeatTimeout: 5000\n{PROCESS_APP}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(
        loaded.config.proxy.specs[0].heartbeat_timeout,
        Some(Duration::from_secs(5))
    );

    let errs = errors(
        &format!("proxy:\n  port: 1\n  port: 2\n{PROCESS_APP}"),
        &no_env(),
    );
    let e = about(&errs, "proxy.port");
    assert_eq!((e.line, e.column), (3, 3));
    assert!(e.message.contains("given twice (first on line 2)"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Wrong values: errors.

#[test]
fn text_where_a_number_belongs_is_an_error_at_the_value() {
    let errs = errors(
        &format!("proxy:\n  heartbeat-rate: often\n{PROCESS_APP}"),
        &no_env(),
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.key, "proxy.heartbeat-rate");
    assert_eq!((e.line, e.column), (2, 19));
    assert_eq!(
        e.message,
        "expected a whole number (milliseconds), found the text 'often'"
    );
}

#[test]
fn every_error_in_a_file_is_reported() {
    let err = load_file(&fixture("bad-values.yml"), &no_env()).unwrap_err();
    let errs: Vec<_> = err
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();

    let port = about(&errs, "proxy.port");
    assert_eq!((port.line, port.column), (2, 9));
    assert!(port.message.contains("found the text 'eighty'"), "{port}");

    let auth = about(&errs, "proxy.authentication");
    assert_eq!((auth.line, auth.column), (3, 19));
    assert!(auth.message.contains("did you mean 'simple'?"), "{auth}");

    let bad_id = about(&errs, "proxy.specs[1].id");
    assert_eq!((bad_id.line, bad_id.column), (8, 9));
    assert!(bad_id.message.contains("letters, digits"), "{bad_id}");

    let dup = about(&errs, "proxy.specs[2].id");
    assert_eq!((dup.line, dup.column), (10, 9));
    assert!(
        dup.message
            .contains("'good' is used twice (also by proxy.specs[0])"),
        "{dup}"
    );

    let no_id = about(&errs, "proxy.specs[3]");
    assert_eq!(no_id.line, 12);
    assert!(no_id.message.contains("no id"), "{no_id}");

    let no_cmd = about(&errs, "proxy.specs[4]");
    assert!(no_cmd.message.contains("has no container-cmd"), "{no_cmd}");
    let port = about(&errs, "proxy.specs[4].port");
    assert_eq!((port.line, port.column), (15, 11));
    assert!(port.message.contains("between 1 and 65535"), "{port}");

    assert_eq!(errs.len(), 7, "{err}");
    // Displayed one per line, in file order.
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), err.diagnostics.len());
    assert!(
        shown
            .lines()
            .next()
            .unwrap()
            .contains("bad-values.yml:2:9: error: proxy.port:")
    );
}

#[test]
fn negative_port_is_an_error() {
    let errs = errors(&format!("proxy:\n  port: -80\n{PROCESS_APP}"), &no_env());
    let e = about(&errs, "proxy.port");
    assert_eq!((e.line, e.column), (2, 9));
    assert_eq!(
        e.message,
        "a port must be between 0 and 65535, found the number '-80'"
    );
}

#[test]
fn unknown_authentication_is_an_error_with_a_suggestion() {
    let errs = errors(
        &format!("proxy:\n  authentication: ldpa\n{PROCESS_APP}"),
        &no_env(),
    );
    let e = about(&errs, "proxy.authentication");
    assert_eq!((e.line, e.column), (2, 19));
    assert!(
        e.message
            .starts_with("unknown value 'ldpa'; did you mean 'ldap'?"),
        "{e}"
    );
}

#[test]
fn authentication_methods_not_implemented_are_errors() {
    let errs = errors(
        &format!("proxy:\n  authentication: kerberos\n{PROCESS_APP}"),
        &no_env(),
    );
    let e = about(&errs, "proxy.authentication");
    assert!(e.message.contains("does not implement yet"), "{e}");
    assert!(e.message.contains("unprotected"), "{e}");
}

#[test]
fn container_backends() {
    for (written, kind) in [
        ("process", BackendKind::Process),
        ("docker", BackendKind::Docker),
        ("docker-swarm", BackendKind::DockerSwarm),
        ("kubernetes", BackendKind::Kubernetes),
    ] {
        let yaml = format!(
            "proxy:\n  container-backend: {written}\n  specs:\n  - id: a\n    container-image: i\n    container-cmd: [x]\n"
        );
        let loaded = load(&yaml, &no_env()).unwrap();
        assert_eq!(loaded.config.proxy.container_backend, kind);
    }
    let errs = errors("proxy:\n  container-backend: ecs\n", &no_env());
    assert!(
        about(&errs, "proxy.container-backend")
            .message
            .contains("not implemented in vestibule yet")
    );
    let errs = errors("proxy:\n  container-backend: kubernets\n", &no_env());
    assert!(
        about(&errs, "proxy.container-backend")
            .message
            .contains("did you mean 'kubernetes'?")
    );
}

#[test]
fn access_expressions_vestibule_cannot_evaluate_are_refused_rather_than_ignored() {
    let errs = errors(
        &format!(
            "proxy:\n{PROCESS_APP}    access-expression: \"#{{groups.?[#this == 'A'].size() == 1}}\"\n"
        ),
        &no_env(),
    );
    let e = about(&errs, "proxy.specs[0].access-expression");
    assert!(e.message.contains("not supported"), "{e}");
    let errs = errors(
        &format!("proxy:\n{PROCESS_APP}    access-expression: \"#{{user == 'a'}}\"\n"),
        &no_env(),
    );
    let e = about(&errs, "proxy.specs[0].access-expression");
    assert!(e.message.contains("did you mean 'userId'"), "{e}");
    ok(&format!(
        "proxy:\n{PROCESS_APP}    access-expression: \"#{{groups.size() == 1 ? true : userId matches 'a.*'}}\"\n"
    ));
}

#[test]
fn process_backend_needs_a_command_and_ignores_images_and_volumes() {
    let loaded = ok("proxy:
  container-backend: process
  specs:
  - id: app
    container-cmd: [run]
    container-image: rocker/shiny
    container-volumes: [\"/data:/data\"]
");
    let app = &loaded.config.proxy.specs[0];
    assert_eq!(app.container_image, None);
    assert!(app.container_volumes.is_empty());
    let w = about(&loaded.warnings, "proxy.specs[0].container-volumes");
    assert_eq!((w.line, w.column), (7, 24));
    assert!(w.message.contains("do not apply to local processes"), "{w}");
    about(&loaded.warnings, "proxy.specs[0].container-image");

    let errs = errors(
        "proxy:\n  container-backend: process\n  specs:\n  - id: app\n    container-cmd: []\n",
        &no_env(),
    );
    assert!(
        about(&errs, "proxy.specs[0].container-cmd")
            .message
            .contains("empty")
    );
}

#[test]
fn container_cmd_string_is_split_at_whitespace_unless_it_has_quotes() {
    let loaded = ok(
        "proxy:\n  container-backend: process\n  specs:\n  - id: a\n    container-cmd: R -e run()\n",
    );
    assert_eq!(
        loaded.config.proxy.specs[0].container_cmd,
        ["R", "-e", "run()"]
    );
    let errs = errors(
        "proxy:\n  container-backend: process\n  specs:\n  - id: a\n    container-cmd: R -e \"run()\"\n",
        &no_env(),
    );
    assert!(
        about(&errs, "proxy.specs[0].container-cmd")
            .message
            .contains("as a list")
    );
}

#[test]
fn expressions_that_cannot_be_evaluated_are_named_where_they_are_written() {
    let errs = errors(
        "proxy:
  specs:
  - id: app
    container-image: img
    container-volumes:
    - \"/data/#{proxy.userId}:/home/me\"
    - \"/data/#{proxy.userGroups}:/groups\"
    container-env:
      USER_NAME: \"#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}\"
",
        &no_env(),
    );
    let e = about(&errs, "proxy.specs[0].container-volumes[1]");
    assert_eq!((e.line, e.column), (7, 7));
    assert!(e.message.contains("proxy has no 'userGroups'"), "{e}");
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn group_lists_take_one_value_a_list_or_commas() {
    let loaded = ok(&format!(
        "proxy:\n  admin-groups: [a, b]\n  admin-users: x, y ,z\n{PROCESS_APP}    access-groups: solo\n"
    ));
    let p = &loaded.config.proxy;
    assert_eq!(p.admin_groups, vec!["a", "b"]);
    assert_eq!(p.admin_users, vec!["x", "y", "z"]);
    assert_eq!(p.specs[0].access_groups, vec!["solo"]);
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let err = load("proxy:\n  port: [8080\n  title: x\n", &no_env()).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    let d = &err.diagnostics[0];
    assert_eq!(d.severity, Severity::Error);
    assert!(d.line >= 2, "{d}");
    assert!(d.message.starts_with("this is not valid YAML"), "{d}");
}

// ---------------------------------------------------------------------------------------------
// Passwords.

#[test]
fn plain_passwords_warn_without_showing_the_password() {
    let loaded = ok(&format!(
        "proxy:
  authentication: simple
  users:
  - name: jo
    password: hunter2-secret
{PROCESS_APP}"
    ));
    let w = about(&loaded.warnings, "proxy.users[0].password");
    assert_eq!((w.line, w.column), (5, 15));
    assert!(
        w.message.contains("plain-text password for user 'jo'"),
        "{w}"
    );
    assert!(w.message.contains("vestibule hash-password"), "{w}");
    assert!(!format!("{:?}", loaded.warnings).contains("hunter2"));
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
}

#[test]
fn simple_authentication_without_users_is_an_error() {
    let errs = errors(
        &format!("proxy:\n  authentication: simple\n{PROCESS_APP}"),
        &no_env(),
    );
    let e = about(&errs, "proxy.users");
    assert_eq!(e.line, 2);
}

// ---------------------------------------------------------------------------------------------
// ${VAR} references.

#[test]
fn variables_are_substituted_before_types_are_checked() {
    let vars = env(&[
        ("PORT", "9001"),
        ("ADMIN_PW", "$2b$10$abcdefghijklmnopqrstuv"),
    ]);
    let loaded = load(
        &format!(
            "proxy:
  port: ${{PORT}}
  title: ${{TITLE:Our apps}}
  authentication: simple
  users:
  - name: admin
    password: ${{ADMIN_PW}}
{PROCESS_APP}"
        ),
        &vars,
    )
    .unwrap();
    let p = &loaded.config.proxy;
    assert_eq!(p.port, 9001);
    assert_eq!(p.title, "Our apps");
    assert!(matches!(p.users[0].password, PasswordSpec::Bcrypt(_)));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}

#[test]
fn missing_variable_is_an_error_naming_it_at_its_position() {
    let errs = errors(
        &format!("proxy:\n  title: x\n  port: ${{NO_SUCH_PORT}}\n{PROCESS_APP}"),
        &no_env(),
    );
    let e = about(&errs, "proxy.port");
    assert_eq!((e.line, e.column), (3, 9));
    assert!(
        e.message
            .starts_with("environment variable NO_SUCH_PORT is not set"),
        "{e}"
    );
}

#[test]
fn substituted_values_are_never_shown() {
    let vars = env(&[("PORT", "s3cret-value")]);
    let errs = errors(&format!("proxy:\n  port: ${{PORT}}\n{PROCESS_APP}"), &vars);
    let e = about(&errs, "proxy.port");
    assert_eq!((e.line, e.column), (2, 9));
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(e.message.contains("${...}"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// VESTIBULE_* overrides.

#[test]
fn overrides_change_the_port_and_a_spec_field() {
    let vars = env(&[
        ("VESTIBULE_PROXY__PORT", "9000"),
        (
            "VESTIBULE_PROXY__SPECS__1__DISPLAY_NAME",
            "Hello, overridden",
        ),
        ("VESTIBULE_PROXY__SPECS__0__ACCESS_GROUPS", "admins"),
        ("VESTIBULE_SERVER__SECURE_COOKIES", "true"),
        ("UNRELATED", "1"),
    ]);
    let loaded = load_file(&fixture("seed-application.yml"), &vars).unwrap();
    let p = &loaded.config.proxy;
    assert_eq!(p.port, 9000);
    assert_eq!(p.specs[1].display_name, "Hello, overridden");
    assert_eq!(p.specs[0].display_name, "Simple Shiny Application Demo");
    assert_eq!(p.specs[0].access_groups, vec!["admins"]);
    assert!(loaded.config.server.secure_cookies);
}

#[test]
fn overrides_apply_to_an_empty_document() {
    let vars = env(&[
        ("VESTIBULE_PROXY__CONTAINER_BACKEND", "process"),
        ("VESTIBULE_PROXY__SPECS__0__ID", "app"),
        (
            "VESTIBULE_PROXY__SPECS__0__CONTAINER_CMD",
            "run --port {port}",
        ),
        (
            "VESTIBULE_PROXY__SPECS__0__CONTAINER_ENV__API_URL",
            "http://api",
        ),
    ]);
    let loaded = load("", &vars).unwrap_or_else(|e| panic!("{e}"));
    let app = &loaded.config.proxy.specs[0];
    assert_eq!(app.id, "app");
    assert_eq!(app.container_cmd, ["run", "--port", "{port}"]);
    assert_eq!(app.container_env["API_URL"], "http://api");
}

#[test]
fn override_problems_name_the_variable_and_hide_the_value() {
    let vars = env(&[("VESTIBULE_PROXY__PORT", "not-a-port-secret")]);
    let errs = errors(&format!("proxy:\n{PROCESS_APP}"), &vars);
    let e = about(&errs, "proxy.port");
    assert_eq!((e.line, e.column), (0, 0));
    let shown = e.to_string();
    assert!(shown.contains("VESTIBULE_PROXY__PORT"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");

    let vars = env(&[("VESTIBULE_PROXY__HEARTBEAT_TIMOUT", "1")]);
    let loaded = load(&format!("proxy:\n{PROCESS_APP}"), &vars).unwrap();
    let w = about(&loaded.warnings, "proxy.heartbeat-timout");
    assert!(
        w.message.contains("did you mean 'heartbeat-timeout'?"),
        "{w}"
    );
    assert!(
        w.message.contains("VESTIBULE_PROXY__HEARTBEAT_TIMOUT"),
        "{w}"
    );
}

// ---------------------------------------------------------------------------------------------
// Container resources, privilege and labels.

const DOCKER_APP: &str = "proxy:
  container-backend: docker
  specs:
  - id: app
    container-image: example/app:1
";

#[test]
fn container_resources_are_read_in_docker_and_kubernetes_units() {
    let loaded = ok(&format!(
        "{DOCKER_APP}    container-memory-request: 512Mi
    container-memory-limit: 2g
    container-cpu-request: 250m
    container-cpu-limit: 1.5
    container-privileged: true
    labels:
      team: finance
      tier: 2
"
    ));
    let c = &loaded.config.proxy.specs[0].container;
    assert_eq!(c.memory_request.as_ref().map(|q| q.bytes), Some(512 << 20));
    assert_eq!(c.memory_limit.as_ref().map(|q| q.bytes), Some(2 << 30));
    assert_eq!(c.cpu_request.as_ref().map(|q| q.millicpus), Some(250));
    assert_eq!(c.cpu_limit.as_ref().map(|q| q.millicpus), Some(1500));
    assert!(c.privileged);
    assert_eq!(c.labels.get("tier").map(String::as_str), Some("2"));
}

#[test]
fn a_bad_memory_size_is_an_error_at_its_position() {
    let errs = errors(
        &format!("{DOCKER_APP}    container-memory-limit: 2 lots\n"),
        &no_env(),
    );
    let e = about(&errs, "proxy.specs[0].container-memory-limit");
    assert_eq!((e.line, e.column), (6, 29), "{e}");
    assert!(e.message.contains("unknown size unit 'lots'"), "{e}");
}

#[test]
fn a_request_above_its_limit_is_an_error() {
    let errs = errors(
        &format!("{DOCKER_APP}    container-memory-request: 4g\n    container-memory-limit: 1g\n"),
        &no_env(),
    );
    let e = about(&errs, "proxy.specs[0].container-memory-request");
    assert!(e.message.contains("larger than the limit"), "{e}");
}

#[test]
fn container_resources_are_ignored_with_a_warning_for_local_processes() {
    let loaded = ok(&format!(
        "proxy:\n{PROCESS_APP}    container-memory-limit: 1g\n"
    ));
    let w = about(&loaded.warnings, "proxy.specs[0].container-memory-limit");
    assert!(w.message.contains("ignored"), "{w}");
    assert_eq!(loaded.config.proxy.specs[0].container.memory_limit, None);
}

#[test]
fn http_headers_are_read_and_bad_ones_named_at_their_line() {
    let yaml = "proxy:\n  container-backend: process\n  specs:\n  - id: a\n    container-cmd: [\"x\"]\n    add-default-http-headers: false\n    http-headers:\n      X-Team: data-#{proxy.userId}\n      Bad Name: x\n";
    let Err(err) = load_str(Path::new("h.yml"), yaml, &no_env()) else {
        panic!("a header name with a space must be refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("h.yml:9:7") && err.contains("not a valid HTTP header name"),
        "{err}"
    );
    let good = yaml.replace("      Bad Name: x\n", "");
    let loaded = load_str(Path::new("h.yml"), &good, &no_env()).expect("loads");
    let spec = &loaded.config.proxy.specs[0];
    assert!(!spec.add_default_http_headers);
    assert_eq!(spec.http_headers["X-Team"], "data-#{proxy.userId}");
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.to_string().contains("http-headers")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn forwarding_headers_are_believed_only_from_the_proxies_the_file_trusts() {
    let none = ok(&format!("proxy:\n{PROCESS_APP}"));
    assert!(
        none.config.server.trusted_proxies.is_empty(),
        "nobody by default"
    );

    let native = ok(&format!(
        "server:\n  forward-headers-strategy: NATIVE\nproxy:\n{PROCESS_APP}"
    ));
    let trusted = &native.config.server.trusted_proxies;
    assert!(
        trusted
            .iter()
            .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()))
    );
    assert!(
        !trusted
            .iter()
            .any(|n| n.contains(&"8.8.8.8".parse::<std::net::IpAddr>().unwrap()))
    );

    // vestibule's own list replaces the private ranges.
    let listed = ok(&format!(
        "server:\n  forward-headers-strategy: native\nproxy:\n  trusted-proxies: [192.0.2.10, 198.51.100.0/24]\n{PROCESS_APP}"
    ));
    assert_eq!(
        listed
            .config
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        ["192.0.2.10/32", "198.51.100.0/24"]
    );

    let errs = errors(
        &format!(
            "server:\n  forward-headers-strategy: sometimes\nproxy:\n  trusted-proxies: [lb.example]\n{PROCESS_APP}"
        ),
        &no_env(),
    );
    let said: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    assert!(
        said.iter()
            .any(|d| d.contains(":4:20:") && d.contains("lb.example")),
        "{said:#?}"
    );
    // The strategy is not consulted once the list is given; alone, a bad one is named.
    let errs = errors(
        &format!("server:\n  forward-headers-strategy: sometimes\nproxy:\n{PROCESS_APP}"),
        &no_env(),
    );
    assert!(
        errs.iter()
            .any(|d| d.line == 2 && d.to_string().contains("native, framework or none")),
        "{errs:#?}"
    );
}

#[test]
fn tls_and_usage_settings_that_cannot_be_honoured_are_errors_with_their_place() {
    let found = errors(
        "proxy:
  container-backend: process
  usage-stats-url: jdbc:mysql://db/stats
server:
  ssl:
    key-store: /etc/server.p12
    client-auth: need
",
        &no_env(),
    );
    let ssl = about(&found, "server.ssl.client-auth");
    assert_eq!(ssl.line, 7, "{ssl}");
    assert!(ssl.message.contains("client certificates"), "{ssl}");
    let usage = about(&found, "proxy.usage-stats-url");
    assert_eq!(usage.line, 3, "{usage}");
    assert!(usage.message.contains("PostgreSQL"), "{usage}");
}
