//! `proxy.specs[]`: the apps. Per-app limits are resolved here against the proxy's defaults, so
//! the runtime reads one value per app.

use super::check::{limit, minutes, optional_millis};
use super::check_container::{check_container, text_map};
use super::check_docker::check_docker_spec;
use super::convert::{self, Fields};
use super::keys::canonical;
use super::model::{AppSpec, BackendKind};
use super::node::{At, Node, Value};
use super::report::{Report, child, index};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// The proxy-wide values a spec falls back to.
pub struct SpecDefaults {
    pub backend: BackendKind,
    pub heartbeat_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub stop_on_logout: bool,
    pub max_instances: Option<u32>,
    pub track_app_url: bool,
    pub always_show_switch_instance: bool,
}

pub fn check_specs(proxy: &Fields, defaults: &SpecDefaults, report: &mut Report) -> Vec<AppSpec> {
    let Some((node, path)) = proxy.get("specs") else {
        report.warn(
            &At::file(0, 0),
            "proxy.specs",
            "no apps are configured, so users will find nothing to open",
        );
        return Vec::new();
    };
    let Value::Seq(items) = &node.value else {
        report.error(
            &node.at,
            &path,
            format!(
                "expected a list of apps ('- id: ...'), found {}",
                node.describe()
            ),
        );
        return Vec::new();
    };
    let mut specs = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some((spec, id_at, id_path)) = check_spec(item, &item_path, defaults, report) else {
            continue;
        };
        if let Some(first) = seen.insert(spec.id.clone(), item_path.clone()) {
            report.error(
                &id_at,
                &id_path,
                format!(
                    "app id '{}' is used twice (also by {first}); ids must be unique",
                    spec.id
                ),
            );
        }
        specs.push(spec);
    }
    specs
}

fn check_spec(
    item: &Node,
    path: &str,
    defaults: &SpecDefaults,
    report: &mut Report,
) -> Option<(AppSpec, At, String)> {
    let f = Fields::of(Some(item), path, report);
    if !matches!(item.value, Value::Map(_)) {
        // Fields::of has said what is wrong; "no id" and the like would only repeat it.
        return None;
    }
    let id = check_id(&f, item, path, report);
    let process = defaults.backend == BackendKind::Process;

    if let Value::Map(entries) = &item.value {
        for e in entries {
            // Access expressions are compiled by check_access; `#{...}` there is the rule.
            let rule = canonical(&e.key).starts_with("access");
            if !rule {
                super::template::check(&e.value, &child(path, &e.key), report);
            }
        }
    }

    let container_cmd = command(&f, report);
    let mut container_image = f.text("container-image", report);
    let mut container_volumes = f
        .get("container-volumes")
        .and_then(|(n, p)| convert::plain_list(n, &p, report))
        .unwrap_or_default();
    let process_workdir = f.text("process-workdir", report).map(PathBuf::from);

    if process {
        match (f.get("container-cmd"), &container_cmd) {
            (None, _) => report.error(
                &item.at,
                path,
                format!(
                    "app '{}' has no container-cmd; with container-backend: process the \
                     command is what runs the app",
                    id.as_deref().unwrap_or("?")
                ),
            ),
            (Some((n, p)), Some(cmd)) if cmd.is_empty() => report.error(
                &n.at,
                &p,
                "container-cmd is empty; with container-backend: process the command is what \
                 runs the app",
            ),
            _ => {}
        }
        if let Some((n, p)) = f.get("container-image") {
            report.warn(
                &n.at,
                &p,
                "container-image is ignored with container-backend: process (the app runs as a \
                 local process)",
            );
            container_image = None;
        }
        if let Some((n, p)) = f.get("container-volumes") {
            report.warn(
                &n.at,
                &p,
                "container-volumes do not apply to local processes (container-backend: process) \
                 and are ignored",
            );
            container_volumes.clear();
        }
    } else {
        if container_image.is_none() && f.get("external-url").is_none() {
            report.error(
                &item.at,
                path,
                format!(
                    "app '{}' has no container-image, so there is nothing to run",
                    id.as_deref().unwrap_or("?")
                ),
            );
        }
        if let Some((n, p)) = f.get("process-workdir") {
            report.warn(
                &n.at,
                &p,
                "process-workdir is only used with container-backend: process; ignored",
            );
        }
    }

    let sharing = super::check_pool::check_sharing(&f, report);
    if (sharing.pool.is_some() || sharing.seats.is_some())
        && let Some((n, p)) = f.get("parameters")
    {
        report.error(
            &n.at,
            &p,
            "a shared app (pool or seats) has one set of instances for everyone, so it cannot \
             take each user's parameters",
        );
    }
    let spec = AppSpec {
        display_name: f
            .text("display-name", report)
            .or_else(|| id.clone())
            .unwrap_or_default(),
        description: f.text("description", report),
        logo_url: f.text("logo-url", report),
        logo: super::check_portal::app_logo(&f, "logo-", report),
        container_cmd: container_cmd.unwrap_or_default(),
        container_image,
        container_env: text_map(&f, "container-env", report),
        container: check_container(&f, process, report),
        kubernetes: super::check_kubernetes::check_spec_kubernetes(&f, report),
        docker: check_docker_spec(&f, process, report),
        container_volumes,
        port: f
            .get("port")
            .and_then(|(n, p)| convert::port(n, &p, false, report))
            .unwrap_or(3838),
        target_path: f.text("target-path", report).unwrap_or_default(),
        http_headers: http_headers(&f, report),
        add_default_http_headers: f
            .boolean("add-default-http-headers", report)
            .unwrap_or(true),
        access_groups: f.text_list("access-groups", report).unwrap_or_default(),
        access_users: f.text_list("access-users", report).unwrap_or_default(),
        access_expressions: super::check_access::check_access(&f, report),
        heartbeat_timeout: match f.int("heartbeat-timeout", "milliseconds", report) {
            Some(ms) => optional_millis(ms),
            None => defaults.heartbeat_timeout,
        },
        max_lifetime: minutes(&f, "max-lifetime", report).unwrap_or(defaults.max_lifetime),
        stop_on_logout: f
            .boolean("stop-on-logout", report)
            .unwrap_or(defaults.stop_on_logout),
        max_instances: limit(&f, "max-instances", report).unwrap_or(defaults.max_instances),
        max_total_instances: limit(&f, "max-total-instances", report).unwrap_or(None),
        process_workdir: if process { process_workdir } else { None },
        template_group: f.text("template-group", report),
        parameters: super::check_parameters::check_parameters(&f, report),
        track_app_url: f
            .boolean("track-app-url", report)
            .unwrap_or(defaults.track_app_url),
        always_show_switch_instance: f
            .boolean("always-show-switch-instance", report)
            .unwrap_or(defaults.always_show_switch_instance),
        favicon_path: f.text("favicon-path", report).map(PathBuf::from),
        pool: sharing.pool,
        public: sharing.public,
        api_only: sharing.api_only,
        seats: sharing.seats,
        id: id?,
    };
    let (id_at, id_path) = f
        .get("id")
        .map(|(n, p)| (n.at.clone(), p))
        .unwrap_or_else(|| (item.at.clone(), path.to_string()));
    Some((spec, id_at, id_path))
}

