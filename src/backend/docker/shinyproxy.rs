//! Taking over the containers a running ShinyProxy started, so a team can replace it without
//! stopping users' apps. What ShinyProxy's labels mean is in [`crate::backend::shinyproxy`].

use bollard::models::{ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use super::{DockerBackend, describe, labels, network_ip};
use crate::backend::Recovered;
use crate::backend::shinyproxy as sp;

impl DockerBackend {
    /// ShinyProxy's running app containers of this realm, each adopted under its proxy id, so
    /// the `/app_proxy/<id>/` a user's open page uses keeps working. Nothing of ShinyProxy's is
    /// removed here: what is not adopted is left to whoever started it.
    pub(super) async fn recover_shinyproxy(&self) -> Vec<Recovered> {
        let containers = match self.shinyproxy_containers(None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list ShinyProxy's containers to adopt");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for c in containers {
            if let Some(r) = self.adopt_shinyproxy_container(c).await {
                found.push(r);
            }
        }
        found
    }

    async fn adopt_shinyproxy_container(&self, c: ContainerSummary) -> Option<Recovered> {
        let container_id = c.id?;
        let marks = c.labels.unwrap_or_default();
        if marks.contains_key(labels::INSTANCE_ID) {
            // vestibule's own, recovered as such.
            return None;
        }
        let app = match sp::read(&marks, &self.settings.realm_id) {
            Ok(app) => app,
            Err(why) => {
                tracing::debug!(container = %container_id, why, "not adopting a ShinyProxy container");
                return None;
            }
        };
        if c.state != Some(ContainerSummaryStateEnum::RUNNING) {
            // As ShinyProxy's own recovery does: a stopped app is nobody's work any more.
            tracing::info!(container = %container_id, proxy = %app.proxy_id, "leaving a stopped ShinyProxy container alone");
            return None;
        }
        let address = match self.docker.inspect_container(&container_id, None).await {
            Ok(info) => self.shinyproxy_address(&info, app.port),
            Err(e) => {
                tracing::warn!(container = %container_id, error = %describe(&e), "cannot inspect a ShinyProxy container");
                return None;
            }
        };
        let Some(address) = address else {
            tracing::warn!(container = %container_id, proxy = %app.proxy_id, port = app.port, "a ShinyProxy container has no reachable address for its port; left alone");
            return None;
        };
        let host_port = (!self.settings.internal_networking).then_some(address.port());
        self.track(&app.proxy_id, container_id, host_port, true);
        Some(app.recovered(address))
    }

    /// Where ShinyProxy reached the container, the way vestibule reaches its own: the app's
    /// port on the container's network, or the host port ShinyProxy published it on.
    fn shinyproxy_address(&self, info: &ContainerInspectResponse, port: u16) -> Option<SocketAddr> {
        if self.settings.internal_networking {
            let network = info
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone());
            return Some(SocketAddr::new(network_ip(info, network.as_deref())?, port));
        }
        let bindings = info.host_config.as_ref()?.port_bindings.as_ref()?;
        let host_port = bindings
            .get(&format!("{port}/tcp"))?
            .as_ref()?
            .iter()
            .find_map(|b| b.host_port.as_deref()?.parse().ok())?;
        Some(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)))
    }

    /// Removes every container of a ShinyProxy proxy: an app of several `container-specs` has
    /// one per spec, all with the proxy's id.
    pub(super) async fn remove_shinyproxy_containers(&self, proxy_id: &str) -> Result<(), String> {
        for container in self.shinyproxy_containers(Some(proxy_id)).await? {
            if let Some(id) = container.id {
                self.remove(&id).await?;
            }
        }
        Ok(())
    }

    /// ShinyProxy's app containers, running or not; only those of `proxy_id` when given.
    async fn shinyproxy_containers(
        &self,
        proxy_id: Option<&str>,
    ) -> Result<Vec<ContainerSummary>, String> {
        let mut wanted = vec![format!("{}=true", sp::PROXIED_APP)];
        if let Some(id) = proxy_id {
            wanted.push(format!("{}={id}", sp::PROXY_ID));
        }
        let filters = HashMap::from([("label".to_string(), wanted)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| describe(&e))
    }
}
