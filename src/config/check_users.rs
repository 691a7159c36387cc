//! `proxy.users[]`: the accounts of `authentication: simple`.
//!
//! No message here ever contains a password or a hash, only the user's name.

use super::convert::{self, Fields};
use super::model::{AuthMethod, PasswordSpec, UserEntry};
use super::node::Value;
use super::report::{Report, index};
use std::collections::HashMap;

pub fn check_users(proxy: &Fields, auth: AuthMethod, report: &mut Report) -> Vec<UserEntry> {
    let mut users = Vec::new();
    let list = proxy.get("users");
    if let Some((node, path)) = &list {
        match &node.value {
            Value::Seq(items) => {
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (i, item) in items.iter().enumerate() {
                    let item_path = index(path, i);
                    let Some(user) = check_user(item, &item_path, report) else {
                        continue;
                    };
                    if let Some(first) = seen.insert(user.name.clone(), i) {
                        report.error(
                            &item.at,
                            &item_path,
                            format!(
                                "user '{}' is listed twice (also at {})",
                                user.name,
                                index(path, first)
                            ),
                        );
                    }
                    users.push(user);
                }
            }
            _ => report.error(
                &node.at,
                path,
                format!(
                    "expected a list of users ('- name: ...'), found {}",
                    node.describe()
                ),
            ),
        }
    }
    let listed_any =
        matches!(list, Some((n, _)) if matches!(&n.value, Value::Seq(items) if !items.is_empty()));
    if auth == AuthMethod::Simple && !listed_any {
        let at = proxy
            .get("authentication")
            .map(|(n, _)| n.at.clone())
            .unwrap_or_else(|| super::node::At::file(0, 0));
        report.error(
            &at,
            "proxy.users",
            "authentication: simple needs at least one user in proxy.users, or nobody can log in",
        );
    }
    users
}

fn check_user(item: &super::node::Node, path: &str, report: &mut Report) -> Option<UserEntry> {
    let fields = Fields::of(Some(item), path, report);
    if !matches!(item.value, Value::Map(_)) {
        return None;
    }
    let name = fields.text("name", report);
    if name.is_none() && fields.get("name").is_none() {
        report.error(&item.at, path, "this user has no name");
    }
    let groups = fields.text_list("groups", report).unwrap_or_default();
    let password = match fields.get("password") {
        Some((node, pw_path)) => convert::text(node, &pw_path, report).map(|pw| {
            let spec = classify(pw);
            if matches!(spec, PasswordSpec::Plain(_)) {
                report.warn(
                    &node.at,
                    &pw_path,
                    format!(
                        "plain-text password for user '{}'; store a hash instead (make one \
                             with `vestibule hash-password`)",
                        name.as_deref().unwrap_or("?")
                    ),
                );
            }
            spec
        }),
        None => {
            report.error(
                &item.at,
                path,
                format!("user '{}' has no password", name.as_deref().unwrap_or("?")),
            );
            None
        }
    };
    Some(UserEntry {
        name: name?,
        password: password?,
        groups,
    })
}

/// Which kind of password a `password:` value is, from its prefix.
pub fn classify(written: String) -> PasswordSpec {
    if written.starts_with("$argon2") {
        PasswordSpec::Argon2(written)
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| written.starts_with(p))
    {
        PasswordSpec::Bcrypt(written)
    } else {
        PasswordSpec::Plain(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_prefix() {
        assert!(matches!(
            classify("$argon2id$v=19$m=19456,t=2,p=1$abc$def".into()),
            PasswordSpec::Argon2(_)
        ));
        assert!(matches!(
            classify("$2b$12$abc".into()),
            PasswordSpec::Bcrypt(_)
        ));
        assert!(matches!(
            classify("$2y$10$abc".into()),
            PasswordSpec::Bcrypt(_)
        ));
        assert!(matches!(
            classify("Admin@123".into()),
            PasswordSpec::Plain(_)
        ));
    }
}
