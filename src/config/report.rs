//! Collects the diagnostics of one load, so every problem is reported rather than the first.

use super::diagnostics::{Diagnostic, Severity};
use super::node::{At, Origin};
use std::path::{Path, PathBuf};

pub struct Report {
    file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
        }
    }

    pub fn error(&mut self, at: &At, key: &str, message: impl Into<String>) {
        self.push(Severity::Error, at, key, message.into());
    }

    pub fn warn(&mut self, at: &At, key: &str, message: impl Into<String>) {
        self.push(Severity::Warning, at, key, message.into());
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    fn push(&mut self, severity: Severity, at: &At, key: &str, mut message: String) {
        // An override has no line in the file; the variable's name is how the user finds it.
        if let Origin::Override(var) = &at.origin {
            message.push_str(&format!(" (set by environment variable {var})"));
        }
        let d = match severity {
            Severity::Error => Diagnostic::error(&self.file, at.line, at.column, key, message),
            Severity::Warning => Diagnostic::warning(&self.file, at.line, at.column, key, message),
        };
        self.diagnostics.push(d);
    }
}

/// Dotted key paths as users see them: `proxy.specs[1].container-cmd`.
pub fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
