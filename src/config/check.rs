//! From the tree to the checked runtime [`Config`], with ShinyProxy's defaults and units.
//!
//! Every reader reports its own problem and falls back to the default, so one pass finds all
//! problems; the caller discards the config when any of them is an error.

use super::check_docker::check_docker_settings;
use super::check_header::check_custom_header;
use super::check_ldap::check_ldap;
use super::check_openid::{check_oauth2, check_openid};
use super::check_specs::{SpecDefaults, check_specs};
use super::check_users::check_users;
use super::check_webservice::check_webservice;
use super::convert::{self, Fields};
use super::model::*;
use super::node::{Node, Value};
use super::report::Report;
use crate::spel::{Phase, Template};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn check(root: &Node, source: &Path, report: &mut Report) -> Config {
    let empty = Node::empty_map();
    let root = if matches!(root.value, Value::Map(_) | Value::Null) {
        root
    } else {
        report.error(
            &root.at,
            "",
            format!(
                "the file should be a mapping with a 'proxy:' section, found {}",
                root.describe()
            ),
        );
        &empty
    };
    let top = Fields::of(Some(root), "", report);
    let proxy = Fields::of(top.get("proxy").map(|(n, _)| n), "proxy", report);
    let server = Fields::of(top.get("server").map(|(n, _)| n), "server", report);
    let management = Fields::of(top.get("management").map(|(n, _)| n), "management", report);
    let management_server = Fields::of(
        management.get("server").map(|(n, _)| n),
        "management.server",
        report,
    );

    Config {
        source: Some(source.to_path_buf()),
        store: super::check_store::check_store(&top, &proxy, report),
        proxy: check_proxy(&proxy, report),
        server: ServerConfig {
            secure_cookies: server.boolean("secure-cookies", report).unwrap_or(false),
            management_port: management_server
                .get("port")
                .and_then(|(n, p)| convert::port(n, &p, true, report)),
            frame_options: super::check_browser::check_frame_options(&server, report),
            trusted_proxies: super::check_forwarding::check_trusted_proxies(
                &server, &proxy, report,
            ),
            context_path: context_path(&server, report),
        },
        ops: OpsConfig {
            usage_stats: super::check_usage::check_usage_stats(&proxy, report),
            log_as_json: super::check_logging::check_log_as_json(&proxy, report),
            tls: super::check_tls::check_tls(&server, report),
            container_logs: super::check_logging::check_container_logs(&proxy, report),
            masked: String::new(),
        },
    }
}

