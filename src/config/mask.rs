//! The config in effect as YAML for the admin console, with every secret masked. A value is
//! masked when its key (or a key above it) looks secret — passwords, client secrets, tokens,
//! keys — and when it came from the environment (`${VAR}`, `VESTIBULE_*` overrides): those are
//! how secrets are usually passed in, and nothing says which ones are. A URL's password
//! (`scheme://user:password@host`) is masked wherever it appears.

use std::fmt::Write;

use super::node::{Node, Origin, Value};

pub const MASK: &str = "******";
const FROM_ENV: &str = "****** (from the environment)";

/// The tree as YAML, secrets masked.
pub fn render(root: &Node) -> String {
    let mut out = String::new();
    node(&mut out, root, 0, false);
    out
}

/// Whether a key names a secret: one of its words (`client-secret`, `accessKey`,
/// `SHINY_DB_PASSWORD`) is a secret's word.
pub fn looks_secret(key: &str) -> bool {
    const WORDS: [&str; 10] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
    ];
    let lower = key.to_lowercase();
    if [
        "password",
        "secret",
        "token",
        "passphrase",
        "credential",
        "privatekey",
    ]
    .iter()
    .any(|w| lower.replace(['-', '_', '.'], "").contains(w))
    {
        return true;
    }
    words(key).iter().any(|w| WORDS.contains(&w.as_str()))
}

/// `clientSecret` → client, secret; `container-log-s3-access-key` → container, log, s3, …
fn words(key: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            out.push(String::new());
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(String::new());
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        if let Some(last) = out.last_mut() {
            last.extend(c.to_lowercase());
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

fn node(out: &mut String, n: &Node, indent: usize, secret: bool) {
    match &n.value {
        Value::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Value::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Value::Map(entries) => {
            out.push('\n');
            for e in entries {
                let _ = write!(out, "{:indent$}{}:", "", plain(&e.key));
                node(out, &e.value, indent + 2, secret || looks_secret(&e.key));
            }
        }
        Value::Seq(items) => {
            out.push('\n');
            for item in items {
                // A mapping in a list goes on the line after its dash, indented: the same YAML
                // as on the dash's line, and simpler to emit.
                let _ = write!(out, "{:indent$}-", "");
                node(out, item, indent + 2, secret);
            }
        }
        _ => {
            let _ = writeln!(out, " {}", scalar(n, secret));
        }
    }
}

fn scalar(n: &Node, secret: bool) -> String {
    if n.is_null() {
        return "null".into();
    }
    if secret {
        return MASK.into();
    }
    if !matches!(n.at.origin, Origin::File) {
        return FROM_ENV.into();
    }
    let text = n.scalar_text().unwrap_or_default();
    match n.value {
        Value::Str(_) => plain(&url_password_masked(&text)),
        _ => text,
    }
}

/// `https://user:pw@host/x` → `https://user:******@host/x`.
fn url_password_masked(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return text.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return text.to_string();
    };
    format!(
        "{}{}:{MASK}{}",
        &text[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// A string as YAML: as is when that reads back the same, else double-quoted.
fn plain(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./@${}():, ".contains(c))
        && !text.starts_with([' ', '-', '@', '{', '}', '$'])
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #");
    if safe {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised() {
        for k in [
            "password",
            "client-secret",
            "clientSecret",
            "container-log-s3-access-key",
            "container-log-s3-access-secret",
            "SHINY_DB_PASSWORD",
            "api-token",
            "key-store-password",
            "private-key",
            "usage-stats-password",
        ] {
            assert!(looks_secret(k), "{k}");
        }
        for k in [
            "port",
            "container-image",
            "keycloak-realm",
            "monkey",
            "title",
        ] {
            assert!(!looks_secret(k), "{k}");
        }
    }

    #[test]
    fn no_secret_survives_rendering() {
        let yaml = "proxy:\n  title: Hello\n  users:\n  - name: jack\n    password: hunter2pw\n  \
                    openid:\n    client-secret: oidcsecret9\n  usage-stats-url: \
                    jdbc:postgresql://u:dbpass77@db/x\n  specs:\n  - id: a\n    container-env:\n      \
                    DB_PASSWORD: envpass55\n      MODE: fast\n";
        let root = crate::config::node::parse(yaml).expect("yaml");
        let shown = render(&root);
        for secret in ["hunter2pw", "oidcsecret9", "dbpass77", "envpass55"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in ["Hello", "jack", "fast", "client-secret:", "u:******@db"] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
    }
}
