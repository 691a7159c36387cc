//! A pod that was serving and then crashed: with restartPolicy Always or OnFailure (which a pod
//! patch may set) the pod stays Running while its app crash-loops or restarts without its
//! users' state, so the phase alone does not tell.

use super::*;
use crate::common::failed;
use crate::common::{Browser, TestServer};
use tokio::sync::broadcast;
use vestibule::backend::{Exit, Health};

/// As an app's pod patches may set: a crashed container is restarted.
fn restarting_spec() -> AppSpec {
    let mut spec = spec();
    spec.kubernetes.pod_patches = Some(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/spec/restartPolicy", "value": "Always"}]),
        )
        .unwrap(),
    );
    spec
}

async fn next_exit(exits: &mut broadcast::Receiver<Exit>) -> Exit {
    tokio::time::timeout(Duration::from_secs(5), exits.recv())
        .await
        .expect("an exit is reported within 5 s")
        .expect("the exits channel is open")
}

const LAST_WORDS: &str =
    "Listening on http://0.0.0.0:3838\nWarning: Error in readRDS: cannot open the connection\n";

#[tokio::test]
async fn a_serving_app_that_crash_loops_is_reported_with_its_previous_output() {
    let (client, cluster) = FakeCluster::start_timed(vec![
        (Duration::ZERO, running(IMAGE, true)),
        (Duration::from_millis(500), crash_loop(IMAGE, 1)),
    ]);
    cluster.set_logs("sp-pod-c1", "app", "", LAST_WORDS);
    let backend = backend(client, settings(true));
    let mut exits = backend.exits().expect("the backend reports exits");
    backend
        .start(&request("c1", restarting_spec()))
        .await
        .unwrap();
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.instance_id, "c1");
    assert!(exit.how.contains("CrashLoopBackOff"), "{}", exit.how);
    assert_eq!(
        backend.last_log_lines("c1", 1),
        ["Warning: Error in readRDS: cannot open the connection"],
        "the output of the run that crashed"
    );
    assert!(
        matches!(backend.health("c1").await, Health::Exited(_)),
        "the pod is Running by phase, but its app is not"
    );
    assert_role_covers(&cluster);
}

/// Without CrashLoopBackOff (the app came back at once), a restart still lost every session.
#[tokio::test]
async fn a_serving_app_that_restarted_is_unhealthy() {
    let (client, cluster) = FakeCluster::start_timed(vec![
        (Duration::ZERO, running(IMAGE, true)),
        (Duration::from_millis(600), restarted(IMAGE, true, 1)),
    ]);
    cluster.set_logs(
        "sp-pod-c2",
        "app",
        "Listening on http://0.0.0.0:3838\n",
        LAST_WORDS,
    );
    let backend = backend(client, settings(true));
    backend
        .start(&request("c2", restarting_spec()))
        .await
        .unwrap();
    assert_eq!(backend.health("c2").await, Health::Running);
    let how = Arc::new(Mutex::new(String::new()));
    let noticed = eventually(Duration::from_secs(5), || {
        let (backend, how) = (backend.clone(), how.clone());
        async move {
            match backend.health("c2").await {
                Health::Exited(h) => {
                    *how.lock() = h;
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    assert!(noticed, "a restart is a crash");
    let how = how.lock().clone();
    assert!(
        how.contains("exit code 1") && how.contains("restarted"),
        "{how}"
    );
    assert_eq!(
        backend.last_log_lines("c2", 1),
        ["Warning: Error in readRDS: cannot open the connection"]
    );
    assert_role_covers(&cluster);
}

/// The watch that reports exits is ended by the server (a restart, a proxy's timeout), and the
/// history it would resume from is compacted meanwhile (410 Gone): the exit in between is
/// still reported, from a new list.
#[tokio::test]
async fn an_exit_while_the_watch_is_down_is_not_lost() {
    let (client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let backend = backend(client, settings(true));
    let mut exits = backend.exits().expect("the backend reports exits");
    backend.start(&request("o1", spec())).await.unwrap();
    let watching = eventually(Duration::from_secs(5), || async {
        cluster
            .seen()
            .iter()
            .any(|s| s.query.contains("watch=true") && s.query.contains("labelSelector"))
    })
    .await;
    assert!(watching, "the realm's pods are watched");
    cluster.set_logs("sp-pod-o1", "app", "Killed\n", "");
    cluster.while_watches_are_down(|c| c.set_status(NAMESPACE, "sp-pod-o1", exited(IMAGE, 137)));
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.instance_id, "o1");
    assert!(exit.how.contains("exited with code 137"), "{}", exit.how);
    assert_eq!(backend.last_log_lines("o1", 1), ["Killed"]);

    // Watches that merely end are resumed: a later exit is reported too.
    backend.start(&request("o2", spec())).await.unwrap();
    cluster.end_watches();
    cluster.set_status(NAMESPACE, "sp-pod-o2", exited(IMAGE, 2));
    let exit = next_exit(&mut exits).await;
    assert_eq!(
        (exit.instance_id.as_str(), exit.how.as_str()),
        ("o2", "exited with code 2")
    );
    assert_role_covers(&cluster);
}

/// Through the whole server: a user's app runs in a pod, crashes, and the server notices
/// (its route goes, the user sees it failed with the app's last output).
#[tokio::test]
async fn the_server_notices_a_crashed_pod_and_removes_its_route() {
    let (_client, cluster) = FakeCluster::start(vec![running(IMAGE, true)]);
    let cfg = server_config(&cluster, restarting_spec(), serve_app().await);
    let server = TestServer::start(cfg).await;
    let alice = Browser::login(&server, "alice").await;
    let view = alice.launch("01_hello").await;
    assert_eq!(view["status"], "Up", "{view:#}");
    let id = view["id"].as_str().expect("id").to_string();
    let page = alice.get(&format!("/app_proxy/{id}/")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), "hello from the pod");

    let pod = format!("sp-pod-{id}");
    cluster.set_logs(&pod, "app", "", LAST_WORDS);
    cluster.set_status(NAMESPACE, &pod, crash_loop(IMAGE, 1));
    let view_of = || async {
        let resp = alice.get(&format!("/api/proxy/{id}")).await;
        resp.json::<Value>()
            .await
            .map(|b| b["data"].clone())
            .unwrap_or_default()
    };
    let failed = eventually(Duration::from_secs(10), || async {
        failed(&view_of().await)
    })
    .await;
    let last = view_of().await;
    assert!(failed, "the crashed pod is not shown as failed: {last:#}");
    assert!(
        last["logLines"].to_string().contains("Error in readRDS"),
        "{last:#}"
    );
    let after = alice.get(&format!("/app_proxy/{id}/")).await;
    assert_ne!(after.status(), 200, "the route of a crashed app is gone");
    server.shutdown().await;
    assert_role_covers(&cluster);
}
