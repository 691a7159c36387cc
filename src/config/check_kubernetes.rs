//! `proxy.kubernetes.*` and the per-app `kubernetes-*` keys. ShinyProxy writes pod patches and
//! additional manifests as YAML text inside a string (`|` blocks); plain YAML structures are
//! accepted too.

use super::convert::{self, Fields};
use super::kubernetes::{KubernetesSettings, KubernetesSpecSettings, ServiceType};
use super::node::{Node, Value};
use super::report::{Report, index};
use std::collections::BTreeMap;
use std::time::Duration;

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const SERVICE_TYPES: &[&str] = &["NodePort", "ClusterIP"];

pub fn check_kubernetes(proxy: &Fields, report: &mut Report) -> KubernetesSettings {
    let k = Fields::of(
        proxy.get("kubernetes").map(|(n, _)| n),
        "proxy.kubernetes",
        report,
    );
    let defaults = KubernetesSettings::default();
    let mut secrets = k
        .text_list("image-pull-secrets", report)
        .unwrap_or_default();
    if let Some(one) = k
        .text("image-pull-secret", report)
        .filter(|s| !s.trim().is_empty())
    {
        secrets.insert(0, one);
    }
    let namespace = k
        .text("namespace", report)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(defaults.namespace);
    warn_namespaces_beyond_the_role(proxy, &namespace, report);
    KubernetesSettings {
        url: k.text("url", report).filter(|u| !u.trim().is_empty()),
        namespace,
        internal_networking: k.boolean("internal-networking", report).unwrap_or(false),
        service_type: match k
            .get("service-type")
            .and_then(|(n, p)| convert::choice(n, &p, SERVICE_TYPES, report))
        {
            Some("ClusterIP") => ServiceType::ClusterIp,
            _ => defaults.service_type,
        },
        cert_path: cert_path(&k, report),
        realm_id: proxy
            .text("realm-id", report)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(defaults.realm_id),
        image_pull_policy: k
            .get("image-pull-policy")
            .and_then(|(n, p)| convert::choice(n, &p, PULL_POLICIES, report).map(str::to_string)),
        image_pull_secrets: secrets,
        node_selector: node_selector(&k, report),
        pod_wait_time: match k.int("pod-wait-time", "milliseconds", report) {
            Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => defaults.pod_wait_time,
        },
    }
}

/// The shipped Role (deploy/kubernetes/base/role.yaml) is bound in `proxy.kubernetes.namespace`
/// only: an app whose pod patches put its pods elsewhere is refused there (403) unless the Role
/// and its RoleBinding are applied in that namespace too, and a namespace per user cannot be
/// covered by any Role applied in advance.
fn warn_namespaces_beyond_the_role(proxy: &Fields, namespace: &str, report: &mut Report) {
    let on_kubernetes = proxy
        .get("container-backend")
        .is_some_and(|(n, _)| matches!(&n.value, Value::Str(b) if b == "kubernetes"));
    let Some((specs, path)) = proxy.get("specs").filter(|_| on_kubernetes) else {
        return;
    };
    let Value::Seq(items) = &specs.value else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Map(entries) = &item.value else {
            continue;
        };
        let field = |key: &str| entries.iter().find(|e| e.key == key).map(|e| &e.value);
        let Some(patches) = field("kubernetes-pod-patches") else {
            continue;
        };
        let id = match field("id").map(|n| &n.value) {
            Some(Value::Str(id)) => id.clone(),
            _ => format!("#{i}"),
        };
        // Patches that do not parse are reported by check_spec_kubernetes.
        let json = match &patches.value {
            Value::Str(text) => serde_saphyr::from_str::<serde_json::Value>(text).ok(),
            _ => Some(to_json(patches)),
        };
        let Some(elsewhere) = json.as_ref().and_then(patched_namespace) else {
            continue;
        };
        let key = format!("{}.kubernetes-pod-patches", index(&path, i));
        if elsewhere.contains("#{") {
            report.warn(
                &patches.at,
                &key,
                format!(
                    "app '{id}' puts its pods in a namespace per user ('{elsewhere}'); vestibule's \
                     Role is bound in namespace '{namespace}' only and cannot be applied in \
                     namespaces not known in advance, so the API server will refuse its pods \
                     (403) unless vestibule's account is granted them another way"
                ),
            );
        } else if elsewhere != namespace {
            report.warn(
                &patches.at,
                &key,
                format!(
                    "app '{id}' puts its pods in namespace '{elsewhere}', but vestibule's Role \
                     (deploy/kubernetes/base/role.yaml) is bound in '{namespace}' only: apply \
                     that Role and RoleBinding in '{elsewhere}' too, or the API server refuses \
                     its pods (403)"
                ),
            );
        }
    }
}

