//! The Kubernetes backend against a mocked API server (no cluster can run here): what it sends,
//! how it follows a pod, and what a user is told when the pod cannot start.

mod admin;
mod crashes;
mod mock_semantics;
mod namespaces;
mod shinyproxy;

use crate::common;
use crate::common::{certs, eventually, kube_mock};

use kube_mock::*;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vestibule::backend::kubernetes::{KubernetesBackend, api_calls};
use vestibule::backend::{Backend, LaunchRequest, Progress};
use vestibule::config::{AppSpec, CpuQuantity, KubernetesSettings, MemoryQuantity, ServiceType};

const IMAGE: &str = "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/shiny-application:v1";

fn settings(internal: bool) -> KubernetesSettings {
    KubernetesSettings {
        url: Some("http://localhost:8001".into()),
        namespace: NAMESPACE.into(),
        internal_networking: internal,
        service_type: ServiceType::NodePort,
        cert_path: None,
        realm_id: "default".into(),
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
        owner: "alice".into(),
        spec,
        env,
        progress: Progress::ignored(),
    }
}

/// A request whose reported stages are recorded, as the app page would show them.
fn request_watching(id: &str, spec: AppSpec) -> (LaunchRequest, Arc<Mutex<Vec<String>>>) {
    let stages = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = stages.clone();
    let mut req = request(id, spec);
    req.progress = Progress::new(move |stage| {
        let stage = stage.to_string();
        let mut v = seen.lock();
        if v.last() != Some(&stage) {
            v.push(stage);
        }
    });
    (req, stages)
}

fn backend(client: kube::Client, settings: KubernetesSettings) -> Arc<KubernetesBackend> {
    Arc::new(
        KubernetesBackend::new(client, settings, Duration::from_secs(5))
            .with_poll_interval(Duration::from_millis(20)),
    )
}

/// A small app served by the test, where the mock cluster says the pod is (127.0.0.1).
async fn serve_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|| async { "hello from the pod" });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// A whole server's config (users alice and root, the admin) whose one app, `spec`, runs in
/// pods of `cluster`, reached at 127.0.0.1:`port`.
fn server_config(cluster: &FakeCluster, mut spec: AppSpec, port: u16) -> vestibule::config::Config {
    cluster.set_pod_ip("127.0.0.1");
    spec.port = port;
    spec.container_volumes.clear();
    let mut cfg = common::config(vec![spec]);
    cfg.proxy.container_backend = vestibule::config::BackendKind::Kubernetes;
    cfg.proxy.kubernetes = settings(true);
    cfg.proxy.kubernetes.url = Some(cluster.url().to_string());
    cfg
}

/// Every call the backend made must be one the shipped Role grants (api_calls::ALL), and the
/// API server (which enforces the shipped Role) refused none, not even one the backend
/// tolerates failing (a watch, the events).
fn assert_role_covers(cluster: &FakeCluster) {
    assert_eq!(cluster.denied(), Vec::<String>::new(), "refused by RBAC");
    for (group, resource, verb) in cluster.rbac_calls() {
        assert!(
            api_calls::ALL
                .iter()
                .any(|c| c.group == group && c.resource == resource && c.verb == verb),
            "the backend made a call the Role does not grant: {verb} {group}/{resource}"
        );
    }
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
    // Polling once a minute: only a watch sees the pod's changes in time.
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(true), Duration::from_secs(5))
            .with_poll_interval(Duration::from_secs(60)),
    );
    let (req, stages) = request_watching("a1", spec());
    let started = tokio::time::timeout(Duration::from_secs(5), backend.start(&req))
        .await
        .expect("the pod's changes are watched, not polled")
        .unwrap();
    assert_eq!(started.address.to_string(), "192.168.30.17:3838");
    assert_eq!(
        *stages.lock(),
        [
            "creating the pod",
            "waiting for a node",
            &format!("pulling the image {IMAGE}"),
            "starting the container",
        ]
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
    assert_eq!(
        pod["metadata"]["annotations"]["vestibule.io/spec-hash"],
        vestibule::backend::spec_fingerprint(&spec())
    );
    assert_eq!(pod["metadata"]["labels"]["vestibule.io/realm"], "default");
    assert!(
        created(&cluster, "services").is_empty(),
        "internal networking needs no Service"
    );
    assert_role_covers(&cluster);
}