fn check_proxy(proxy: &Fields, report: &mut Report) -> ProxyConfig {
    let container_backend = backend(proxy, report);
    let authentication = authentication(proxy, report);
    let users = check_users(proxy, authentication, report);
    let openid = check_openid(proxy, authentication, report);
    let ldap = check_ldap(proxy, authentication, report);

    let heartbeat_timeout = proxy
        .int("heartbeat-timeout", "milliseconds", report)
        .map_or(Some(Duration::from_millis(60_000)), optional_millis);
    let default_max_lifetime = minutes(proxy, "default-proxy-max-lifetime", report).unwrap_or(None);
    let default_max_instances = limit(proxy, "default-max-instances", report).unwrap_or(Some(1));
    let default_stop_proxy_on_logout = proxy
        .boolean("default-stop-proxy-on-logout", report)
        .unwrap_or(true);

    let defaults = SpecDefaults {
        backend: container_backend,
        heartbeat_timeout,
        max_lifetime: default_max_lifetime,
        stop_on_logout: default_stop_proxy_on_logout,
        max_instances: default_max_instances,
        track_app_url: proxy
            .boolean("default-track-app-url", report)
            .unwrap_or(false),
        always_show_switch_instance: proxy
            .boolean("default-always-switch-instance", report)
            .unwrap_or(false),
    };
    let mut specs = check_specs(proxy, &defaults, report);
    let portal = super::check_portal::check_portal(proxy, report);
    for spec in &mut specs {
        if spec.logo_url.is_none() {
            spec.logo_url = portal.default_logo_url.clone();
        }
        spec.logo = std::mem::take(&mut spec.logo).or(&portal.default_logo);
    }

    ProxyConfig {
        title: proxy
            .expression("title", Phase::Page, report)
            .unwrap_or_else(|| Template::literal("ShinyProxy")),
        logo_url: proxy.expression("logo-url", Phase::Page, report),
        favicon_path: proxy.text("favicon-path", report).map(PathBuf::from),
        landing_page: portal.landing_page,
        hide_navbar: portal.hide_navbar,
        body_classes: proxy.text_list("body-classes", report).unwrap_or_default(),
        my_apps_mode: portal.my_apps_mode,
        notification_message: portal.notification_message,
        template_groups: portal.template_groups,
        port: proxy
            .get("port")
            .and_then(|(n, p)| convert::port(n, &p, true, report))
            .unwrap_or(8080),
        bind_address: bind_address(proxy, report),
        authentication,
        admin_groups: proxy.text_list("admin-groups", report).unwrap_or_default(),
        admin_users: proxy.text_list("admin-users", report).unwrap_or_default(),
        users,
        ldap,
        custom_header: check_custom_header(proxy, report),
        webservice: check_webservice(proxy, authentication, report),
        container_backend,
        container_wait_time: positive_millis(proxy, "container-wait-time", 20_000, report),
        seat_wait_time: super::check_pool::seat_wait_time(proxy, report),
        heartbeat_rate: positive_millis(proxy, "heartbeat-rate", 10_000, report),
        default_max_instances,
        max_total_instances: limit(proxy, "max-total-instances", report).unwrap_or(None),
        default_max_lifetime,
        default_stop_proxy_on_logout,
        stop_proxies_on_shutdown: proxy
            .boolean("stop-proxies-on-shutdown", report)
            .unwrap_or(true),
        recover_running_proxies: proxy
            .boolean("recover-running-proxies", report)
            .unwrap_or(false),
        docker: check_docker_settings(proxy, report),
        process: super::check_process::check_process_settings(proxy, report),
        allowed_origins: super::check_browser::check_allowed_origins(proxy, report),
        app_domain: super::check_browser::check_app_domain(proxy, report),
        connections: super::check_connections::check_connection_limits(proxy, report),
        reload: super::check_reload::check_reload(proxy, report),
        same_site_cookie: same_site(proxy, report),
        kubernetes: super::check_kubernetes::check_kubernetes(proxy, report),
        specs,
        openid,
        oauth2: check_oauth2(proxy, report),
        saml: super::check_saml::check_saml(proxy, authentication, report),
    }
}

fn authentication(proxy: &Fields, report: &mut Report) -> AuthMethod {
    const KNOWN: &[&str] = &[
        "none",
        "simple",
        "ldap",
        "openid",
        "saml",
        "webservice",
        "customHeader",
        "header",
        "kerberos",
    ];
    let Some((node, path)) = proxy.get("authentication") else {
        return AuthMethod::None;
    };
    match convert::choice(node, &path, KNOWN, report) {
        Some("none") | None => AuthMethod::None,
        Some("simple") => AuthMethod::Simple,
        Some("openid") => AuthMethod::OpenId,
        Some("ldap") => AuthMethod::Ldap,
        Some("customHeader" | "header") => AuthMethod::CustomHeader,
        Some("webservice") => AuthMethod::Webservice,
        Some("saml") => AuthMethod::Saml,
        Some(other) => {
            report.error(
                &node.at,
                &path,
                format!(
                    "authentication '{other}' is a ShinyProxy method that vestibule does not \
                     implement yet; serving the apps without it would leave them unprotected \
                     (implemented: none, simple, ldap, openid, saml, customHeader, webservice)"
                ),
            );
            AuthMethod::None
        }
    }
}

fn backend(proxy: &Fields, report: &mut Report) -> BackendKind {
    const KNOWN: &[&str] = &["process", "docker", "docker-swarm", "kubernetes", "ecs"];
    // ShinyProxy's default, kept so that its configs mean the same here.
    let Some((node, path)) = proxy.get("container-backend") else {
        return BackendKind::Docker;
    };
    match convert::choice(node, &path, KNOWN, report) {
        Some("process") => BackendKind::Process,
        Some("docker-swarm") => BackendKind::DockerSwarm,
        Some("kubernetes") => BackendKind::Kubernetes,
        Some("ecs") => {
            report.error(
                &node.at,
                &path,
                "the ecs backend (Amazon ECS) is not implemented in vestibule yet; \
                 implemented: process, docker, docker-swarm, kubernetes",
            );
            BackendKind::Docker
        }
        Some(_) | None => BackendKind::Docker,
    }
}

