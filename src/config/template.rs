//! ShinyProxy's `#{...}` expressions in app settings filled in at launch: per-user folders in
//! `container-volumes`, `container-env`, `container-cmd`, the image, `http-headers`,
//! Kubernetes pod patches and manifests. The expressions are [`crate::spel`]'s; this module
//! says what they may read when an app starts (the user and the instance's runtime values,
//! as `proxy`) and checks them when the config is read.

use std::collections::BTreeMap;

use super::node::{Node, Value};
use super::report::{Report, child, index};
use crate::spel::{self, Context, Kind, Object, Phase};

pub use crate::spel::Template;

/// What a launch setting may read: `proxy` (its `userId`, `id`, `specId` and runtime values),
/// `userId` and `groups`.
pub fn launch_context(user: &str, runtime: &BTreeMap<String, String>) -> Context {
    launch_context_with(user, runtime, None)
}

/// [`launch_context`], with the parameters the user chose, as ShinyProxy offers them:
/// `proxy.getRuntimeObject('SHINYPROXY_PARAMETERS').getValue('id')` and `.getValueSetName()`.
pub fn launch_context_with(
    user: &str,
    runtime: &BTreeMap<String, String>,
    parameters: Option<&super::parameters::Chosen>,
) -> Context {
    let value = |k: &str| runtime.get(k).map(String::as_str);
    let groups: Vec<String> = value("SHINYPROXY_USERGROUPS")
        .unwrap_or_default()
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    let proxy = Object::new(Kind::Proxy)
        .with("userId", user)
        .with("id", value("SHINYPROXY_PROXY_ID"))
        .with("specId", value("SHINYPROXY_SPEC_ID"))
        .with("displayName", value("SHINYPROXY_DISPLAY_NAME"))
        .with("runtimeValues", runtime);
    let proxy = match parameters {
        Some(chosen) => {
            let object = Object::new(Kind::Parameters)
                .with("values", &chosen.values)
                .with("valueSetName", chosen.value_set.as_deref())
                .with("backendValues", &chosen.values);
            proxy.with(
                "runtimeObjects",
                spel::Value::Map(
                    [("SHINYPROXY_PARAMETERS".to_string(), object.into())]
                        .into_iter()
                        .collect(),
                ),
            )
        }
        None => proxy,
    };
    spel::user_context(Some(user), &groups).with("proxy", proxy)
}

/// The text with its expressions filled in; an expression that fails says which and why.
pub fn fill(
    template: &Template,
    user: &str,
    runtime: &BTreeMap<String, String>,
) -> Result<String, String> {
    if !template.has_expressions() {
        return Ok(template.source().to_string());
    }
    render(template, &launch_context(user, runtime))
}

/// The text filled in from `context`, or ShinyProxy's message naming the expression.
pub fn render(template: &Template, context: &Context) -> Result<String, String> {
    template
        .render(context)
        .map_err(|e| resolve_error(template.source(), &e.message))
}

/// ShinyProxy's wording, which operators search for.
fn resolve_error(source: &str, why: &str) -> String {
    format!("Error while resolving expression: \"{source}\", error: {why}")
}

/// The text as a `HOST:CONTAINER[:mode]` volume: every expression must evaluate, and to a
/// value that cannot climb out of, or reach across, the folder the config names, nor add a
/// mount option. A user name becomes part of a host path here.
pub fn fill_volume(
    source: &str,
    user: &str,
    runtime: &BTreeMap<String, String>,
) -> Result<String, String> {
    let template = Template::parse(source).map_err(|e| resolve_error(source, &e.message))?;
    template.render_checked(&launch_context(user, runtime), |_, value| {
        let unsafe_path = value.is_empty()
            || value == "."
            || value.contains("..")
            || value.contains(['/', '\\', ':', '\0']);
        if unsafe_path {
            return Err(format!(
                "a value in volume '{source}' ({value:?}) cannot be used in a volume path"
            ));
        }
        Ok(value)
    })
}

/// Fills the expressions in every string of a JSON value (a pod patch, a manifest).
pub fn fill_json(
    value: &mut serde_json::Value,
    user: &str,
    runtime: &BTreeMap<String, String>,
) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) if s.contains("#{") => {
            let template = Template::parse(s).map_err(|e| resolve_error(s, &e.message))?;
            *s = fill(&template, user, runtime)?;
            Ok(())
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| fill_json(v, user, runtime)),
        serde_json::Value::Object(map) => map
            .values_mut()
            .try_for_each(|v| fill_json(v, user, runtime)),
        _ => Ok(()),
    }
}

/// Refuses, at its position, every expression below `node` that could not be evaluated when
/// the app starts (ShinyProxy would find out at the first launch).
pub(crate) fn check(node: &Node, path: &str, report: &mut Report) {
    match &node.value {
        Value::Str(s) if s.contains("#{") => {
            let checked = Template::parse(s).and_then(|t| t.check(Phase::Launch));
            if let Err(e) = checked {
                report.error(&node.at, path, super::convert::expression_error(&e));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check(item, &index(path, i), report);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                check(&e.value, &child(path, &e.key), report);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("SHINYPROXY_USERNAME".to_string(), "ann".to_string()),
            ("SHINYPROXY_USERGROUPS".to_string(), "a,b".to_string()),
            (
                "SHINYPROXY_PUBLIC_PATH".to_string(),
                "/app_proxy/1/".to_string(),
            ),
        ])
    }

    fn filled(source: &str, user: &str) -> Result<String, String> {
        fill(&Template::parse(source).expect(source), user, &env())
    }

    #[test]
    fn fills_user_runtime_values_and_more() {
        assert_eq!(
            filled(
                "home-#{proxy.userId}-#{proxy.getRuntimeValue('SHINYPROXY_USERNAME')}",
                "bob"
            ),
            Ok("home-bob-ann".to_string())
        );
        assert_eq!(filled("#{groups}", "bob"), Ok("[A, B]".to_string()));
        assert_eq!(
            filled(
                "#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH').replaceFirst('/$','')}",
                "b"
            ),
            Ok("/app_proxy/1".to_string())
        );
        assert_eq!(filled("plain", "bob"), Ok("plain".to_string()));
        let e =
            filled("#{proxy.getRuntimeValue('SHINYPROXY_REALM_ID')}", "bob").expect_err("unset");
        assert!(e.starts_with("Error while resolving expression"), "{e}");
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
        for user in ["..", "a/b", "../etc", "", "a:b", ".", "a\\b"] {
            let r = fill_volume("/data/#{proxy.userId}:/w", user, &env());
            assert!(r.is_err(), "{user:?} gave {r:?}");
        }
        assert!(fill_volume("/data/#{other}:/w", "bob", &env()).is_err());
        assert!(fill_volume("/data/#{proxy.userId:/w", "bob", &env()).is_err());
    }

    #[test]
    fn json_strings_are_filled_everywhere() {
        let mut v =
            serde_json::json!({"a": ["#{proxy.userId}", 1], "b": {"c": "x-#{proxy.userId}"}});
        fill_json(&mut v, "eve", &env()).expect("fills");
        assert_eq!(v, serde_json::json!({"a": ["eve", 1], "b": {"c": "x-eve"}}));
    }
}
