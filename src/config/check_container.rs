//! The container keys of an app spec (`container-memory-limit`, `labels`, ...). They mean nothing
//! to local processes, so with the process backend they are reported as ignored.

use super::container::{ContainerSettings, CpuQuantity, MemoryQuantity};
use super::convert::{self, Fields};
use super::node::Value;
use super::report::{Report, child};
use std::collections::BTreeMap;

const RESOURCE_KEYS: [&str; 6] = [
    "container-memory-request",
    "container-memory-limit",
    "container-cpu-request",
    "container-cpu-limit",
    "container-privileged",
    "labels",
];

pub fn check_container(f: &Fields, process: bool, report: &mut Report) -> ContainerSettings {
    if process {
        for key in RESOURCE_KEYS {
            if let Some((n, p)) = f.get(key) {
                report.warn(
                    &n.at,
                    &p,
                    format!("{key} does not apply to local processes (container-backend: process) and is ignored"),
                );
            }
        }
        return ContainerSettings::default();
    }
    let settings = ContainerSettings {
        memory_request: quantity(f, "container-memory-request", MemoryQuantity::parse, report),
        memory_limit: quantity(f, "container-memory-limit", MemoryQuantity::parse, report),
        cpu_request: quantity(f, "container-cpu-request", CpuQuantity::parse, report),
        cpu_limit: quantity(f, "container-cpu-limit", CpuQuantity::parse, report),
        privileged: f.boolean("container-privileged", report).unwrap_or(false),
        labels: text_map(f, "labels", report),
    };
    if let (Some(req), Some(lim)) = (&settings.memory_request, &settings.memory_limit)
        && req.bytes > lim.bytes
        && let Some((n, p)) = f.get("container-memory-request")
    {
        report.error(
            &n.at,
            &p,
            format!(
                "the memory request ({}) is larger than the limit ({}), so no instance could start",
                req.text, lim.text
            ),
        );
    }
    if let (Some(req), Some(lim)) = (&settings.cpu_request, &settings.cpu_limit)
        && req.millicpus > lim.millicpus
        && let Some((n, p)) = f.get("container-cpu-request")
    {
        report.error(
            &n.at,
            &p,
            format!(
                "the CPU request ({}) is larger than the limit ({})",
                req.text, lim.text
            ),
        );
    }
    settings
}

fn quantity<T>(
    f: &Fields,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
    report: &mut Report,
) -> Option<T> {
    let (node, path) = f.get(key)?;
    let text = convert::text(node, &path, report)?;
    parse(&text)
        .map_err(|e| report.error(&node.at, &path, e))
        .ok()
}

/// A `NAME: value` mapping (`container-env`, `labels`): numbers and booleans are written out as
/// text, and an empty value is an empty string.
pub fn text_map(f: &Fields, key: &str, report: &mut Report) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let Some((node, path)) = f.get(key) else {
        return map;
    };
    let Value::Map(entries) = &node.value else {
        report.error(
            &node.at,
            &path,
            format!("expected 'NAME: value' lines, found {}", node.describe()),
        );
        return map;
    };
    for e in entries {
        let p = child(&path, &e.key);
        if e.value.is_null() {
            map.insert(e.key.clone(), String::new());
        } else if let Some(v) = convert::text(&e.value, &p, report) {
            map.insert(e.key.clone(), v);
        }
    }
    map
}
