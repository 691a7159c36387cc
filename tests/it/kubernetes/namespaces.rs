//! Apps whose pod patches put their pods in another namespace than `proxy.kubernetes.namespace`:
//! the shipped Role is bound in that one only.

use super::*;

fn in_team_a(mut spec: AppSpec) -> AppSpec {
    spec.kubernetes.pod_patches = Some(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/metadata/namespace", "value": "team-a"}]),
        )
        .unwrap(),
    );
    spec
}

/// Without the Role in team-a, the API server refuses the pod, and the user is told so.
#[tokio::test]
async fn a_namespace_the_role_is_not_bound_in_is_refused_by_the_api_server() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.add_namespace("team-a");
    let spec = in_team_a(spec());
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(true), Duration::from_secs(5))
            .with_poll_interval(Duration::from_millis(20))
            .with_apps(std::slice::from_ref(&spec)),
    );
    let err = backend
        .start(&request("t1", spec))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pods is forbidden") && err.contains("namespace \"team-a\""),
        "{err}"
    );
    assert!(cluster.names("pods").is_empty());
}

fn load(yaml: &str) -> Vec<String> {
    let loaded = vestibule::config::load_str(
        std::path::Path::new("k.yml"),
        yaml,
        &std::collections::HashMap::<String, String>::new(),
    )
    .expect("valid settings");
    loaded.warnings.iter().map(|w| w.to_string()).collect()
}

/// `vestibule check` says which apps need the Role elsewhere, and which cannot have it.
#[test]
fn check_warns_of_pods_outside_the_namespace_of_the_role() {
    let yaml = |namespace: &str| {
        format!(
            "proxy:\n  container-backend: kubernetes\n  kubernetes:\n    namespace: shiny\n  specs:\n  - id: a\n    container-image: img\n    kubernetes-pod-patches: |\n      - op: replace\n        path: /metadata/namespace\n        value: {namespace}\n"
        )
    };
    let warned = load(&yaml("team-a"));
    assert!(
        warned.iter().any(|w| w.contains("k.yml:9:7")
            && w.contains("app 'a' puts its pods in namespace 'team-a'")
            && w.contains("apply that Role and RoleBinding in 'team-a'")),
        "{warned:?}"
    );
    let warned = load(&yaml("team-#{proxy.userId}"));
    assert!(
        warned
            .iter()
            .any(|w| w.contains("namespace per user") && w.contains("403")),
        "{warned:?}"
    );
    let warned = load(&yaml("shiny"));
    assert!(
        !warned.iter().any(|w| w.contains("puts its pods")),
        "the Role's own namespace needs nothing more: {warned:?}"
    );
}
