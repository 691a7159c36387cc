//! Cutting over from a running ShinyProxy on Kubernetes: pods ShinyProxy 3.2 started, with its
//! labels and annotations as it sets them, are adopted with their owners when asked to; another
//! realm's pods and ShinyProxy's seats are left alone.

use super::*;
use crate::common::shinyproxy::{POD_LABEL_KEYS, marks};
use vestibule::backend::Health;

const ALICES: &str = "5c6f8a2e-3b1d-4f7a-9e0c-7d2b4a6c8e10";
const NODE_PORT: u16 = 31_234;

/// A pod as ShinyProxy's Kubernetes backend makes it: `sp-pod-<proxy>-0`, its `app` and headless
/// Service labels, two runtime values as labels and the rest as annotations.
fn shinyproxy_pod(proxy: &str, user: &str, realm: Option<&str>, extra_labels: Value) -> Value {
    let (mut labels, mut annotations) = (serde_json::Map::new(), serde_json::Map::new());
    for (k, v) in marks(proxy, "01_hello", user, realm) {
        if POD_LABEL_KEYS.contains(&k.as_str()) {
            labels.insert(k, json!(v));
        } else {
            annotations.insert(k, json!(v));
        }
    }
    labels.insert("app".into(), json!(format!("{proxy}-0-container")));
    labels.insert("openanalytics.eu/sp-headless-service".into(), json!("true"));
    if let Some(extra) = extra_labels.as_object() {
        labels.extend(extra.clone());
    }
    let name = format!("sp-pod-{proxy}-0");
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
            "creationTimestamp": "2026-11-22T07:59:00Z",
            "labels": labels, "annotations": annotations},
        "spec": {"hostname": name, "subdomain": "sp-headless-service",
            "containers": [{"name": "sp-container-0", "image": IMAGE,
                "ports": [{"containerPort": 3838}]}]}});
    pod["status"] = running(IMAGE, true);
    pod
}

/// The NodePort Service ShinyProxy makes for a pod when not on internal networking.
fn shinyproxy_service(proxy: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("sp-service-{proxy}-0"), "namespace": NAMESPACE,
            "labels": {"openanalytics.eu/sp-proxied-app": "true"}},
        "spec": {"type": "NodePort", "selector": {"app": format!("{proxy}-0-container")},
            "clusterIP": "10.96.7.7",
            "ports": [{"port": 3838, "targetPort": 3838, "nodePort": NODE_PORT}]}})
}

fn cluster_with_shinyproxy_pods() -> (kube::Client, FakeCluster) {
    let (client, cluster) = FakeCluster::start(Vec::new());
    cluster.insert("pods", shinyproxy_pod(ALICES, "alice", None, json!({})));
    cluster.insert("services", shinyproxy_service(ALICES));
    let other = "8e1d3c5b-7a9f-4b2e-8c6d-0f1a3b5c7d92";
    cluster.insert(
        "pods",
        shinyproxy_pod(other, "alice", Some("team-b"), json!({})),
    );
    let seat = "a4b6c8d0-e2f4-4a6b-8c0d-2e4f6a8b0c1d";
    cluster.insert(
        "pods",
        shinyproxy_pod(
            seat,
            "seat",
            None,
            json!({"openanalytics.eu/sp-delegate-proxy": "true"}),
        ),
    );
    (client, cluster)
}

#[tokio::test]
async fn pods_started_by_shinyproxy_are_adopted_with_their_owners() {
    let (client, cluster) = cluster_with_shinyproxy_pods();
    let before = {
        let mut p = cluster.live_names("pods");
        p.sort();
        p
    };
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(false), Duration::from_secs(5))
            .adopting_shinyproxy(true),
    );
    let found = backend.recover().await;
    assert_eq!(found.len(), 1, "only this realm's user app: {found:?}");
    let r = &found[0];
    assert_eq!(
        (r.instance_id.as_str(), r.spec_id.as_str(), r.user.as_str()),
        (ALICES, "01_hello", "alice")
    );
    assert_eq!(
        r.address.to_string(),
        format!("192.168.12.4:{NODE_PORT}"),
        "the node port of ShinyProxy's Service"
    );
    assert!(r.created_unix_ms > 0, "ShinyProxy's created timestamp");
    let mut after = cluster.live_names("pods");
    after.sort();
    assert_eq!(after, before, "recovery removes nothing of ShinyProxy's");
    assert_eq!(backend.health(ALICES).await, Health::Running);

    backend.stop(ALICES).await.expect("stop");
    let mut pods = cluster.live_names("pods");
    pods.sort();
    assert_eq!(
        pods,
        [
            "sp-pod-8e1d3c5b-7a9f-4b2e-8c6d-0f1a3b5c7d92-0",
            "sp-pod-a4b6c8d0-e2f4-4a6b-8c0d-2e4f6a8b0c1d-0"
        ],
        "the adopted pod is deleted; the other realm's and the seat stay"
    );
    assert!(
        cluster.live_names("services").is_empty(),
        "its Service goes with it"
    );
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn on_internal_networking_a_shinyproxy_pod_is_reached_at_its_ip() {
    let (client, _cluster) = cluster_with_shinyproxy_pods();
    let backend = KubernetesBackend::new(client, settings(true), Duration::from_secs(5))
        .adopting_shinyproxy(true);
    let found = backend.recover().await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].address.to_string(), "192.168.30.17:3838");
}

#[tokio::test]
async fn without_recovery_of_shinyproxy_its_pods_are_not_seen() {
    let (client, cluster) = cluster_with_shinyproxy_pods();
    let backend = KubernetesBackend::new(client, settings(false), Duration::from_secs(5));
    assert!(backend.recover().await.is_empty());
    backend.remove_leftovers().await;
    assert_eq!(cluster.live_names("pods").len(), 3, "none removed");
}