/// Compaction fell between the backend's read of the pod and its watch: the watch gets 410
/// Gone, and the pod is read again at once (not at the next poll, a minute away).
#[tokio::test]
async fn a_watch_whose_version_is_gone_reads_the_pod_again() {
    let (client, cluster) = FakeCluster::start_timed(vec![
        (Duration::ZERO, container_creating(IMAGE)),
        (Duration::from_millis(300), running(IMAGE, true)),
    ]);
    cluster.expire_next_watches(2);
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(true), Duration::from_secs(5))
            .with_poll_interval(Duration::from_secs(60)),
    );
    let started = tokio::time::timeout(
        Duration::from_secs(2),
        backend.start(&request("a2", spec())),
    )
    .await
    .expect("ready within 2 s, though two watches got 410")
    .unwrap();
    assert_eq!(started.address.to_string(), "192.168.30.17:3838");
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn without_watch_permission_the_pod_is_polled() {
    let (client, cluster) = FakeCluster::start(vec![
        container_creating(IMAGE),
        running(IMAGE, false),
        running(IMAGE, true),
    ]);
    cluster.refuse_watches();
    let started = backend(client, settings(true))
        .start(&request("w1", spec()))
        .await
        .unwrap();
    assert_eq!(started.address.to_string(), "192.168.30.17:3838");
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named_and_the_pod_removed() {
    let (client, cluster) = FakeCluster::start(vec![
        container_creating(IMAGE),
        err_image_pull(IMAGE),
        image_pull_backoff(IMAGE),
    ]);
    cluster.insert(
        "events",
        event(
            "sp-pod-b1",
            "Warning",
            "Failed",
            &format!("Failed to pull image \"{IMAGE}\": pull access denied: 401 Unauthorized"),
        ),
    );
    cluster.insert(
        "events",
        event("sp-pod-b1", "Normal", "Pulling", "Pulling image"),
    );
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
        err.contains("401 Unauthorized"),
        "the registry's reason, from the pod's events: {err}"
    );
    // The lifecycle stops a failed instance to clean up: that must look in the right namespace.
    backend.stop("b1").await.unwrap();
    let deletes: Vec<String> = cluster
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::DELETE)
        .map(|s| s.path)
        .collect();
    assert!(
        deletes.len() == 2
            && deletes
                .iter()
                .all(|p| p == "/api/v1/namespaces/shiny/pods/sp-pod-b1"),
        "{deletes:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            cluster.names("pods").is_empty()
        })
        .await,
        "the failed pod must be deleted"
    );
    assert_role_covers(&cluster);
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
    let (client, cluster) =
        FakeCluster::start(vec![container_creating(IMAGE), crash_loop(IMAGE, 1)]);
    // The container waits to be restarted: only its previous run has output.
    cluster.set_logs(
        "sp-pod-d1",
        "app",
        "",
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

/// With restartPolicy Never (the default) a crashed container is not restarted: its output is
/// that of the current, terminated run; asking for a previous run gets 400 from the API server.
#[tokio::test]
async fn an_app_that_exits_at_once_shows_its_output_of_that_run() {
    let (client, cluster) = FakeCluster::start(vec![container_creating(IMAGE), exited(IMAGE, 1)]);
    cluster.set_logs(
        "sp-pod-d2",
        "app",
        "Error: cannot open /data/models.rds\nExecution halted\n",
        "",
    );
    let backend = backend(client, settings(true));
    let err = backend
        .start(&request("d2", spec()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open /data/models.rds"), "{err}");
    assert_eq!(backend.last_log_lines("d2", 1), ["Execution halted"]);
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn stopping_deletes_pod_with_grace_and_its_service() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let backend = backend(client, settings(false));
    let started = backend.start(&request("e1", spec())).await.unwrap();
    assert_eq!(
        started.address.to_string(),
        "192.168.12.4:31538",
        "reached at its node, on its Service's node port"
    );
    let svc = &created(&cluster, "services")[0];
    assert_eq!(svc["spec"]["type"], "NodePort");
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
    // The pod is Terminating while its app shuts down; it is no longer one of ours.
    let pod = cluster.get("pods", "sp-pod-e1").expect("still terminating");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
    assert!(cluster.names("services").is_empty());
    assert!(backend.list().await.is_empty());
    assert!(
        eventually(Duration::from_secs(5), || async {
            cluster.names("pods").is_empty()
        })
        .await,
        "the pod is gone once its app has stopped"
    );
    // Stopping again (or an unknown id) is not an error.
    backend.stop("e1").await.unwrap();
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn a_cluster_ip_service_is_reached_at_its_cluster_ip() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let mut s = settings(false);
    s.service_type = ServiceType::ClusterIp;
    let started = backend(client, s)
        .start(&request("e2", spec()))
        .await
        .unwrap();
    assert_eq!(started.address.to_string(), "10.100.23.7:3838");
    assert_eq!(
        created(&cluster, "services")[0]["spec"]["type"],
        "ClusterIP"
    );
}

#[tokio::test]
async fn a_restarted_vestibule_adopts_its_running_pods_by_label() {
    let (client, cluster) = FakeCluster::start(Vec::new());
    let owned = json!([{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "namespace": NAMESPACE, "name": "scratch-bob"}]);
    cluster.insert(
        "pods",
        left_pod(
            "f1",
            "default",
            NAMESPACE,
            running(IMAGE, true),
            json!({"vestibule.io/owned-objects": owned.to_string()}),
        ),
    );
    cluster.insert("persistentvolumeclaims", claim("scratch-bob", None, "1Gi"));
    let failed = json!({"phase": "Failed", "reason": "Evicted"});
    cluster.insert(
        "pods",
        left_pod("f2", "default", NAMESPACE, failed, json!({})),
    );
    // Deleted by the replica that is going away, its app still shutting down: not adoptable.
    cluster.insert(
        "pods",
        left_pod("f3", "default", NAMESPACE, running(IMAGE, true), json!({})),
    );
    cluster.terminate_within(NAMESPACE, "sp-pod-f3", Duration::from_secs(30));
    // Running by phase, but its app keeps crashing: not adoptable either.
    cluster.insert(
        "pods",
        left_pod("f4", "default", NAMESPACE, crash_loop(IMAGE, 4), json!({})),
    );
    // Another vestibule's pod in the same namespace, and someone else's.
    cluster.insert(
        "pods",
        left_pod("x1", "staging", NAMESPACE, running(IMAGE, true), json!({})),
    );
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
    assert_eq!(r.spec_hash, "00ff");
    assert_eq!(
        r.created_unix_ms, 1_795_334_340_000,
        "the pod's creationTimestamp"
    );
    let list = cluster
        .seen()
        .into_iter()
        .find(|s| s.method == http::Method::GET && resource_path(&s.path) == "pods")
        .unwrap();
    assert!(
        list.query.contains(
            "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dvestibule%2Cvestibule.io%2Frealm%3Ddefault"
        ),
        "{}",
        list.query
    );
    let mut pods = cluster.live_names("pods");
    pods.sort();
    assert_eq!(
        pods,
        ["other", "sp-pod-f1", "sp-pod-x1"],
        "the failed and the crash-looping pods are removed"
    );
    assert!(
        cluster.get("pods", "sp-pod-f3").is_some(),
        "the Terminating pod is left to finish"
    );

    // An adopted instance is stopped like any other, with what it created.
    backend.stop("f1").await.unwrap();
    let mut pods = cluster.live_names("pods");
    pods.sort();
    assert_eq!(pods, ["other", "sp-pod-x1"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            cluster.names("persistentvolumeclaims").is_empty()
        })
        .await,
        "its additional manifest is deleted with it, though another run created it"
    );
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn leftovers_of_this_realm_are_removed_when_not_recovering() {
    let (client, cluster) = FakeCluster::start(Vec::new());
    cluster.insert(
        "pods",
        left_pod("l1", "default", NAMESPACE, running(IMAGE, true), json!({})),
    );
    cluster.insert(
        "pods",
        left_pod("l2", "default", "team-a", running(IMAGE, true), json!({})),
    );
    cluster.insert(
        "pods",
        left_pod("l3", "staging", NAMESPACE, running(IMAGE, true), json!({})),
    );
    let mut spec = spec();
    spec.kubernetes.pod_patches = Some(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/metadata/namespace", "value": "team-a"}]),
        )
        .unwrap(),
    );
    // As the check's warning asks for a config that puts pods in team-a.
    cluster.grant_role_in("team-a");
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(true), Duration::from_secs(5)).with_apps(&[spec]),
    );
    backend.remove_leftovers().await;
    assert_eq!(
        cluster.live_names("pods"),
        ["sp-pod-l3"],
        "both namespaces are cleaned; the other realm's pod stays"
    );
    assert_role_covers(&cluster);
    let grace: Vec<_> = cluster
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::DELETE)
        .map(|s| s.body["gracePeriodSeconds"].clone())
        .collect();
    assert_eq!(grace, [json!(10), json!(10)]);
}

