//! The Kubernetes backend against a mocked API server (no cluster can run here): what it sends,
//! how it follows a pod, and what a user is told when the pod cannot start.

mod common;
#[path = "common/kube_mock.rs"]
mod kube_mock;

use kube_mock::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vestibule::backend::kubernetes::KubernetesBackend;
use vestibule::backend::{Backend, LaunchRequest};
use vestibule::config::{AppSpec, CpuQuantity, KubernetesSettings, MemoryQuantity};

const IMAGE: &str = "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/shiny-application:v1";

fn settings(internal: bool) -> KubernetesSettings {
    KubernetesSettings {
        url: Some("http://localhost:8001".into()),
        namespace: NAMESPACE.into(),
        internal_networking: internal,
        image_pull_policy: Some("IfNotPresent".into()),
        image_pull_secrets: vec!["ecr-pull".into()],
        node_selector: BTreeMap::from([("NodeSize".into(), "m5.xlarge".into())]),
        pod_wait_time: Duration::from_secs(5),
    }
}

fn spec() -> AppSpec {
    let mut spec = common::process_spec("01_hello", &["R", "-e", "shinyproxy::run_01_hello()"]);
    spec.container_image = Some(IMAGE.into());
    spec.port = 3838;
    spec.container_volumes = vec!["/mnt/data/#{proxy.userId}:/home/data".into()];
    spec.container.memory_request = MemoryQuantity::parse("1g").ok();
    spec.container.memory_limit = MemoryQuantity::parse("2g").ok();
    spec.container.cpu_request = CpuQuantity::parse("0.5").ok();
    spec
}

fn request(id: &str, spec: AppSpec) -> LaunchRequest {
    let mut env = spec.container_env.clone();
    env.insert("SHINYPROXY_USERNAME".into(), "alice".into());
    LaunchRequest {
        instance_id: id.into(),
        spec,
        env,
        progress: vestibule::backend::Progress::ignored(),
    }
}

fn backend(client: kube::Client, settings: KubernetesSettings) -> Arc<KubernetesBackend> {
    Arc::new(
        KubernetesBackend::new(client, settings, Duration::from_secs(5))
            .with_poll_interval(Duration::from_millis(20)),
    )
}

