//! A spec's `parameters` block, checked as ShinyProxy checks it at start-up (its messages), so
//! a value set that could never be chosen is found before a user meets it.

use std::collections::{BTreeMap, HashSet};

use super::access::{self, AccessExpressions};
use super::convert::{self, Fields};
use super::node::{Node, Value};
use super::parameters::{Definition, Parameters, ValueSet, ValueSetAccess};
use super::report::Report;

pub fn check_parameters(spec: &Fields, report: &mut Report) -> Option<Parameters> {
    let (node, path) = spec.get("parameters")?;
    let f = Fields::of(Some(node), &path, report);
    let definitions = definitions(&f, report);
    let value_sets = value_sets(&f, report);
    if let Some((n, p)) = f.get("template") {
        report.warn(
            &n.at,
            &p,
            "a Thymeleaf template for the parameters form is not run by vestibule; its own form \
             is shown",
        );
    }
    let params = Parameters {
        definitions,
        value_sets,
    };
    match problem(&params) {
        Some(why) => {
            report.error(&node.at, &path, why);
            None
        }
        None => Some(params),
    }
}

fn definitions(f: &Fields, report: &mut Report) -> Vec<Definition> {
    convert::list_items(f, "definitions", report)
        .into_iter()
        .map(|(item, p)| {
            let d = Fields::of(Some(item), &p, report);
            let value_names = convert::list_items(&d, "value-names", report)
                .into_iter()
                .filter_map(|(vn, vp)| {
                    let v = Fields::of(Some(vn), &vp, report);
                    Some((v.text("value", report)?, v.text("name", report)?))
                })
                .collect();
            Definition {
                id: d.text("id", report).unwrap_or_default(),
                display_name: d.text("display-name", report),
                description: d.text("description", report),
                default_value: d.text("default-value", report),
                value_names,
            }
        })
        .collect()
}

fn value_sets(f: &Fields, report: &mut Report) -> Vec<ValueSet> {
    convert::list_items(f, "value-sets", report)
        .into_iter()
        .map(|(item, p)| {
            let v = Fields::of(Some(item), &p, report);
            let values = match v.get("values") {
                Some((n, vp)) => value_lists(n, &vp, report),
                None => BTreeMap::new(),
            };
            ValueSet {
                name: v.text("name", report),
                access: set_access(&v, report),
                values,
            }
        })
        .collect()
}

/// `access-control: {groups, users, expression, strict-expression}`.
fn set_access(v: &Fields, report: &mut Report) -> ValueSetAccess {
    let Some((node, p)) = v.get("access-control") else {
        return ValueSetAccess::default();
    };
    let a = Fields::of(Some(node), &p, report);
    let mut expressions = AccessExpressions::default();
    for (key, strict) in [("expression", false), ("strict-expression", true)] {
        let Some((n, kp)) = a.get(key) else { continue };
        let Some(text) = convert::text(n, &kp, report) else {
            continue;
        };
        match access::compile_spel(&text) {
            Ok(rule) if strict => expressions.all.push(rule),
            Ok(rule) => expressions.any.push(rule),
            Err(e) => report.error(&n.at, &kp, convert::expression_error(&e)),
        }
    }
    ValueSetAccess {
        groups: a.text_list("groups", report).unwrap_or_default(),
        users: a.text_list("users", report).unwrap_or_default(),
        expressions,
    }
}

/// `values: {param: [a, b]}`; one value may be written without the list.
fn value_lists(node: &Node, path: &str, report: &mut Report) -> BTreeMap<String, Vec<String>> {
    let Value::Map(entries) = &node.value else {
        report.error(&node.at, path, "expected the values per parameter id");
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let p = format!("{path}.{}", e.key);
            let list = convert::text_list(&e.value, &p, report)?;
            Some((e.key.clone(), list))
        })
        .collect()
}

/// ShinyProxy's start-up checks of a parameters block, first problem first.
fn problem(p: &Parameters) -> Option<String> {
    if p.definitions.is_empty() {
        return Some("no definitions found".into());
    }
    if p.value_sets.is_empty() {
        return Some("no value sets found".into());
    }
    let mut ids = HashSet::new();
    for d in &p.definitions {
        if d.id.is_empty() {
            return Some("id of parameter may not be null".into());
        }
        if !ids.insert(d.id.as_str()) {
            return Some(format!("duplicate parameter id '{}'", d.id));
        }
        if !d
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Some(format!(
                "parameter id '{}' is invalid, id may only exists out of Latin letters, \
                 numbers, dash and underscore",
                d.id
            ));
        }
        let mut values = HashSet::new();
        let mut names = HashSet::new();
        for (v, n) in &d.value_names {
            if !values.insert(v) {
                return Some(format!(
                    "A ValueName mapping already contains a mapping for value \"{v}\""
                ));
            }
            if !names.insert(n) {
                return Some(format!(
                    "A ValueName mapping already contains a mapping with the name \"{n}\""
                ));
            }
        }
    }
    let defaults = p
        .definitions
        .iter()
        .filter(|d| d.default_value.is_some())
        .count();
    if defaults != 0 && defaults != p.definitions.len() {
        return Some(
            "not every parameter has a default value. Either define no defaults, or defaults \
             for all parameters."
                .into(),
        );
    }
    for (i, set) in p.value_sets.iter().enumerate() {
        for d in &p.definitions {
            let Some(values) = set.values.get(&d.id).filter(|v| !v.is_empty()) else {
                return Some(format!(
                    "value set {i} is missing values for parameter with id '{}'",
                    d.id
                ));
            };
            let distinct: HashSet<&String> = values.iter().collect();
            if distinct.len() != values.len() {
                return Some(format!(
                    "value set {i} contains some duplicate values for parameter {}",
                    d.id
                ));
            }
        }
        if set.values.len() > p.definitions.len() {
            return Some(format!(
                "value set {i} contains values for more parameters than there are defined"
            ));
        }
    }
    for d in &p.definitions {
        if let Some(default) = &d.default_value
            && !p
                .value_sets
                .iter()
                .any(|s| s.values.get(&d.id).is_some_and(|v| v.contains(default)))
        {
            return Some(format!(
                "default value for parameter with id '{}' is not defined in a value-set",
                d.id
            ));
        }
    }
    None
}
