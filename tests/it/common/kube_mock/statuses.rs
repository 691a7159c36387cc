//! Pod statuses as the kubelet and scheduler report them.

use super::NAMESPACE;
use serde_json::{Value, json};

pub fn unscheduled() -> Value {
    json!({"phase": "Pending", "qosClass": "Burstable"})
}

pub fn unschedulable(message: &str) -> Value {
    json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": message, "lastTransitionTime": "2026-11-22T07:59:01Z"}]})
}

pub fn container_creating(image: &str) -> Value {
    waiting(image, "ContainerCreating", None, 0)
}

pub fn image_pull_backoff(image: &str) -> Value {
    waiting(
        image,
        "ImagePullBackOff",
        Some(&format!("Back-off pulling image \"{image}\"")),
        0,
    )
}

pub fn err_image_pull(image: &str) -> Value {
    waiting(
        image,
        "ErrImagePull",
        Some(&format!(
            "failed to pull and unpack image \"{image}\": not found"
        )),
        0,
    )
}

/// Restarted `restarts` times, each run ended with exit code 1, now waiting in back-off. The
/// phase stays Running (it is Running once a container has started).
pub fn crash_loop(image: &str, restarts: u32) -> Value {
    let mut s = waiting(
        image,
        "CrashLoopBackOff",
        Some("back-off 10s restarting failed container=app"),
        restarts,
    );
    // Its pod is Running, with an IP: only the container is down.
    s["phase"] = json!("Running");
    s["podIP"] = json!("192.168.30.17");
    s["podIPs"] = json!([{"ip": "192.168.30.17"}]);
    s["containerStatuses"][0]["lastState"] = terminated(1);
    s
}

fn terminated(code: i32) -> Value {
    json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
        "startedAt": "2026-11-22T07:59:04Z", "finishedAt": "2026-11-22T08:03:11Z"}})
}

fn waiting(image: &str, reason: &str, message: Option<&str>, restarts: u32) -> Value {
    let mut state = json!({"waiting": {"reason": reason}});
    if let Some(m) = message {
        state["waiting"]["message"] = json!(m);
    }
    json!({"phase": "Pending", "hostIP": "192.168.12.4", "qosClass": "Burstable",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T07:59:01Z"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "2026-11-22T07:59:01Z"}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "", "ready": false,
            "restartCount": restarts, "started": false, "state": state}]})
}

pub fn running(image: &str, ready: bool) -> Value {
    restarted(image, ready, 0)
}

/// Running again after `restarts` crashes (restartPolicy Always or OnFailure).
pub fn restarted(image: &str, ready: bool, restarts: u32) -> Value {
    let flag = if ready { "True" } else { "False" };
    let mut s = json!({"phase": "Running", "hostIP": "192.168.12.4", "podIP": "192.168.30.17",
        "podIPs": [{"ip": "192.168.30.17"}], "qosClass": "Burstable",
        "startTime": "2026-11-22T07:59:01Z",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T07:59:01Z"},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": "2026-11-22T07:59:05Z"},
            {"type": "Ready", "status": flag, "lastTransitionTime": "2026-11-22T07:59:05Z"}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "sha256:abc", "ready": ready,
            "restartCount": restarts, "started": true,
            "state": {"running": {"startedAt": "2026-11-22T07:59:04Z"}}}]});
    if restarts > 0 {
        s["containerStatuses"][0]["lastState"] = terminated(1);
    }
    s
}

/// The container ended with `code` and, with restartPolicy Never, so did the pod.
pub fn exited(image: &str, code: i32) -> Value {
    json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "hostIP": "192.168.12.4",
        "podIP": "192.168.30.17", "qosClass": "Burstable", "startTime": "2026-11-22T07:59:01Z",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T07:59:01Z"},
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": "2026-11-22T08:03:11Z"}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "sha256:abc", "ready": false,
            "restartCount": 0, "started": false, "state": terminated(code)}]})
}

/// An event about a pod, as the kubelet or scheduler records it.
pub fn event(pod: &str, kind: &str, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.{}", uuid::Uuid::new_v4().simple())},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": NAMESPACE, "apiVersion": "v1"},
        "type": kind, "reason": reason, "message": message, "count": 3,
        "firstTimestamp": "2026-11-22T07:59:02Z", "lastTimestamp": "2026-11-22T07:59:30Z",
        "source": {"component": "kubelet"}})
}

/// A pod an earlier vestibule started, as the API server returns it.
pub fn left_pod(
    id: &str,
    realm: &str,
    namespace: &str,
    status: Value,
    annotations: Value,
) -> Value {
    let mut notes = json!({"vestibule.io/user": "bob@example.org", "vestibule.io/port": "3838",
                           "vestibule.io/spec-id": "01_hello", "vestibule.io/spec-hash": "00ff"});
    if let (Some(extra), Some(all)) = (annotations.as_object(), notes.as_object_mut()) {
        all.extend(extra.clone());
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("sp-pod-{id}"), "namespace": namespace,
            "creationTimestamp": "2026-11-22T07:59:00Z",
            "labels": {"app.kubernetes.io/managed-by": "vestibule", "vestibule.io/instance-id": id,
                       "vestibule.io/spec-id": "01_hello", "vestibule.io/realm": realm},
            "annotations": notes},
        "spec": {"containers": [{"name": "app", "image": "img"}]},
        "status": status})
}
