//! The API server's authorizer, as RBAC sees vestibule's service account: only what the Roles
//! bound to it grant, read from the shipped manifest (deploy/kubernetes/base/role.yaml), so
//! narrowing that Role breaks the tests that need what it took away.

use serde_json::Value;

/// vestibule's service account (deploy/kubernetes/base/serviceaccount.yaml).
pub const SUBJECT: (&str, &str) = ("vestibule", "vestibule");

/// One RBAC rule, bound in one namespace.
#[derive(Debug, Clone)]
pub struct Grant {
    pub namespace: String,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Rbac {
    pub grants: Vec<Grant>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Rbac {
    /// The grants of the shipped Role(s), where their RoleBindings bind vestibule's account.
    pub fn shipped() -> Self {
        let path = crate::common::repo_path("deploy/kubernetes/base/role.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
            docs.iter().filter(move |d| d["kind"] == kind)
        }
        let mut grants = Vec::new();
        for binding in of_kind(&docs, "RoleBinding") {
            let namespace = binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default();
            let binds_us = binding["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == SUBJECT.1
                        && s["namespace"] == SUBJECT.0
                })
            });
            if !binds_us || binding["roleRef"]["kind"] != "Role" {
                continue;
            }
            let role = of_kind(&docs, "Role").find(|r| {
                r["metadata"]["name"] == binding["roleRef"]["name"]
                    && r["metadata"]["namespace"] == namespace
            });
            for rule in role
                .and_then(|r| r["rules"].as_array())
                .into_iter()
                .flatten()
            {
                grants.push(Grant {
                    namespace: namespace.to_string(),
                    groups: strings(&rule["apiGroups"]),
                    resources: strings(&rule["resources"]),
                    verbs: strings(&rule["verbs"]),
                });
            }
        }
        assert!(
            !grants.is_empty(),
            "{} binds no Role to vestibule's service account",
            path.display()
        );
        Rbac { grants }
    }

    /// As an admin does for an app whose pods go elsewhere: the same Role and RoleBinding,
    /// applied in `namespace` too.
    pub fn copy_to(&mut self, namespace: &str) {
        let first = self.grants.first().map(|g| g.namespace.clone());
        let copies: Vec<Grant> = self
            .grants
            .iter()
            .filter(|g| Some(&g.namespace) == first.as_ref())
            .map(|g| Grant {
                namespace: namespace.to_string(),
                ..g.clone()
            })
            .collect();
        self.grants.extend(copies);
    }

    /// Takes `verb` on `resource` away everywhere (a narrower Role).
    pub fn revoke(&mut self, resource: &str, verb: &str) {
        for g in &mut self.grants {
            if g.resources.iter().any(|r| r == resource) {
                g.verbs.retain(|v| v != verb);
            }
        }
    }

    /// Whether the account may `verb` `group`/`resource` in `namespace` (None: cluster-wide,
    /// which a Role never grants).
    pub fn allows(&self, namespace: Option<&str>, group: &str, resource: &str, verb: &str) -> bool {
        let Some(namespace) = namespace else {
            return false;
        };
        let any = |list: &[String], want: &str| list.iter().any(|x| x == want || x == "*");
        self.grants.iter().any(|g| {
            g.namespace == namespace
                && any(&g.groups, group)
                && any(&g.resources, resource)
                && any(&g.verbs, verb)
        })
    }
}

/// The answer's message, worded as the API server words it.
pub fn forbidden_message(
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
) -> String {
    let (kind, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let what = if sub.is_empty() {
        format!("resource \"{kind}\"")
    } else {
        format!("resource \"{kind}/{sub}\"")
    };
    let place = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{resource} is forbidden: User \"system:serviceaccount:{}:{}\" cannot {verb} {what} in API group \"{group}\" {place}",
        SUBJECT.0, SUBJECT.1
    )
}