/// Records every stage the backend reports while `start` runs.
fn watch_stages(backend: Arc<KubernetesBackend>, id: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (out, id) = (seen.clone(), id.to_string());
    tokio::spawn(async move {
        loop {
            if let Some(stage) = backend.stage(&id) {
                let mut v = out.lock().unwrap();
                if v.last() != Some(&stage) {
                    v.push(stage);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    seen
}

fn created(cluster: &FakeCluster, resource: &str) -> Vec<Value> {
    cluster
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::POST && resource_path(&s.path) == resource)
        .map(|s| s.body)
        .collect()
}

#[tokio::test]
async fn pod_goes_from_pending_to_ready_and_is_reached_at_its_ip() {
    let (client, cluster) = FakeCluster::start(vec![
        unscheduled(),
        unscheduled(),
        container_creating(IMAGE),
        container_creating(IMAGE),
        running(IMAGE, false),
        running(IMAGE, false),
        running(IMAGE, true),
    ]);
    let backend = backend(client, settings(true));
    let stages = watch_stages(backend.clone(), "a1");
    let started = backend.start(&request("a1", spec())).await.unwrap();
    assert_eq!(started.address.to_string(), "192.168.30.17:3838");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        *stages.lock().unwrap(),
        ["waiting for a node", "pulling image", "starting", "ready"]
    );

    let pods = created(&cluster, "pods");
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(pod["metadata"]["name"], "sp-pod-a1");
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "vestibule"
    );
    assert_eq!(pod["metadata"]["labels"]["vestibule.io/instance-id"], "a1");
    assert_eq!(pod["metadata"]["annotations"]["vestibule.io/user"], "alice");
    assert_eq!(
        pod["spec"]["nodeSelector"],
        json!({"NodeSize": "m5.xlarge"})
    );
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "ecr-pull"}])
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], IMAGE);
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["command"],
        json!(["R", "-e", "shinyproxy::run_01_hello()"])
    );
    assert_eq!(
        c["resources"]["requests"],
        json!({"memory": "1024Mi", "cpu": "500m"})
    );
    assert_eq!(c["resources"]["limits"], json!({"memory": "2048Mi"}));
    assert_eq!(c["ports"][0]["containerPort"], 3838);
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "SHINYPROXY_USERNAME", "value": "alice"}))
    );
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/home/data");
    assert_eq!(
        pod["spec"]["volumes"][0]["hostPath"]["path"],
        "/mnt/data/alice"
    );
    assert!(
        created(&cluster, "services").is_empty(),
        "internal networking needs no Service"
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named_and_the_pod_removed() {
    let (client, cluster) = FakeCluster::start(vec![
        container_creating(IMAGE),
        err_image_pull(IMAGE),
        image_pull_backoff(IMAGE),
    ]);
    let backend = backend(client, settings(true));
    let err = backend
        .start(&request("b1", spec()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("the image '{IMAGE}' could not be pulled")),
        "{err}"
    );
    assert!(err.contains("ImagePullBackOff"), "{err}");
    assert!(
        cluster.names("pods").is_empty(),
        "the failed pod must be deleted"
    );
}

#[tokio::test]
async fn an_unschedulable_pod_says_which_resource_is_short() {
    let (client, cluster) = FakeCluster::start(vec![unschedulable(
        "0/3 nodes are available: 1 Insufficient cpu, 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )]);
    let mut s = settings(true);
    s.pod_wait_time = Duration::from_millis(300);
    let backend = backend(client, s);
    let err = backend
        .start(&request("c1", spec()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not enough cpu, memory in the cluster"),
        "{err}"
    );
    assert!(err.contains("0.3 s"), "{err}");
    assert!(cluster.names("pods").is_empty());
}

#[tokio::test]
async fn a_crashing_app_shows_its_last_output() {
    let (client, cluster) = FakeCluster::start(vec![container_creating(IMAGE), crash_loop(IMAGE)]);
    cluster.set_log(
        "Listening on 0.0.0.0:3838\nError in library(shiny): there is no package called 'shiny'\n",
    );
    let backend = backend(client, settings(true));
    let err = backend
        .start(&request("d1", spec()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CrashLoopBackOff"), "{err}");
    assert!(err.contains("there is no package called 'shiny'"), "{err}");
    assert_eq!(
        backend.last_log_lines("d1", 1),
        ["Error in library(shiny): there is no package called 'shiny'"]
    );
    let log_read = cluster
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/log"))
        .unwrap();
    assert!(
        log_read.query.contains("previous=true"),
        "{}",
        log_read.query
    );
}

#[tokio::test]
async fn stopping_deletes_pod_with_grace_and_its_service() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let backend = backend(client, settings(false));
    let started = backend.start(&request("e1", spec())).await.unwrap();
    assert_eq!(
        started.address.to_string(),
        "10.100.23.7:3838",
        "reached through its Service"
    );
    let svc = &created(&cluster, "services")[0];
    assert_eq!(svc["spec"]["selector"]["vestibule.io/instance-id"], "e1");
    assert_eq!(backend.list().await, ["e1"]);

    backend.stop("e1").await.unwrap();
    let deletes: Vec<_> = cluster
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::DELETE)
        .collect();
    let pod_delete = deletes
        .iter()
        .find(|s| resource_path(&s.path) == "pods/sp-pod-e1")
        .unwrap();
    assert_eq!(pod_delete.body["gracePeriodSeconds"], 10);
    assert!(
        deletes
            .iter()
            .any(|s| resource_path(&s.path) == "services/sp-service-e1")
    );
    assert!(cluster.names("pods").is_empty() && cluster.names("services").is_empty());
    assert!(backend.list().await.is_empty());
    // Stopping again (or an unknown id) is not an error.
    backend.stop("e1").await.unwrap();
}

#[tokio::test]
async fn a_restarted_vestibule_adopts_its_running_pods_by_label() {
    let (client, cluster) = FakeCluster::start(Vec::new());
    let mut mine = serde_json::from_value::<Value>(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sp-pod-f1",
            "labels": {"app.kubernetes.io/managed-by": "vestibule", "vestibule.io/instance-id": "f1", "vestibule.io/spec-id": "01_hello"},
            "annotations": {"vestibule.io/user": "bob@example.org", "vestibule.io/port": "3838", "vestibule.io/spec-id": "01_hello"}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
    })).unwrap();
    mine["status"] = running(IMAGE, true);
    cluster.insert("pods", mine);
    let mut foreign = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "other", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    foreign["status"] = running("nginx", true);
    cluster.insert("pods", foreign);

    let backend = backend(client, settings(true));
    let found = backend.recover().await;
    assert_eq!(found.len(), 1, "{found:?}");
    let r = &found[0];
    assert_eq!(
        (r.instance_id.as_str(), r.spec_id.as_str(), r.user.as_str()),
        ("f1", "01_hello", "bob@example.org")
    );
    assert_eq!(r.address.to_string(), "192.168.30.17:3838");
    let list = cluster
        .seen()
        .into_iter()
        .find(|s| s.method == http::Method::GET && resource_path(&s.path) == "pods")
        .unwrap();
    assert!(
        list.query
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dvestibule"),
        "{}",
        list.query
    );
    // An adopted instance can be stopped like any other.
    backend.stop("f1").await.unwrap();
    assert_eq!(cluster.names("pods"), ["other"]);
}

#[tokio::test]
async fn pod_patches_are_applied_with_the_user_filled_in() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let mut spec = spec();
    spec.kubernetes.pod_patches = Some(serde_json::from_value(json!([
        {"op": "add", "path": "/spec/serviceAccountName", "value": "shiny-apps"},
        {"op": "add", "path": "/spec/volumes/-", "value": {"name": "home", "persistentVolumeClaim": {"claimName": "home-#{proxy.userId}"}}},
        {"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": {"name": "home", "mountPath": "/home/shiny"}},
        {"op": "replace", "path": "/spec/restartPolicy", "value": "OnFailure"},
    ])).unwrap());
    let backend = backend(client, settings(true));
    backend.start(&request("g1", spec)).await.unwrap();
    let pod = &created(&cluster, "pods")[0];
    assert_eq!(pod["spec"]["serviceAccountName"], "shiny-apps");
    assert_eq!(pod["spec"]["restartPolicy"], "OnFailure");
    assert_eq!(
        pod["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "home-alice"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][1]["mountPath"],
        "/home/shiny"
    );
}

fn claim(name: &str, policy: Option<&str>, size: &str) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc",
                 "resources": {"requests": {"storage": size}}}});
    if let Some(p) = policy {
        c["metadata"]["annotations"] = json!({"openanalytics.eu/sp-additional-manifest-policy": p});
    }
    c
}