/// `http-headers`: names and values must be valid HTTP, or every request would fail later.
fn http_headers(f: &Fields, report: &mut Report) -> BTreeMap<String, super::Template> {
    let headers = text_map(f, "http-headers", report);
    let Some((node, path)) = f.get("http-headers") else {
        return BTreeMap::new();
    };
    let mut valid = BTreeMap::new();
    for (name, value) in headers {
        let at = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key == name)
                .map(|e| e.key_at.clone())
                .unwrap_or_else(|| node.at.clone()),
            _ => node.at.clone(),
        };
        let item = child(&path, &name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            report.error(&at, &item, "not a valid HTTP header name");
        } else if http::HeaderValue::from_str(&value).is_err() {
            report.error(
                &at,
                &item,
                "the value holds characters a header cannot carry",
            );
        } else {
            // A value that does not parse is reported by template::check.
            if let Ok(t) = super::Template::parse(&value) {
                valid.insert(name, t);
            }
        }
    }
    valid
}

fn check_id(f: &Fields, item: &Node, path: &str, report: &mut Report) -> Option<String> {
    let Some((node, id_path)) = f.get("id") else {
        report.error(
            &item.at,
            path,
            "this app has no id; every app needs an 'id'",
        );
        return None;
    };
    let id = convert::text(node, &id_path, report)?;
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        report.error(
            &node.at,
            &id_path,
            format!(
                "an app id may only hold letters, digits, '_', '.' and '-' (it becomes part of \
                 the app's URL); found {}",
                node.describe()
            ),
        );
        return None;
    }
    Some(id)
}

/// `container-cmd` as a list of arguments. A single string is split at whitespace, as a person
/// typing a command line expects; quotes would need a shell's rules, so a string holding quotes
/// must be written as a list instead.
fn command(f: &Fields, report: &mut Report) -> Option<Vec<String>> {
    let (node, path) = f.get("container-cmd")?;
    match &node.value {
        Value::Seq(_) => convert::plain_list(node, &path, report),
        Value::Str(s) if s.contains(['"', '\'', '\\']) => {
            report.error(
                &node.at,
                &path,
                "write a container-cmd with quotes as a list, one argument per item, e.g. \
                 [\"R\", \"-e\", \"shiny::runApp()\"]",
            );
            None
        }
        _ => convert::text(node, &path, report)
            .map(|t| t.split_whitespace().map(String::from).collect()),
    }
}
