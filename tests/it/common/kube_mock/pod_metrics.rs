//! `GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods/NAME`, as metrics-server answers it:
//! the usage the test set for the pod's containers, 404 for a pod it has no sample of (not
//! there, not running, or too young), and 404 for the whole group when the cluster has no
//! metrics-server ([`super::FakeCluster::without_metrics_server`]).

use axum::response::Response;
use serde_json::json;

use super::store::Key;
use super::{State, refuse, reply};

/// (container, cpu quantity, memory quantity).
pub type ContainerUsage = (String, String, String);

pub fn answer(state: &State, verb: &str, k: &Key) -> Response {
    if !state.metrics_server {
        return refuse((
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        ));
    }
    if verb != "get" {
        return refuse((
            405,
            "MethodNotAllowed",
            format!("{verb} is not served here"),
        ));
    }
    let sampled = state
        .store
        .get(k)
        .ok()
        .filter(|pod| pod["status"]["phase"] == "Running")
        .zip(state.usage.get(k));
    let Some((pod, containers)) = sampled else {
        return refuse((
            404,
            "NotFound",
            format!("podmetrics.metrics.k8s.io \"{}/{}\" not found", k.0, k.2),
        ));
    };
    let containers: Vec<_> = containers
        .iter()
        .map(|(name, cpu, memory)| json!({"name": name, "usage": {"cpu": cpu, "memory": memory}}))
        .collect();
    reply(
        http::StatusCode::OK,
        json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
               "metadata": {"name": k.2, "namespace": k.0,
                            "labels": pod["metadata"]["labels"].clone(),
                            "creationTimestamp": k8s_openapi::jiff::Timestamp::now().to_string()},
               "timestamp": k8s_openapi::jiff::Timestamp::now().to_string(),
               "window": "15.002s", "containers": containers}),
    )
}
