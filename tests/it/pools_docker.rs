//! A pool on the Docker engine (500 requests at once from zero): the same lifecycle code as with processes, only starting and
//! stopping differ. The FastAPI fixture runs in the scratch test image with the host's Python
//! mounted read-only.

use crate::common::app_browser::venv;
use crate::common::docker::*;
use crate::common::*;
use std::time::Duration;
use vestibule::config::PoolSettings;

#[tokio::test]
async fn a_fastapi_pool_in_containers_scales_from_zero_and_back() {
    let venv = venv();
    let python = venv.join("bin/python");
    let mut spec = docker_spec("api", &[python.to_str().unwrap_or_default(), "/app/app.py"]);
    spec.container_volumes = vec![
        "/usr:/usr:ro".into(),
        format!("{0}:{0}:ro", venv.display()),
        format!("{}:/app:ro", repo_path("tests/apps/fastapi_api").display()),
    ];
    // The image's loader has no cache of the host's library folders.
    spec.container_env
        .insert("LD_LIBRARY_PATH".into(), "/usr/lib/x86_64-linux-gnu".into());
    spec.container_env.insert("HOME".into(), "/tmp".into());
    spec.container_env
        .insert("PORT".into(), APP_PORT.to_string());
    spec.container_env.insert("HOST".into(), "0.0.0.0".into());
    spec.max_instances = None;
    spec.public = true;
    spec.pool = Some(PoolSettings {
        min_instances: 0,
        max_instances: 3,
        target_concurrency: 10,
        scale_down_delay: Duration::from_secs(2),
        session_affinity: false,
        stable_window: Duration::from_secs(3),
        queue_limit: 1000,
        client_rate_limit: None,
    });
    let mut cfg = docker_config("pool", vec![spec]);
    cfg.proxy.container_wait_time = Duration::from_secs(60);
    let _cleanup = RealmGuard(cfg.clone());
    let server = TestServer::start(cfg.clone()).await;
    let realm = format!("label=vestibule.realm={}", cfg.proxy.docker.realm_id);
    let containers = || {
        // Labelled as pool members, so `docker ps` can select them.
        docker(&[
            "ps",
            "-q",
            "--filter",
            &realm,
            "--filter",
            "label=vestibule.shared=pool",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
    };
    assert_eq!(containers(), 0, "nothing runs before the first request");

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = server.url("/app_direct/api/work?ms=300");
    let burst = (0..500).map(|_| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let resp = http.get(&url).send().await.expect("send");
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (
                status.as_u16(),
                body["instance"].as_str().unwrap_or_default().to_string(),
            )
        }
    });
    let answers = futures_util::future::join_all(burst).await;
    let failed = answers.iter().filter(|(s, _)| *s != 200).count();
    assert_eq!(
        failed, 0,
        "every request of the burst was served: {answers:?}"
    );
    // All requests may well be served by the first container to be ready (they are held
    // until one is, and each takes 300 ms); the burst still scaled the pool out.
    let started = containers();
    assert!(
        started >= 2,
        "the burst started several containers: {started}"
    );

    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if containers() == 0 {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the pool's containers are removed once the load is gone"
    );
    server.shutdown().await;
}
