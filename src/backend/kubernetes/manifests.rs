//! `kubernetes-additional-manifests` and `-persistent-manifests`: objects created next to the
//! pod, honouring ShinyProxy's policy annotation when the object already exists.

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde::{Deserialize, Serialize};

use super::naming::POLICY_ANNOTATION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Create when absent, otherwise leave it as it is (the default).
    CreateOnce,
    /// Create when absent, otherwise patch it to match the manifest.
    Patch,
    /// Delete it when present; never create it.
    Delete,
    /// Delete it when present, then create it anew.
    Replace,
}

impl Policy {
    pub fn of(manifest: &serde_json::Value) -> Result<Self, String> {
        let written = manifest
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(POLICY_ANNOTATION))
            .and_then(|v| v.as_str());
        match written {
            None | Some("CreateOnce") => Ok(Policy::CreateOnce),
            Some("Patch") => Ok(Policy::Patch),
            Some("Delete") => Ok(Policy::Delete),
            Some("Replace") => Ok(Policy::Replace),
            Some(other) => Err(format!(
                "unknown {POLICY_ANNOTATION} '{other}' (use CreateOnce, Patch, Delete or Replace)"
            )),
        }
    }
}

/// Where a manifest lives and under which name; recorded on the pod (as JSON) for the ones
/// deleted with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn of(manifest: &serde_json::Value, default_namespace: &str) -> Result<Self, String> {
        let text = |pointer: &str| manifest.pointer(pointer).and_then(|v| v.as_str());
        let name = text("/metadata/name").ok_or("a manifest has no metadata.name")?;
        Ok(Self {
            api_version: text("/apiVersion").unwrap_or_default().to_string(),
            kind: text("/kind").unwrap_or_default().to_string(),
            namespace: text("/metadata/namespace")
                .unwrap_or(default_namespace)
                .to_string(),
            name: name.to_string(),
        })
    }

    /// The API for this kind, as the cluster serves it: discovery gives the resource's plural
    /// name and whether it is namespaced, which guessing from the kind cannot.
    async fn api(&self, client: &Client) -> Result<Api<DynamicObject>, String> {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &self.kind);
        let (resource, capabilities) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
            format!(
                "the cluster does not serve {} in {}: {e}",
                self.kind, self.api_version
            )
        })?;
        if capabilities.scope != Scope::Namespaced {
            return Err(format!(
                "{} is a cluster-wide kind; additional manifests must be namespaced objects, which \
                 vestibule's namespaced Role can manage",
                self.kind
            ));
        }
        Ok(Api::namespaced_with(
            client.clone(),
            &self.namespace,
            &resource,
        ))
    }

    fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// Applies one manifest per its policy; returns where it is when it now exists.
pub async fn apply(
    client: &Client,
    manifest: &serde_json::Value,
    default_namespace: &str,
) -> Result<Option<ObjectRef>, String> {
    let policy = Policy::of(manifest)?;
    let at = ObjectRef::of(manifest, default_namespace)?;
    let api = at.api(client).await?;
    let object: DynamicObject = serde_json::from_value(manifest.clone())
        .map_err(|e| format!("{} is not a Kubernetes object: {e}", at.describe()))?;
    let failed = |what: &str, e: kube::Error| format!("could not {what} {}: {e}", at.describe());
    let existing = api
        .get_opt(&at.name)
        .await
        .map_err(|e| failed("look up", e))?;
    match (policy, existing) {
        (Policy::CreateOnce, Some(_)) => return Ok(Some(at)),
        (Policy::Delete, found) => {
            if found.is_some() {
                delete(client, &at).await?;
            }
            return Ok(None);
        }
        (Policy::Patch, Some(_)) => {
            api.patch(&at.name, &PatchParams::default(), &Patch::Merge(manifest))
                .await
                .map_err(|e| failed("patch", e))?;
            return Ok(Some(at));
        }
        (Policy::Replace, Some(_)) => {
            delete(client, &at).await?;
            // Deletion waits for finalizers (pvc-protection on a claim): until they are done
            // the name is taken and a create is refused with 409.
            gone(&api, &at).await?;
        }
        (_, None) => {}
    }
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|e| failed("create", e))?;
    Ok(Some(at))
}

/// How long a replaced object may take to go.
const REPLACE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn gone(api: &Api<DynamicObject>, at: &ObjectRef) -> Result<(), String> {
    let deadline = crate::clock::Instant::now() + REPLACE_WAIT;
    loop {
        match api.get_opt(&at.name).await {
            Ok(None) => return Ok(()),
            Ok(Some(still)) if crate::clock::Instant::now() >= deadline => {
                return Err(format!(
                    "{} is still being deleted after {} s (finalizers: {})",
                    at.describe(),
                    REPLACE_WAIT.as_secs(),
                    still.metadata.finalizers.unwrap_or_default().join(", ")
                ));
            }
            Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(e) => return Err(format!("could not look up {}: {e}", at.describe())),
        }
    }
}

/// Deletes the object; one already gone is fine.
pub async fn delete(client: &Client, at: &ObjectRef) -> Result<(), String> {
    match at
        .api(client)
        .await?
        .delete(&at.name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(format!("could not delete {}: {e}", at.describe())),
    }
}
