//! The mocked API server is only worth testing against if it is as strict as a real one: these
//! check the answers the backend's fixes depend on, with kube's client as the backend uses it.

use super::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{
    Api, DeleteParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]}}))
    .unwrap()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API answer: {other}"),
    }
}

#[tokio::test]
async fn objects_are_kept_per_namespace_with_versions_and_validation() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pp = PostParams::default();
    let made = pods.create(&pp, &pod("p1")).await.unwrap();
    assert_eq!(code(pods.create(&pp, &pod("p1")).await.unwrap_err()), 409);
    assert_eq!(
        code(pods.create(&pp, &pod("Not_A_Name")).await.unwrap_err()),
        422
    );
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), "vestibule");
    let refused = elsewhere.get("p1").await.unwrap_err();
    assert_eq!(
        code(refused),
        403,
        "the Role is not bound in vestibule's own namespace"
    );
    cluster.grant_role_in("vestibule");
    assert_eq!(
        code(elsewhere.get("p1").await.unwrap_err()),
        404,
        "keyed by namespace"
    );
    cluster.grant_role_in("team-b");
    let nowhere: Api<Pod> = Api::namespaced(client.clone(), "team-b");
    let missing = nowhere.create(&pp, &pod("p2")).await.unwrap_err();
    assert_eq!(code(missing), 404, "namespace team-b does not exist");

    let mut generated = pod("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("sp-pod-".into());
    let named = pods
        .create(&pp, &generated)
        .await
        .unwrap()
        .metadata
        .name
        .unwrap();
    assert!(named.starts_with("sp-pod-") && named.len() == 12, "{named}");

    let first: u64 = made.metadata.resource_version.unwrap().parse().unwrap();
    let scheduled = eventually(Duration::from_secs(2), || async {
        cluster.get("pods", "p1").unwrap()["status"]["phase"] == "Running"
    })
    .await;
    assert!(scheduled);
    let later = pods.get("p1").await.unwrap();
    let now: u64 = later
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        now > first,
        "the scheduled status is a change: {first} -> {now}"
    );
    let refused = pods
        .patch("p1", &PatchParams::default(), &Patch::Merge(&json!({})))
        .await
        .unwrap_err();
    assert_eq!(code(refused), 403, "the Role does not grant patching pods");

    // Claims may be patched: one against a stale version is a conflict.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "c1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    let made = claims.create(&pp, &claim).await.unwrap();
    let seen = made.metadata.resource_version.unwrap();
    let labelled = json!({"metadata": {"resourceVersion": seen, "labels": {"a": "b"}}});
    claims
        .patch("c1", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .unwrap();
    let conflict = claims
        .patch("c1", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .unwrap_err();
    assert_eq!(code(conflict), 409, "the version read is no longer current");
}

#[tokio::test]
async fn pods_terminate_gracefully_and_claims_wait_for_their_pods() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    cluster.apps_stop_within(Duration::from_millis(500));
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let mut user: Pod = pod("p1");
    user.spec.as_mut().unwrap().volumes = Some(vec![
        serde_json::from_value(
            json!({"name": "home", "persistentVolumeClaim": {"claimName": "home"}}),
        )
        .unwrap(),
    ]);
    pods.create(&PostParams::default(), &user).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            cluster.get("pods", "p1").unwrap()["status"]["phase"] == "Running"
        })
        .await
    );

    claims
        .delete("home", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("p1", &DeleteParams::default()).await.unwrap();
    let terminating = pods.get("p1").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let held = claims.get("home").await.unwrap();
    assert_eq!(
        held.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_string()][..]),
        "a claim in use waits"
    );
    assert_eq!(
        code(
            claims
                .create(&PostParams::default(), &claim)
                .await
                .unwrap_err()
        ),
        409,
        "its name is taken until it is gone"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            cluster.names("pods").is_empty() && cluster.names("persistentvolumeclaims").is_empty()
        })
        .await,
        "the pod goes once its app has stopped, then the claim"
    );
}

