//! The pod (and, without internal networking, the Service) for one instance, built as JSON so
//! the spec's RFC 6902 `kubernetes-pod-patches` apply to exactly what is sent.

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::{Value, json};

use super::naming::{
    self, INSTANCE_LABEL, MANAGED_BY, MANAGER, PORT_ANNOTATION, REALM_LABEL, SPEC_HASH_ANNOTATION,
    SPEC_LABEL, USER_ANNOTATION,
};
use crate::backend::LaunchRequest;
use crate::config::template::{fill_json, fill_volume};
use crate::config::{AppSpec, KubernetesSettings, ServiceType};

pub fn build_pod(req: &LaunchRequest, settings: &KubernetesSettings) -> Result<Pod, String> {
    let spec = &req.spec;
    let user = req.owner.clone();
    let image = spec
        .container_image
        .clone()
        .ok_or_else(|| format!("app '{}' has no container-image", spec.id))?;

    let mut labels = serde_json::Map::new();
    for (k, v) in &spec.container.labels {
        labels.insert(k.clone(), json!(v));
    }
    labels.insert(MANAGED_BY.into(), json!(MANAGER));
    labels.insert(INSTANCE_LABEL.into(), json!(req.instance_id));
    labels.insert(SPEC_LABEL.into(), json!(naming::label_value(&spec.id)));
    labels.insert(
        REALM_LABEL.into(),
        json!(naming::label_value(&settings.realm_id)),
    );
    if let Some(kind) = req.shared_as() {
        labels.insert(naming::SHARED_LABEL.into(), json!(kind));
        if kind == "seats" {
            labels.insert(crate::backend::SP_DELEGATE_LABEL.into(), json!("true"));
        }
    }

    let mut container = json!({
        "name": "app",
        "image": image,
        "env": env_vars(req),
        "ports": [{"containerPort": spec.port, "protocol": "TCP"}],
        "resources": resources(req),
        "securityContext": {"privileged": spec.container.privileged},
    });
    if !spec.container_cmd.is_empty() {
        container["command"] = json!(spec.container_cmd);
    }
    if let Some(policy) = &settings.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    let (volumes, mounts) = host_volumes(req, &user)?;
    if !mounts.is_empty() {
        container["volumeMounts"] = json!(mounts);
    }

    let mut pod_spec = json!({
        "containers": [container],
        "restartPolicy": "Never",
    });
    if !volumes.is_empty() {
        pod_spec["volumes"] = json!(volumes);
    }
    if !settings.node_selector.is_empty() {
        pod_spec["nodeSelector"] = json!(settings.node_selector);
    }
    if !settings.image_pull_secrets.is_empty() {
        let secrets: Vec<Value> = settings
            .image_pull_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        pod_spec["imagePullSecrets"] = json!(secrets);
    }

    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": naming::pod_name(&req.instance_id),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {
                USER_ANNOTATION: user,
                PORT_ANNOTATION: spec.port.to_string(),
                SPEC_LABEL: spec.id,
                SPEC_HASH_ANNOTATION: crate::backend::spec_fingerprint(spec),
            },
        },
        "spec": pod_spec,
    });
    if let Some(patch) = &spec.kubernetes.pod_patches {
        let mut patch_json = serde_json::to_value(patch).map_err(|e| e.to_string())?;
        fill_json(&mut patch_json, &user, &req.env)?;
        let patch: json_patch::Patch =
            serde_json::from_value(patch_json).map_err(|e| e.to_string())?;
        json_patch::patch(&mut pod, &patch).map_err(|e| {
            format!(
                "kubernetes-pod-patches of app '{}' do not apply: {e}",
                spec.id
            )
        })?;
    }
    serde_json::from_value(pod).map_err(|e| {
        format!(
            "the patched pod of app '{}' is not a valid pod: {e}",
            spec.id
        )
    })
}

/// `secretKeyRef:SECRET:KEY` values (ShinyProxy's form) read the key of a Kubernetes secret;
/// everything else is a plain value.
fn env_vars(req: &LaunchRequest) -> Vec<Value> {
    req.env
        .iter()
        .map(|(name, value)| {
            let secret = value
                .strip_prefix("secretKeyRef:")
                .and_then(|rest| rest.split_once(':'));
            match secret {
                Some((secret, key)) => json!({
                    "name": name,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
                }),
                None => json!({"name": name, "value": value}),
            }
        })
        .collect()
}

fn resources(req: &LaunchRequest) -> Value {
    let c = &req.spec.container;
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(m) = &c.memory_request {
        requests.insert("memory".into(), json!(m.kubernetes()));
    }
    if let Some(m) = &c.cpu_request {
        requests.insert("cpu".into(), json!(m.kubernetes()));
    }
    if let Some(m) = &c.memory_limit {
        limits.insert("memory".into(), json!(m.kubernetes()));
    }
    if let Some(m) = &c.cpu_limit {
        limits.insert("cpu".into(), json!(m.kubernetes()));
    }
    json!({"requests": requests, "limits": limits})
}

/// `HOST:CONTAINER[:ro]` volumes as hostPath mounts: on EKS the shared EFS file system is
/// mounted on every node (the seed uses /mnt/data).
fn host_volumes(req: &LaunchRequest, user: &str) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, written) in req.spec.container_volumes.iter().enumerate() {
        let text = fill_volume(written, user, &req.env)?;
        let parts: Vec<&str> = text.split(':').collect();
        let (host, target, read_only) = match parts.as_slice() {
            [h, t] => (*h, *t, false),
            [h, t, mode] => (*h, *t, *mode == "ro"),
            _ => {
                return Err(format!(
                    "container-volumes entry '{written}' is not HOST:CONTAINER[:ro]"
                ));
            }
        };
        let name = format!("vol-{i}");
        volumes.push(json!({"name": name, "hostPath": {"path": host}}));
        mounts.push(json!({"name": name, "mountPath": target, "readOnly": read_only}));
    }
    Ok((volumes, mounts))
}

/// The namespace an app's pods go to when its pod patches set one that does not depend on the
/// user (ShinyProxy's way of running an app in a namespace of its own).
pub fn fixed_namespace(spec: &AppSpec) -> Option<String> {
    let patch = serde_json::to_value(spec.kubernetes.pod_patches.as_ref()?).ok()?;
    patch
        .as_array()?
        .iter()
        .filter(|op| matches!(op["op"].as_str(), Some("add" | "replace")))
        .filter(|op| op["path"] == "/metadata/namespace")
        .filter_map(|op| op["value"].as_str())
        .next_back()
        .filter(|ns| !ns.contains("#{"))
        .map(str::to_string)
}

/// The per-instance Service used when vestibule cannot reach pod IPs: a NodePort (reached at
/// the pod's node, as ShinyProxy does) or a ClusterIP.
pub fn build_service(
    req: &LaunchRequest,
    settings: &KubernetesSettings,
    namespace: &str,
) -> Result<Service, String> {
    let kind = match settings.service_type {
        ServiceType::NodePort => "NodePort",
        ServiceType::ClusterIp => "ClusterIP",
    };
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": naming::service_name(&req.instance_id),
            "namespace": namespace,
            "labels": {
                MANAGED_BY: MANAGER,
                INSTANCE_LABEL: req.instance_id,
                REALM_LABEL: naming::label_value(&settings.realm_id),
            },
        },
        "spec": {
            "type": kind,
            "selector": {INSTANCE_LABEL: req.instance_id},
            "ports": [{"port": req.spec.port, "targetPort": req.spec.port, "protocol": "TCP"}],
        },
    });
    serde_json::from_value(service).map_err(|e| e.to_string())
}
