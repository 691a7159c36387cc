//! A pod's CPU and memory from the metrics API (metrics-server), as `kubectl top pod` shows
//! them: the usage of its containers, summed.
//!
//! A cluster without metrics-server answers 404 (the group is not there) or 503 (its
//! APIService is registered but nobody serves it); the console then shows the figures as
//! unknown, and the log says why once.

use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::ResourceUsage;
use crate::backend::resources::{kube_cpu_percent, kube_memory_bytes};

#[derive(Debug, Deserialize)]
struct PodMetrics {
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    usage: Usage,
}

#[derive(Debug, Default, Deserialize)]
struct Usage {
    cpu: Option<String>,
    memory: Option<String>,
}

/// Whether the metrics API's absence has been logged already.
#[derive(Debug, Default)]
pub struct Quiet(AtomicBool);

/// The pod's usage now; `None` when the metrics API is missing, refuses, or has no reading
/// for the pod yet (metrics-server samples every 15 s or so).
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    quiet: &Quiet,
) -> Option<ResourceUsage> {
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
        urlencoding::encode(namespace),
        urlencoding::encode(pod)
    );
    let request = http::Request::get(path).body(Vec::new()).ok()?;
    match client.request::<PodMetrics>(request).await {
        Ok(metrics) => summed(&metrics),
        // metrics-server has no sample of this pod yet (its first 15 s or so): nothing to say.
        Err(kube::Error::Api(s)) if s.code == 404 && s.message.contains("podmetrics") => None,
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 503) => {
            if !quiet.0.swap(true, Ordering::Relaxed) {
                tracing::debug!(pod, code = s.code, message = %s.message,
                    "no CPU and memory from the metrics API (is metrics-server installed?)");
            }
            None
        }
        Err(e) => {
            if !quiet.0.swap(true, Ordering::Relaxed) {
                tracing::warn!(pod, error = %e,
                    "cannot read CPU and memory from the metrics API (the Role needs get on metrics.k8s.io pods)");
            }
            None
        }
    }
}

/// The containers' usage added up; a figure none of them reports stays unknown.
fn summed(metrics: &PodMetrics) -> Option<ResourceUsage> {
    let cpu: Vec<f64> = metrics
        .containers
        .iter()
        .filter_map(|c| kube_cpu_percent(c.usage.cpu.as_deref()?))
        .collect();
    let memory: Vec<u64> = metrics
        .containers
        .iter()
        .filter_map(|c| kube_memory_bytes(c.usage.memory.as_deref()?))
        .collect();
    if cpu.is_empty() && memory.is_empty() {
        return None;
    }
    Some(ResourceUsage {
        cpu_percent: (!cpu.is_empty()).then(|| cpu.iter().sum()),
        memory_bytes: (!memory.is_empty()).then(|| memory.iter().sum()),
        memory_limit_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_summed_in_percent_of_a_core_and_bytes() {
        let metrics: PodMetrics = serde_json::from_value(serde_json::json!({
            "kind": "PodMetrics",
            "containers": [
                {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                {"name": "sidecar", "usage": {"cpu": "5000000n", "memory": "512Ki"}}
            ]
        }))
        .unwrap_or(PodMetrics { containers: vec![] });
        let usage = summed(&metrics).unwrap_or_default();
        assert!(
            (usage.cpu_percent.unwrap_or_default() - 25.5).abs() < 1e-9,
            "{usage:?}"
        );
        assert_eq!(usage.memory_bytes, Some(64 * 1024 * 1024 + 512 * 1024));
        assert_eq!(summed(&PodMetrics { containers: vec![] }), None);
    }
}
