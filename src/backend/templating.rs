//! `#{proxy.userId}` and `#{proxy.getRuntimeValue('NAME')}` inside app settings (volumes,
//! manifests, pod patches), evaluated per instance. `config::expressions` says at load time which
//! expressions are supported; here they are filled in.

use std::collections::BTreeMap;

/// Replaces the supported expressions in every string of `value`; others are left as written.
pub fn fill(value: &mut serde_json::Value, user: &str, env: &BTreeMap<String, String>) {
    match value {
        serde_json::Value::String(s) if s.contains("#{") => *s = fill_text(s, user, env),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| fill(v, user, env)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| fill(v, user, env)),
        _ => {}
    }
}

/// Replaces the supported expressions in `text`; others are left as written.
pub fn fill_text(text: &str, user: &str, env: &BTreeMap<String, String>) -> String {
    let filled: Result<String, String> = fill_with(text, |expr| {
        Ok(evaluate(expr, user, env).unwrap_or_else(|| format!("#{{{expr}}}")))
    });
    filled.unwrap_or_else(|_| text.to_string())
}

/// `text` as a `HOST:CONTAINER[:mode]` volume: every expression must evaluate, and to a value
/// that cannot climb out of, or reach across, the folder the config names, nor add a mount
/// option. A user name becomes part of a host path here.
pub fn fill_volume(
    text: &str,
    user: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    fill_with(text, |expr| {
        let value = evaluate(expr, user, env)
            .ok_or_else(|| format!("cannot evaluate #{{{expr}}} in volume '{text}'"))?;
        let unsafe_path = value.is_empty()
            || value == "."
            || value.contains("..")
            || value.contains(['/', '\\', ':', '\0']);
        if unsafe_path {
            return Err(format!(
                "the value of #{{{expr}}} ({value:?}) cannot be used in a volume path"
            ));
        }
        Ok(value)
    })
}

fn fill_with(
    text: &str,
    mut value_of: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&value_of(after[..end].trim())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("SHINYPROXY_USERNAME".to_string(), "ann".to_string())])
    }

    #[test]
    fn fills_user_and_runtime_values() {
        assert_eq!(
            fill_text(
                "home-#{proxy.userId}-#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}",
                "bob",
                &env()
            ),
            "home-bob-ann"
        );
        assert_eq!(fill_text("#{other}", "bob", &env()), "#{other}");
        assert_eq!(fill_text("open #{ end", "bob", &env()), "open #{ end");
    }

    #[test]
    fn volumes_take_the_user() {
        assert_eq!(
            fill_volume("/data/#{proxy.userId}:/home/app", "alice", &env()),
            Ok("/data/alice:/home/app".to_string())
        );
        assert_eq!(
            fill_volume(
                "/d/#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}:/w:ro",
                "x",
                &env()
            ),
            Ok("/d/ann:/w:ro".to_string())
        );
    }

    #[test]
    fn volumes_refuse_names_that_escape_the_folder() {
        for user in ["..", "a/b", "../etc", "", "a:b"] {
            let r = fill_volume("/data/#{proxy.userId}:/w", user, &env());
            assert!(r.is_err(), "{user:?} gave {r:?}");
        }
        assert!(fill_volume("/data/#{other}:/w", "bob", &env()).is_err());
    }
}
