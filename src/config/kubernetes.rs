//! Settings of the Kubernetes backend: the proxy-wide `proxy.kubernetes.*` section and each
//! app's `kubernetes-*` extensions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How vestibule reaches an instance when it cannot reach pod IPs (`internal-networking: false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// ShinyProxy's way, for a server outside the cluster: the node's IP and the Service's node
    /// port.
    NodePort,
    /// The Service's cluster IP, for a server inside the cluster whose pods' IPs are not
    /// reachable.
    ClusterIp,
}

/// What `cert-path` holds, as ShinyProxy (and Docker) name the files.
pub const CERT_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// `proxy.kubernetes.url`, e.g. a `kubectl proxy` sidecar; `None` = kubeconfig or in-cluster.
    pub url: Option<String>,
    pub namespace: String,
    /// `true`: reach the pod IP; `false`: a Service per instance.
    pub internal_networking: bool,
    /// `proxy.kubernetes.service-type` (vestibule's own key): the kind of that Service.
    pub service_type: ServiceType,
    /// `proxy.kubernetes.cert-path`: a directory with `ca.pem`, `cert.pem` and `key.pem` for a
    /// `url` that needs a client certificate.
    pub cert_path: Option<PathBuf>,
    /// `proxy.realm-id`: pods of other realms (another vestibule in the namespace) are left alone.
    pub realm_id: String,
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
            service_type: ServiceType::NodePort,
            cert_path: None,
            realm_id: "default".into(),
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