#[tokio::test]
async fn watches_resume_from_a_version_get_410_below_the_history_and_bookmarks() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let made = pods
        .create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap();
    let from = made.metadata.resource_version.unwrap();
    let wp = WatchParams::default().timeout(5);
    let mut stream = pods.watch(&wp, &from).await.unwrap().boxed();
    let mut seen_running = false;
    let mut bookmarked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !(seen_running && bookmarked) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Modified(p)))) => {
                seen_running |= p.status.and_then(|s| s.phase).as_deref() == Some("Running")
            }
            Ok(Some(Ok(WatchEvent::Bookmark(_)))) => bookmarked = true,
            _ => {}
        }
    }
    assert!(
        seen_running && bookmarked,
        "running {seen_running}, bookmark {bookmarked}"
    );

    cluster.compact();
    let mut stream = pods.watch(&wp, &from).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Error(s)))) => assert_eq!(s.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_are_per_run_and_tailed() {
    let (client, cluster) = FakeCluster::start(vec![restarted(IMAGE, true, 1)]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap();
    cluster.set_logs("p1", "app", "one\ntwo\nthree\n", "crashed\n");
    assert!(
        eventually(Duration::from_secs(2), || async {
            cluster.get("pods", "p1").unwrap()["status"]["phase"] == "Running"
        })
        .await
    );
    let tail = LogParams {
        tail_lines: Some(2),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("p1", &tail).await.unwrap(), "two\nthree\n");
    let previous = LogParams {
        previous: true,
        ..LogParams::default()
    };
    assert_eq!(pods.logs("p1", &previous).await.unwrap(), "crashed\n");

    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    pods.create(&PostParams::default(), &pod("p2"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            cluster.get("pods", "p2").unwrap()["status"]["phase"] == "Running"
        })
        .await
    );
    let err = pods.logs("p2", &previous).await.unwrap_err();
    assert_eq!(code(err), 400, "no run before the first");
}

/// The next line of a followed log, if one comes within 2 s.
async fn next_line<S: futures_util::Stream + Unpin>(
    lines: &mut S,
) -> Result<Option<S::Item>, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(2), lines.next()).await
}

/// A follow gets the lines so far, then each appended line, and ends when the container
/// stops; `sinceTime` (whole seconds) and `timestamps` are honoured; another container's name
/// is refused.
#[tokio::test]
async fn a_followed_log_streams_appended_lines_until_the_container_stops() {
    use futures_util::AsyncBufReadExt;
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    pods.create(&PostParams::default(), &pod("f1"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            cluster.get("pods", "f1").unwrap()["status"]["phase"] == "Running"
        })
        .await
    );
    cluster.set_logs("f1", "app", "before\n", "");
    let follow = LogParams {
        follow: true,
        timestamps: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream("f1", &follow).await.unwrap().lines();
    let first = next_line(&mut lines).await.unwrap().unwrap().unwrap();
    let (stamp, text) = first.split_once(' ').unwrap();
    assert_eq!(text, "before");
    let stamp: k8s_openapi::jiff::Timestamp = stamp.parse().expect("an RFC 3339 timestamp");
    cluster.append_log("f1", "app", "after");
    let second = next_line(&mut lines).await.unwrap().unwrap().unwrap();
    assert!(second.ends_with(" after"), "{second}");
    cluster.set_status(NAMESPACE, "f1", exited(IMAGE, 1));
    assert!(
        matches!(next_line(&mut lines).await, Ok(None)),
        "the follow ends with the container"
    );

    let since = LogParams {
        since_time: Some(
            stamp
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(5))
                .unwrap(),
        ),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("f1", &since).await.unwrap(), "", "nothing after");
    let other = LogParams {
        container: Some("sidecar".into()),
        ..LogParams::default()
    };
    assert_eq!(code(pods.logs("f1", &other).await.unwrap_err()), 400);
    assert_eq!(
        code(
            pods.logs("nosuch", &LogParams::default())
                .await
                .unwrap_err()
        ),
        404
    );
}

/// metrics-server serves the usage set for a running pod and 404 for one it has no sample
/// of; without it the whole group is 404.
#[tokio::test]
async fn the_metrics_api_serves_set_usage_and_404_without_a_sample_or_a_server() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.create(&PostParams::default(), &pod("m1"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            cluster.get("pods", "m1").unwrap()["status"]["phase"] == "Running"
        })
        .await
    );
    let get = |name: &str| {
        let request = http::Request::get(format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods/{name}"
        ))
        .body(Vec::new())
        .unwrap();
        let client = client.clone();
        async move { client.request::<Value>(request).await }
    };
    assert_eq!(code(get("m1").await.unwrap_err()), 404, "not sampled yet");
    cluster.set_pod_usage("m1", &[("app", "3m", "10Mi")]);
    let metrics = get("m1").await.unwrap();
    assert_eq!(metrics["kind"], "PodMetrics");
    assert_eq!(metrics["containers"][0]["usage"]["cpu"], "3m");
    assert_eq!(code(get("nosuch").await.unwrap_err()), 404);
    cluster.without_metrics_server();
    assert_eq!(code(get("m1").await.unwrap_err()), 404, "no such group");
}