fn same_site(proxy: &Fields, report: &mut Report) -> SameSite {
    let Some((node, path)) = proxy.get("same-site-cookie") else {
        return SameSite::Lax;
    };
    match convert::choice(node, &path, &["Lax", "Strict", "None"], report) {
        Some("Strict") => SameSite::Strict,
        Some("None") => SameSite::None,
        _ => SameSite::Lax,
    }
}

/// `server.servlet.context-path`: `/sp/` and `/sp` are both `/sp`; `/` is none.
fn context_path(server: &Fields, report: &mut Report) -> String {
    let servlet = Fields::of(
        server.get("servlet").map(|(n, _)| n),
        "server.servlet",
        report,
    );
    let Some((node, path)) = servlet.get("context-path") else {
        return String::new();
    };
    let Some(text) = convert::text(node, &path, report) else {
        return String::new();
    };
    let trimmed = text.trim_end_matches('/');
    let valid = trimmed.is_empty()
        || (trimmed.starts_with('/')
            && trimmed[1..]
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b)));
    if !valid {
        report.error(
            &node.at,
            &path,
            format!("'{text}' is not a path to serve under: write it like /shinyproxy"),
        );
        return String::new();
    }
    trimmed.to_string()
}

fn bind_address(proxy: &Fields, report: &mut Report) -> IpAddr {
    let default = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let Some((node, path)) = proxy.get("bind-address") else {
        return default;
    };
    let Some(text) = convert::text(node, &path, report) else {
        return default;
    };
    if text.trim().eq_ignore_ascii_case("localhost") {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    }
    text.trim().parse().unwrap_or_else(|_| {
        report.error(
            &node.at,
            &path,
            format!(
                "expected an IP address such as 0.0.0.0 or 127.0.0.1, found {}",
                node.describe()
            ),
        );
        default
    })
}

/// A duration in milliseconds that must be positive.
fn positive_millis(fields: &Fields, name: &str, default_ms: u64, report: &mut Report) -> Duration {
    let Some((node, path)) = fields.get(name) else {
        return Duration::from_millis(default_ms);
    };
    match convert::int(node, &path, "milliseconds", report) {
        Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
        Some(_) => {
            report.error(
                &node.at,
                &path,
                format!(
                    "must be more than 0 milliseconds, found {}",
                    node.describe()
                ),
            );
            Duration::from_millis(default_ms)
        }
        None => Duration::from_millis(default_ms),
    }
}

/// ShinyProxy's convention for timeouts: 0 or less switches them off.
pub fn optional_millis(ms: i64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms.unsigned_abs()))
}

/// A lifetime in minutes: `Some(None)` when switched off (-1, or any value of 0 or less).
pub fn minutes(fields: &Fields, name: &str, report: &mut Report) -> Option<Option<Duration>> {
    let (node, path) = fields.get(name)?;
    let m = convert::int(node, &path, "minutes", report)?;
    if m <= 0 {
        return Some(None);
    }
    match m.checked_mul(60) {
        Some(s) => Some(Some(Duration::from_secs(s.unsigned_abs()))),
        None => {
            report.error(&node.at, &path, "this many minutes is too long");
            None
        }
    }
}

/// A count where -1 means no limit: `Some(None)` for -1.
pub fn limit(fields: &Fields, name: &str, report: &mut Report) -> Option<Option<u32>> {
    let (node, path) = fields.get(name)?;
    let n = convert::int(node, &path, "a count", report)?;
    if n == -1 {
        return Some(None);
    }
    match u32::try_from(n) {
        Ok(n) => Some(Some(n)),
        Err(_) => {
            report.error(
                &node.at,
                &path,
                format!(
                    "expected a count of 0 or more, or -1 for no limit, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}
