//! The design's layering, checked by reading the `crate::` paths of src/: which top-level module
//! may use which. The data path (proxy) and the file model (config) sit low; lifecycle drives
//! backends and writes the route table; web sits on top. A cycle or an import against the design
//! fails here before it spreads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Imports that go against the design, and why.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "proxy",
        "lifecycle",
        "the data path reads the route table, never the control plane",
    ),
    (
        "proxy",
        "backend",
        "the data path knows routes, not how instances run",
    ),
    (
        "config",
        "auth",
        "the file model is below login; access rules live in config::access",
    ),
    (
        "config",
        "lifecycle",
        "the file model is below everything that runs",
    ),
    (
        "config",
        "backend",
        "the file model is below everything that runs",
    ),
    (
        "config",
        "proxy",
        "the file model is below everything that runs",
    ),
    (
        "config",
        "web",
        "the file model is below everything that runs",
    ),
    (
        "backend",
        "lifecycle",
        "backends are drivers; lifecycle owns instance state",
    ),
    (
        "backend",
        "auth",
        "backends know nothing about users or logins",
    ),
    (
        "backend",
        "proxy",
        "backends know nothing about HTTP routing",
    ),
    ("backend", "web", "backends know nothing about HTTP"),
    (
        "auth",
        "lifecycle",
        "who the user is does not depend on what runs",
    ),
    (
        "auth",
        "backend",
        "who the user is does not depend on what runs",
    ),
    ("auth", "web", "login logic is below the pages that use it"),
    (
        "lifecycle",
        "web",
        "the control plane is below the pages that use it",
    ),
    ("clock", "*", "the clock is a leaf"),
    (
        "spel",
        "*",
        "the expression language is a leaf: callers hand it the values it may read",
    ),
];

/// The top-level module each file of src/ belongs to (`None` for the crate root files).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments (a path in a comment is no import).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // Not inside a string such as "http://…": good enough for src/, where URLs in
            // strings are never followed by `crate::`.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`, including each member of a
/// `use crate::{a::…, b::…}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// module → the other top-level modules it uses.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let uses = graph.entry(from.clone()).or_default();
        for to in crate_paths(&without_comments(&text)) {
            if to != from && modules.contains(&to) {
                uses.insert(to);
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn groups_and_paths_are_read_like_the_compiler_reads_them() {
    let code = "use crate::{auth::Identity, config::{self, AppSpec}};\nlet x = crate::clock::now();\n// crate::web is a comment";
    let found = crate_paths(&without_comments(code));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["auth", "clock", "config"]
    );
}

#[test]
fn the_modules_form_no_cycle() {
    let graph = dependency_graph();
    // The reader must see the edges the design has, or this test proves nothing.
    assert!(graph["web"].contains("lifecycle") && graph["lifecycle"].contains("backend"));
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn no_module_imports_against_the_design() {
    let graph = dependency_graph();
    let mut wrong = Vec::new();
    for (from, to, why) in FORBIDDEN {
        for used in graph.get(*from).into_iter().flatten() {
            if *to == "*" || used == to {
                wrong.push(format!("{from} uses {used}: {why}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
