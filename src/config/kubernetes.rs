//! Settings of the Kubernetes backend: the proxy-wide `proxy.kubernetes.*` section and each
//! app's `kubernetes-*` extensions.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// `proxy.kubernetes.url`, e.g. a `kubectl proxy` sidecar; `None` = kubeconfig or in-cluster.
    pub url: Option<String>,
    pub namespace: String,
    /// `true`: reach the pod IP; `false`: a Service per instance.
    pub internal_networking: bool,
    pub image_pull_policy: Option<String>,
    pub image_pull_secrets: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    /// How long a pod may take to be scheduled and have its image pulled.
    pub pod_wait_time: Duration,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            url: None,
            namespace: "default".into(),
            internal_networking: false,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            node_selector: BTreeMap::new(),
            pod_wait_time: Duration::from_millis(60_000),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubernetesSpecSettings {
    /// `kubernetes-pod-patches`: an RFC 6902 patch applied to the generated pod.
    pub pod_patches: Option<json_patch::Patch>,
    /// Created with the instance and deleted with it.
    pub additional_manifests: Vec<serde_json::Value>,
    /// Created with the instance and left in place when it stops (e.g. a per-user volume claim).
    pub persistent_manifests: Vec<serde_json::Value>,
}
