//! `#{proxy.userId}` and `#{proxy.getRuntimeValue('NAME')}` in manifests and patches, evaluated
//! per instance (see `config::expressions` for what is supported).

use std::collections::BTreeMap;

/// Replaces the supported expressions in every string of `value`.
pub fn fill(value: &mut serde_json::Value, user: &str, env: &BTreeMap<String, String>) {
    match value {
        serde_json::Value::String(s) if s.contains("#{") => *s = fill_text(s, user, env),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| fill(v, user, env)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| fill(v, user, env)),
        _ => {}
    }
}

pub fn fill_text(text: &str, user: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        let expr = after[..end].trim();
        match evaluate(expr, user, env) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn evaluate(expr: &str, user: &str, env: &BTreeMap<String, String>) -> Option<String> {
    if expr == "proxy.userId" {
        return Some(user.to_string());
    }
    let arg = expr
        .strip_prefix("proxy.getRuntimeValue(")?
        .strip_suffix(')')?
        .trim()
        .trim_matches(['\'', '"']);
    env.get(arg).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_user_and_runtime_values() {
        let env = BTreeMap::from([("SHINYPROXY_USERNAME".to_string(), "ann".to_string())]);
        assert_eq!(
            fill_text(
                "home-#{proxy.userId}-#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}",
                "bob",
                &env
            ),
            "home-bob-ann"
        );
        assert_eq!(fill_text("#{other}", "bob", &env), "#{other}");
    }
}
