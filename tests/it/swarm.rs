//! The Docker Swarm backend against the real engine (a one-node swarm, started when needed):
//! each instance is a one-replica service, proxied with its WebSocket, limited, removed on stop,
//! failing in words, and adopted by a restarted server.

use crate::common::docker::*;
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn a_service_is_proxied_with_its_websocket_limited_and_removed_on_stop() {
    let mut spec = demo_spec("demo");
    spec.container.memory_limit = Some(vestibule::config::MemoryQuantity::parse("256m").unwrap());
    spec.container.cpu_limit = Some(vestibule::config::CpuQuantity::parse("0.5").unwrap());
    let cfg = swarm_config("proxy", vec![spec]);
    demo_is_proxied_and_removed_on_stop(&cfg, |_, service| {
        let facts = docker(&[
            "service",
            "inspect",
            "-f",
            "{{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} \
             {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}} {{index .Spec.Labels \"vestibule.user\"}}",
            service,
        ]);
        assert_eq!(facts, "1 268435456 500000000 alice");
    })
    .await;
}

#[tokio::test]
async fn swarm_failures_are_told_in_words() {
    let mut missing = token_spec("missing");
    missing.container_image = Some("vestibule-test-missing:nope".into());
    let crash = shell_spec("crash", "echo missing-config-file >&2; exit 3");
    let mut nowhere = token_spec("nowhere");
    nowhere.docker.swarm_constraints = vec!["node.labels.vestibule-no-such-label == yes".into()];
    let cfg = swarm_config("failures", vec![missing, crash, nowhere]);
    let server = TestServer::start(cfg.clone()).await;
    let alice = Browser::login(&server, "alice").await;

    assert_launch_fails(&alice, "missing", &["'vestibule-test-missing:nope'"]).await;
    assert_launch_fails(&alice, "crash", &["exited with code 3"]).await;
    assert_launch_fails(&alice, "nowhere", &["no suitable node"]).await;

    let gone = eventually(Duration::from_secs(10), || async {
        services_of(&cfg).is_empty()
    })
    .await;
    assert!(gone, "failed services are removed");
    server.shutdown().await;
    remove_services(&cfg);
}

#[tokio::test]
async fn a_restarted_server_adopts_running_services() {
    let cfg = swarm_config("recover", vec![token_spec("tokens")]);
    a_restarted_server_adopts_the_instance(cfg, async |_, _, _| {}).await;
}

#[tokio::test]
async fn a_task_killed_from_outside_shows_as_failed_with_its_last_lines() {
    let cfg = swarm_config("killed", vec![last_words_spec("doomed")]);
    a_killed_container_shows_as_failed_with_its_last_lines(cfg).await;
}
