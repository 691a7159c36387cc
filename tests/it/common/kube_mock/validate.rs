//! The API server's validation: what a real one answers 422 Invalid for (names, labels, a pod
//! without containers).

use super::store::Refusal;
use serde_json::Value;

fn kind_of(resource: &str) -> &str {
    match resource {
        "pods" => "Pod",
        "services" => "Service",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "networkpolicies" => "NetworkPolicy",
        "events" => "Event",
        _ => "Object",
    }
}

/// RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends, at most 63.
fn dns_label(s: &str) -> bool {
    s.len() <= 63
        && !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// A label value (or a key's name part): at most 63 of [A-Za-z0-9._-], alphanumeric at both
/// ends; empty is allowed for values.
fn label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn label_key(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
    !name.is_empty() && label_value(name) && prefix.is_none_or(dns_subdomain)
}

pub fn object(resource: &str, object: &Value) -> Result<(), Refusal> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut wrong = Vec::new();
    let name_ok = match resource {
        // Services become DNS names: RFC 1035 labels, which start with a letter.
        "services" => dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
        _ => dns_subdomain(name),
    };
    if name.is_empty() {
        wrong.push("metadata.name: Required value: name or generateName is required".to_string());
    } else if !name_ok {
        wrong.push(format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.'"
        ));
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            if !label_key(k) {
                wrong.push(format!("metadata.labels: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"));
            }
            if !label_value(v) {
                wrong.push(format!("metadata.labels: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)"));
            }
        }
    }
    if resource == "pods" {
        let containers = object["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if containers.is_empty() {
            wrong.push("spec.containers: Required value".to_string());
        }
        for (i, c) in containers.iter().enumerate() {
            if !dns_label(c["name"].as_str().unwrap_or_default()) {
                wrong.push(format!(
                    "spec.containers[{i}].name: Invalid value: {}",
                    c["name"]
                ));
            }
            if c["image"].as_str().unwrap_or_default().trim().is_empty() {
                wrong.push(format!("spec.containers[{i}].image: Required value"));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err((
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {}",
                kind_of(resource),
                wrong.join(", ")
            ),
        ))
    }
}
