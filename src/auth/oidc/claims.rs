//! From the provider's claims to vestibule's user name and groups.

use serde_json::{Map, Value};

/// A claim by name; a name that is not a key itself is read as a dotted path into nested
/// objects (`realm_access.roles`), so claims whose names contain dots still work.
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// The user name: a string claim (a number is accepted, as some providers use numeric ids).
pub fn username(claims: &Map<String, Value>, attribute: &str) -> Option<String> {
    match lookup(claims, attribute)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Groups from the roles claim: a list of names, or one comma-separated string. A missing
/// claim means no groups (the user still logs in and sees the apps open to everyone).
pub fn roles(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    match lookup(claims, claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => split(s),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn roles_come_as_a_list_a_string_or_a_nested_path() {
        let c = claims(json!({
            "groups": ["a", "b"],
            "csv": "a, b,,c",
            "realm_access": {"roles": ["x", "y"]},
            "dotted.name": ["d"],
        }));
        assert_eq!(roles(&c, "groups"), ["a", "b"]);
        assert_eq!(roles(&c, "csv"), ["a", "b", "c"]);
        assert_eq!(roles(&c, "realm_access.roles"), ["x", "y"]);
        assert_eq!(roles(&c, "dotted.name"), ["d"]);
        assert!(roles(&c, "missing.path").is_empty());
    }

    #[test]
    fn the_user_name_must_be_a_non_empty_value() {
        let c = claims(json!({"email": "a@b.c", "empty": " ", "id": 42, "obj": {}}));
        assert_eq!(username(&c, "email").as_deref(), Some("a@b.c"));
        assert_eq!(username(&c, "id").as_deref(), Some("42"));
        assert_eq!(username(&c, "empty"), None);
        assert_eq!(username(&c, "obj"), None);
        assert_eq!(username(&c, "nope"), None);
    }
}