#[tokio::test]
async fn additional_manifests_are_created_once_and_kept_or_deleted_per_policy() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let mut spec = spec();
    spec.kubernetes.persistent_manifests = vec![claim("home-#{proxy.userId}", None, "5Gi")];
    spec.kubernetes.additional_manifests = vec![
        claim("scratch-#{proxy.userId}", None, "1Gi"),
        claim("cache-#{proxy.userId}", Some("Replace"), "2Gi"),
        claim("old-#{proxy.userId}", Some("Delete"), "1Gi"),
        claim("shared", Some("Patch"), "50Gi"),
    ];
    // Left from earlier sessions.
    cluster.insert("persistentvolumeclaims", claim("cache-alice", None, "1Gi"));
    cluster.insert("persistentvolumeclaims", claim("old-alice", None, "1Gi"));
    cluster.insert("persistentvolumeclaims", claim("shared", None, "10Gi"));
    let backend = backend(client, settings(true));

    backend.start(&request("h1", spec.clone())).await.unwrap();
    let made: Vec<String> = created(&cluster, "persistentvolumeclaims")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(made, ["scratch-alice", "cache-alice", "home-alice"]);
    assert_eq!(
        cluster
            .get("persistentvolumeclaims", "cache-alice")
            .unwrap()["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    assert!(cluster.get("persistentvolumeclaims", "old-alice").is_none());
    assert_eq!(
        cluster.get("persistentvolumeclaims", "shared").unwrap()["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );

    backend.stop("h1").await.unwrap();
    let mut left = cluster.names("persistentvolumeclaims");
    left.sort();
    assert_eq!(
        left,
        ["home-alice"],
        "only the persistent claim outlives the app"
    );

    // The next launch finds the persistent claim and leaves it alone (CreateOnce).
    backend.start(&request("h2", spec)).await.unwrap();
    let home_posts = created(&cluster, "persistentvolumeclaims")
        .iter()
        .filter(|c| c["metadata"]["name"] == "home-alice")
        .count();
    assert_eq!(home_posts, 1);
}

#[tokio::test]
async fn secret_key_ref_values_read_a_kubernetes_secret() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let mut spec = spec();
    spec.container_env.insert(
        "DB_PASSWORD".into(),
        "secretKeyRef:db-credentials:password".into(),
    );
    spec.container_env
        .insert("DB_HOST".into(), "db.internal".into());
    let backend = backend(client, settings(true));
    backend.start(&request("i1", spec)).await.unwrap();
    let env = created(&cluster, "pods")[0]["spec"]["containers"][0]["env"].clone();
    let env = env.as_array().unwrap();
    assert!(
        env.contains(&json!({"name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}})),
        "{env:?}"
    );
    assert!(env.contains(&json!({"name": "DB_HOST", "value": "db.internal"})));
    assert!(
        !serde_json::to_string(env)
            .unwrap()
            .contains("secretKeyRef:")
    );
}

#[test]
fn bad_kubernetes_settings_are_reported_at_their_line() {
    let yaml = "proxy:\n  container-backend: kubernetes\n  kubernetes:\n    image-pull-policy: Sometimes\n    node-selector: NodeSize\n  specs:\n  - id: a\n    container-image: img\n    kubernetes-pod-patches: |\n      - op: frobnicate\n        path: /spec\n    kubernetes-additional-manifests:\n    - |\n      kind: PersistentVolumeClaim\n";
    let loaded = vestibule::config::load_str(
        std::path::Path::new("k.yml"),
        yaml,
        &std::collections::HashMap::<String, String>::new(),
    );
    let Err(err) = loaded else {
        panic!("these settings must be refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("k.yml:4:24") && err.contains("IfNotPresent"),
        "{err}"
    );
    assert!(
        err.contains("k.yml:5:20") && err.contains("key=value"),
        "{err}"
    );
    assert!(
        err.contains("k.yml:10:7") && err.contains("RFC 6902"),
        "{err}"
    );
    assert!(
        err.contains("k.yml:14:7") && err.contains("apiVersion, kind and metadata.name"),
        "{err}"
    );
}