/// The namespace the last `add`/`replace` of `/metadata/namespace` sets.
fn patched_namespace(patch: &serde_json::Value) -> Option<String> {
    patch
        .as_array()?
        .iter()
        .filter(|op| matches!(op["op"].as_str(), Some("add" | "replace")))
        .filter(|op| op["path"] == "/metadata/namespace")
        .filter_map(|op| op["value"].as_str())
        .next_back()
        .map(str::to_string)
}

/// The client-certificate directory; the three files must be there, or the server would fail
/// only at its first API call.
fn cert_path(k: &Fields, report: &mut Report) -> Option<std::path::PathBuf> {
    let (node, path) = k.get("cert-path")?;
    let dir = std::path::PathBuf::from(convert::text(node, &path, report)?);
    let missing: Vec<&str> = super::kubernetes::CERT_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Some(dir)
    } else {
        report.error(
            &node.at,
            &path,
            format!(
                "'{}' must hold ca.pem, cert.pem and key.pem; missing: {}",
                dir.display(),
                missing.join(", ")
            ),
        );
        None
    }
}

/// `NodeSize=m5.xlarge,zone=a` as ShinyProxy writes it, or a `key: value` mapping.
fn node_selector(k: &Fields, report: &mut Report) -> BTreeMap<String, String> {
    let Some((node, path)) = k.get("node-selector") else {
        return BTreeMap::new();
    };
    if matches!(node.value, Value::Map(_)) {
        return super::check_container::text_map(k, "node-selector", report);
    }
    let Some(text) = convert::text(node, &path, report) else {
        return BTreeMap::new();
    };
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                map.insert(key.trim().to_string(), value.trim().to_string());
            }
            _ => report.error(
                &node.at,
                &path,
                format!("expected key=value pairs separated by commas, found '{pair}'"),
            ),
        }
    }
    map
}

pub fn check_spec_kubernetes(f: &Fields, report: &mut Report) -> KubernetesSpecSettings {
    let pod_patches = f.get("kubernetes-pod-patches").and_then(|(node, path)| {
        let json = yaml_value(node, &path, report)?;
        serde_json::from_value::<json_patch::Patch>(json)
            .map_err(|e| {
                report.error(
                    &node.at,
                    &path,
                    format!("not an RFC 6902 JSON patch (a list of op/path/value): {e}"),
                )
            })
            .ok()
    });
    KubernetesSpecSettings {
        pod_patches,
        additional_manifests: manifests(f, "kubernetes-additional-manifests", report),
        persistent_manifests: manifests(f, "kubernetes-additional-persistent-manifests", report),
    }
}

fn manifests(f: &Fields, key: &str, report: &mut Report) -> Vec<serde_json::Value> {
    let Some((node, path)) = f.get(key) else {
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
    let mut out = Vec::new();
    for (item, item_path) in items {
        let Some(json) = yaml_value(item, &item_path, report) else {
            continue;
        };
        let named = json
            .pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| !n.is_empty());
        let typed = json.get("apiVersion").is_some() && json.get("kind").is_some();
        if named && typed {
            out.push(json);
        } else {
            report.error(
                &item.at,
                &item_path,
                "a manifest needs apiVersion, kind and metadata.name",
            );
        }
    }
    out
}

/// The value as JSON: a string is parsed as YAML text, a structure is taken as written.
fn yaml_value(node: &Node, path: &str, report: &mut Report) -> Option<serde_json::Value> {
    match &node.value {
        Value::Str(text) => serde_saphyr::from_str::<serde_json::Value>(text)
            .map_err(|e| {
                report.error(
                    &node.at,
                    path,
                    format!("this YAML text does not parse: {e}"),
                )
            })
            .ok(),
        _ => Some(to_json(node)),
    }
}

fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => J::from(*f),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}