#[tokio::test]
async fn an_app_runs_in_the_namespace_its_pod_patches_name() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.add_namespace("team-a");
    cluster.grant_role_in("team-a");
    let mut spec = spec();
    spec.kubernetes.pod_patches = Some(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/metadata/namespace", "value": "team-a"}]),
        )
        .unwrap(),
    );
    spec.kubernetes.additional_manifests = vec![claim("scratch-#{proxy.userId}", None, "1Gi")];
    let backend = Arc::new(
        KubernetesBackend::new(client, settings(false), Duration::from_secs(5))
            .with_poll_interval(Duration::from_millis(20))
            .with_apps(std::slice::from_ref(&spec)),
    );
    backend.start(&request("n1", spec)).await.unwrap();
    let posted: Vec<String> = cluster
        .seen()
        .into_iter()
        .filter(|s| s.method == http::Method::POST)
        .map(|s| s.path)
        .collect();
    assert_eq!(
        posted,
        [
            "/api/v1/namespaces/team-a/persistentvolumeclaims",
            "/api/v1/namespaces/team-a/pods",
            "/api/v1/namespaces/team-a/services"
        ]
    );
    assert_eq!(
        backend.health("n1").await,
        vestibule::backend::Health::Running
    );
    assert_eq!(backend.list().await, ["n1"], "found in its own namespace");
    backend.stop("n1").await.unwrap();
    let all_gone = eventually(Duration::from_secs(5), || async {
        ["pods", "services", "persistentvolumeclaims"]
            .iter()
            .all(|r| cluster.names(r).is_empty())
    })
    .await;
    assert!(all_gone, "{:?}", cluster.names("persistentvolumeclaims"));
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn a_volume_that_does_not_mount_is_named_when_the_pod_times_out() {
    let (client, cluster) = FakeCluster::start(vec![container_creating(IMAGE)]);
    cluster.insert(
        "events",
        event(
            "sp-pod-v1",
            "Warning",
            "FailedMount",
            "MountVolume.SetUp failed for volume \"home\" : persistentvolumeclaim \"home-alice\" not found",
        ),
    );
    let mut s = settings(true);
    s.pod_wait_time = Duration::from_millis(200);
    let err = backend(client, s)
        .start(&request("v1", spec()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not start within 0.2 s"), "{err}");
    assert!(
        err.contains("a volume could not be mounted")
            && err.contains("persistentvolumeclaim \"home-alice\" not found"),
        "{err}"
    );
    let events_read = cluster
        .seen()
        .into_iter()
        .find(|s| resource_path(&s.path) == "events")
        .unwrap();
    assert!(
        events_read
            .query
            .contains("involvedObject.name%3Dsp-pod-v1"),
        "{}",
        events_read.query
    );
    assert_role_covers(&cluster);
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
    assert!(
        eventually(Duration::from_secs(5), || async {
            cluster.get("persistentvolumeclaims", "old-alice").is_none()
        })
        .await
    );
    assert_eq!(
        cluster.get("persistentvolumeclaims", "shared").unwrap()["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );

    let owned: Value = serde_json::from_str(
        created(&cluster, "pods")[0]["metadata"]["annotations"]["vestibule.io/owned-objects"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let owned_names: Vec<&str> = owned
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(owned_names, ["scratch-alice", "cache-alice", "shared"]);

    backend.stop("h1").await.unwrap();
    let only_home = eventually(Duration::from_secs(5), || async {
        cluster.names("persistentvolumeclaims") == ["home-alice"]
    })
    .await;
    assert!(
        only_home,
        "only the persistent claim outlives the app: {:?}",
        cluster.names("persistentvolumeclaims")
    );

    // The next launch finds the persistent claim and leaves it alone (CreateOnce).
    backend.start(&request("h2", spec)).await.unwrap();
    let home_posts = created(&cluster, "persistentvolumeclaims")
        .iter()
        .filter(|c| c["metadata"]["name"] == "home-alice")
        .count();
    assert_eq!(home_posts, 1);
    assert_role_covers(&cluster);
}

#[tokio::test]
async fn manifest_kinds_are_looked_up_in_the_cluster() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let backend = backend(client, settings(true));
    let mut spec = spec();
    spec.kubernetes.additional_manifests = vec![json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "only-vestibule-#{proxy.userId}"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})];
    // The shipped Role covers claims only: another kind is refused, and the user told why.
    let err = backend
        .start(&request("k1", spec.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("networkpolicies is forbidden") && err.contains("namespace \"shiny\""),
        "{err}"
    );
    assert!(
        cluster.seen().iter().any(|s| s.path
            == "/apis/networking.k8s.io/v1/namespaces/shiny/networkpolicies/only-vestibule-alice"),
        "the plural comes from discovery: {:?}",
        cluster.calls()
    );

    spec.kubernetes.additional_manifests = vec![json!({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-#{proxy.userId}"},
        "spec": {"capacity": {"storage": "1Gi"}}})];
    let err = backend
        .start(&request("k2", spec.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PersistentVolume is a cluster-wide kind"),
        "{err}"
    );

    spec.kubernetes.additional_manifests =
        vec![json!({"apiVersion": "v1", "kind": "Frobnicator", "metadata": {"name": "f"}})];
    let err = backend
        .start(&request("k3", spec))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the cluster does not serve Frobnicator in v1"),
        "{err}"
    );
    assert!(
        !cluster.names("pods").contains(&"sp-pod-k3".to_string()),
        "no pod is created when a manifest fails"
    );
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

#[test]
fn client_certificates_service_type_and_cluster_domain_are_read() {
    let dir = std::env::temp_dir().join(format!("vestibule-kcerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |extra: &str| {
        let yaml = format!(
            "proxy:\n  container-backend: kubernetes\n  kubernetes:\n    url: https://10.0.0.1:6443\n{extra}  specs:\n  - id: a\n    container-image: img\n"
        );
        vestibule::config::load_str(
            std::path::Path::new("k.yml"),
            &yaml,
            &std::collections::HashMap::<String, String>::new(),
        )
    };
    let certs = dir.display().to_string();
    std::fs::write(dir.join("ca.pem"), "x").unwrap();
    let err = load(&format!("    cert-path: {certs}\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("k.yml:5:16") && err.contains("missing: cert.pem, key.pem"),
        "{err}"
    );
    for f in ["cert.pem", "key.pem"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let loaded = load(&format!(
        "    cert-path: {certs}\n    service-type: ClusterIP\n    cluster-domain: cluster.local\n"
    ))
    .unwrap();
    let k = &loaded.config.proxy.kubernetes;
    assert_eq!(k.cert_path.as_deref(), Some(dir.as_path()));
    assert_eq!(k.service_type, ServiceType::ClusterIp);
    let warned: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("cluster-domain") && w.contains("ignored")),
        "{warned:?}"
    );
    let err = load("    service-type: LoadBalancer\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("k.yml:5:19") && err.contains("NodePort"),
        "{err}"
    );
}

/// An API server on real TLS that demands a client certificate (openssl's test server, which
/// answers `GET /version` from a file): `cert-path` must present ours and trust its CA.
#[tokio::test]
async fn cert_path_presents_a_client_certificate_to_the_api_server() {
    common::chrome::install_tls_provider();
    let dir = std::env::temp_dir().join(format!("vestibule-kapi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certs::make_certificates(&dir);
    certs::make_client_certificate(&dir, "vestibule");
    let version =
        r#"{"major":"1","minor":"33","gitVersion":"v1.33.5-eks-test","platform":"linux/amd64"}"#;
    std::fs::write(
        dir.join("version"),
        format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{version}"),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-HTTP", "-accept"])
        .arg(port.to_string())
        .args([
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-CAfile",
            "ca.pem",
            "-Verify",
            "1",
            "-verify_return_error",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("vestibule.pem", "cert.pem"),
        ("vestibule.key", "key.pem"),
    ] {
        std::fs::copy(dir.join(from), keys.join(to)).unwrap();
    }
    let mut s = settings(true);
    s.url = Some(format!("https://127.0.0.1:{port}"));
    s.cert_path = Some(keys.clone());
    let client = vestibule::backend::kubernetes::connect(&s).await.unwrap();
    let answer = client.apiserver_version().await;

    // A client certificate from a CA the server does not know is refused.
    let stranger = dir.join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    certs::make_certificates(&stranger);
    certs::make_client_certificate(&stranger, "intruder");
    std::fs::copy(stranger.join("intruder.pem"), keys.join("cert.pem")).unwrap();
    std::fs::copy(stranger.join("intruder.key"), keys.join("key.pem")).unwrap();
    let refused = match vestibule::backend::kubernetes::connect(&s).await {
        Ok(c) => c.apiserver_version().await.is_err(),
        Err(_) => true,
    };
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        answer
            .expect("version over TLS with a client certificate")
            .git_version,
        "v1.33.5-eks-test"
    );
    assert!(
        refused,
        "a certificate the API server does not trust must be refused"
    );
}

/// A user name becomes part of a hostPath: one that would climb out of the configured folder is
/// refused before anything is created (as with Docker).
#[tokio::test]
async fn a_user_name_cannot_climb_out_of_a_host_volume() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let mut req = request("u1", spec());
    req.owner = "../../etc".into();
    req.env
        .insert("SHINYPROXY_USERNAME".into(), "../../etc".into());
    let err = backend(client, settings(true))
        .start(&req)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be used in a volume path"), "{err}");
    assert!(created(&cluster, "pods").is_empty());
}

/// A pool's members and seat containers are pods like any other, labelled as shared so they can
/// be selected (`vestibule.io/shared=pool,vestibule.io/spec-id=<app>`); seat containers also
/// carry ShinyProxy's delegate label.
#[tokio::test]
async fn shared_instances_are_labelled_as_members_of_their_pool_or_seats() {
    for (kind, delegate) in [("pool", None), ("seats", Some("true"))] {
        let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
        let backend = backend(client, settings(true));
        let mut spec = spec();
        spec.container_volumes.clear();
        if kind == "pool" {
            spec.pool = Some(vestibule::config::PoolSettings::default());
        } else {
            spec.seats = Some(vestibule::config::SeatSettings {
                minimum_available: 1,
                per_container: 1,
                allow_reuse: true,
                scale_down_delay: Duration::from_secs(60),
            });
        }
        let mut req = request("m1", spec);
        req.owner = String::new();
        req.env.remove("SHINYPROXY_USERNAME");
        tokio::time::timeout(Duration::from_secs(5), backend.start(&req))
            .await
            .expect("started in time")
            .expect("started");
        let pod = &created(&cluster, "pods")[0];
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["vestibule.io/shared"], kind);
        assert_eq!(labels["vestibule.io/spec-id"], "01_hello");
        assert_eq!(
            labels["openanalytics.eu/sp-delegate-proxy"].as_str(),
            delegate
        );
    }
}
