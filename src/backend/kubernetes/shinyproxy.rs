//! Taking over the pods a running ShinyProxy started, so a team can replace it without stopping
//! users' apps. What ShinyProxy's labels and annotations mean is in
//! [`crate::backend::shinyproxy`].

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::{Instance, KubernetesBackend, address, crash, naming};
use crate::backend::Recovered;
use crate::backend::shinyproxy::{self as sp, SpApp};

impl KubernetesBackend {
    /// ShinyProxy's running app pods of this realm, each adopted under its proxy id, so the
    /// `/app_proxy/<id>/` a user's open page uses keeps working. Nothing of ShinyProxy's is
    /// removed here: what is not adopted is left to whoever started it.
    pub(super) async fn recover_shinyproxy(&self) -> Vec<Recovered> {
        let lp = ListParams::default().labels(&format!("{}=true", sp::PROXIED_APP));
        let mut found = Vec::new();
        for namespace in &self.namespaces {
            let pods = match self.pods(namespace).list(&lp).await {
                Ok(list) => list.items,
                Err(e) => {
                    tracing::warn!(namespace, error = %e, "could not list ShinyProxy's pods");
                    continue;
                }
            };
            for pod in pods {
                if let Some(r) = self.adopt_shinyproxy_pod(&pod).await {
                    found.push(r);
                }
            }
        }
        found
    }

    async fn adopt_shinyproxy_pod(&self, pod: &Pod) -> Option<Recovered> {
        let name = pod.metadata.name.clone()?;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if labels.contains_key(naming::INSTANCE_LABEL) || pod.metadata.deletion_timestamp.is_some()
        {
            // vestibule's own, or on its way out.
            return None;
        }
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let marks: HashMap<String, String> = labels.into_iter().chain(annotations).collect();
        let app = match sp::read(&marks, &self.settings.realm_id) {
            Ok(app) => app,
            Err(why) => {
                tracing::debug!(pod = %name, why, "not adopting a ShinyProxy pod");
                return None;
            }
        };
        let Some(address) = self.shinyproxy_address(pod, &app).await else {
            tracing::info!(pod = %name, proxy = %app.proxy_id, "leaving a ShinyProxy pod that does not serve alone");
            return None;
        };
        self.shared.instances.lock().insert(
            app.proxy_id.clone(),
            Instance {
                namespace: pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.settings.namespace.clone()),
                serving_restarts: Some(crash::restarts(pod)),
                pod_name: Some(name),
                service_name: Some(service_name(&app.proxy_id)),
                memory_limit: super::memory_limit(pod),
                ..Instance::default()
            },
        );
        self.follow_log(&app.proxy_id, pod);
        Some(app.recovered(address))
    }

    /// Where ShinyProxy reached the pod, the way vestibule reaches its own: the app's port at
    /// the pod's IP, or through the Service ShinyProxy made for it.
    async fn shinyproxy_address(&self, pod: &Pod, app: &SpApp) -> Option<SocketAddr> {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        // A pod in CrashLoopBackOff is Running by phase but serves nobody.
        if !running || crash::crash_of(pod, crash::restarts(pod)).is_some() {
            return None;
        }
        if self.settings.internal_networking {
            let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
            return address(ip, app.port).ok().map(|s| s.address);
        }
        let namespace = pod.metadata.namespace.as_deref()?;
        let service = self
            .services(namespace)
            .get(&service_name(&app.proxy_id))
            .await
            .ok()?;
        self.service_address(pod, &service, app.port)
            .ok()
            .map(|s| s.address)
    }
}

/// The Service ShinyProxy makes for a proxy's first container when not on internal networking.
fn service_name(proxy_id: &str) -> String {
    format!("sp-service-{proxy_id}-0")
}
