//! What etcd and the controllers do behind the API server: objects keyed by namespace,
//! resource and name, a resourceVersion that grows with every change, a history of changes for
//! watches (compacted like etcd's), graceful pod deletion, finalizers, and pod statuses that
//! advance with time.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vestibule::clock::Instant;

/// (namespace, resource plural, name).
pub type Key = (String, String, String);

pub fn key(namespace: &str, resource: &str, name: &str) -> Key {
    (
        namespace.to_string(),
        resource.to_string(),
        name.to_string(),
    )
}

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: &'static str,
    pub namespace: String,
    pub resource: String,
    pub object: Value,
}

/// A failed request: (HTTP code, reason, message).
pub type Refusal = (u16, &'static str, String);

pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// A pod's scripted statuses: when it was created, and which step it shows.
struct Timeline {
    born: Instant,
    steps: Vec<(Duration, Value)>,
    shown: Option<usize>,
}

pub struct Store {
    rv: u64,
    pub objects: BTreeMap<Key, Value>,
    pub namespaces: BTreeSet<String>,
    pub history: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    pub compacted: u64,
    /// The statuses a new pod goes through, at times after its creation; the last one stays.
    pub script: Vec<(Duration, Value)>,
    /// Each pod's own timeline: when it was created and which step it shows.
    timelines: BTreeMap<Key, Timeline>,
    /// Pods being deleted, and when their containers will have stopped.
    ending: BTreeMap<Key, Instant>,
    /// How long an app takes to stop on SIGTERM (it is killed at the grace period anyway).
    pub stops_within: Duration,
    pub pod_ip: String,
    pub broadcast: tokio::sync::broadcast::Sender<Change>,
}

fn now_rfc3339() -> String {
    // Whole seconds, as the API server writes metav1.Time.
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Store {
    pub fn new(script: Vec<(Duration, Value)>) -> Self {
        Store {
            rv: 1000,
            objects: BTreeMap::new(),
            namespaces: ["default", "shiny", "vestibule"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            history: Vec::new(),
            compacted: 0,
            script,
            timelines: BTreeMap::new(),
            ending: BTreeMap::new(),
            stops_within: Duration::from_millis(200),
            pod_ip: "192.168.30.17".into(),
            broadcast: tokio::sync::broadcast::channel(4096).0,
        }
    }

    pub fn version(&self) -> u64 {
        self.rv
    }

    /// Records a change: a new resourceVersion, the history, and every open watch told.
    fn commit(&mut self, kind: &'static str, k: &Key, mut object: Value) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if kind == "DELETED" {
            self.objects.remove(k);
            self.timelines.remove(k);
            self.ending.remove(k);
        } else {
            self.objects.insert(k.clone(), object.clone());
        }
        let change = Change {
            rv: self.rv,
            kind,
            namespace: k.0.clone(),
            resource: k.1.clone(),
            object: object.clone(),
        };
        self.history.push(change.clone());
        let _ = self.broadcast.send(change);
        object
    }

    /// Forgets the history up to now, as etcd's compaction does: older versions get 410.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Puts an object in place as an admin or an earlier run would have.
    pub fn insert(&mut self, resource: &str, mut object: Value) -> Value {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(super::NAMESPACE)
            .to_string();
        self.namespaces.insert(namespace.clone());
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        fill_metadata(&mut object, &namespace);
        if resource == "persistentvolumeclaims" {
            object["metadata"]["finalizers"] = json!([PVC_PROTECTION]);
        }
        self.commit("ADDED", &key(&namespace, resource, &name), object)
    }

    /// A pod someone deleted whose app takes `within` to stop: Terminating until then.
    pub fn terminate_within(&mut self, k: &Key, within: Duration) {
        if let Some(mut pod) = self.objects.get(k).cloned() {
            pod["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(within.as_secs().max(1));
            self.ending.insert(k.clone(), Instant::now() + within);
            self.commit("MODIFIED", k, pod);
        }
    }

    pub fn create(
        &mut self,
        namespace: &str,
        resource: &str,
        mut body: Value,
    ) -> Result<Value, Refusal> {
        if !self.namespaces.contains(namespace) {
            return Err((
                404,
                "NotFound",
                format!("namespaces \"{namespace}\" not found"),
            ));
        }
        if body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
            && let Some(prefix) = body["metadata"]["generateName"].as_str()
        {
            let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
            body["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        if let Some(ns) = body["metadata"]["namespace"].as_str()
            && ns != namespace
        {
            return Err((
                400,
                "BadRequest",
                format!(
                    "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
                ),
            ));
        }
        super::validate::object(resource, &body)?;
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let k = key(namespace, resource, &name);
        if let Some(old) = self.objects.get(&k) {
            let going = if old["metadata"]["deletionTimestamp"].is_null() {
                ""
            } else {
                "object is being deleted: "
            };
            return Err((
                409,
                "AlreadyExists",
                format!("{going}{resource} \"{name}\" already exists"),
            ));
        }
        fill_metadata(&mut body, namespace);
        match resource {
            "pods" => {
                body["status"] = json!({"phase": "Pending", "qosClass": "Burstable"});
                self.timelines.insert(
                    k.clone(),
                    Timeline {
                        born: Instant::now(),
                        steps: self.script.clone(),
                        shown: None,
                    },
                );
            }
            "services" => {
                body["spec"]["clusterIP"] = json!("10.100.23.7");
                if body["spec"]["type"] == "NodePort" {
                    body["spec"]["ports"][0]["nodePort"] = json!(31538);
                }
            }
            "persistentvolumeclaims" => {
                body["metadata"]["finalizers"] = json!([PVC_PROTECTION]);
                body["status"] = json!({"phase": "Pending"});
            }
            _ => {}
        }
        Ok(self.commit("ADDED", &k, body))
    }

    pub fn get(&self, k: &Key) -> Result<Value, Refusal> {
        self.objects.get(k).cloned().ok_or_else(|| not_found(k))
    }

    /// `merge` applies a JSON merge patch (merge and strategic merge patches); otherwise `body`
    /// is an RFC 6902 patch. A patch that names a resourceVersion must name the current one.
    pub fn patch(&mut self, k: &Key, body: &Value, merge: bool) -> Result<Value, Refusal> {
        let mut object = self.get(k)?;
        if let Some(wanted) = body
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            && Some(wanted) != object["metadata"]["resourceVersion"].as_str()
        {
            return Err((
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    k.1, k.2
                ),
            ));
        }
        if merge {
            json_patch::merge(&mut object, body);
        } else {
            let patch: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| (400, "BadRequest", e.to_string()))?;
            json_patch::patch(&mut object, &patch).map_err(|e| (422, "Invalid", e.to_string()))?;
        }
        super::validate::object(&k.1, &object)?;
        Ok(self.commit("MODIFIED", k, object))
    }

    /// A pod on a node is deleted gracefully: it stays, Terminating, until its containers have
    /// stopped (the app's own time, at most the grace period). An object with finalizers stays
    /// until they are removed. Everything else goes at once.
    pub fn delete(&mut self, k: &Key, grace: Option<i64>) -> Result<Value, Refusal> {
        let mut object = self.get(k)?;
        let on_node = !object["status"]["hostIP"].is_null();
        let finished = matches!(
            object["status"]["phase"].as_str(),
            Some("Failed" | "Succeeded")
        );
        let grace = grace
            .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        let has_finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if k.1 == "pods" && on_node && !finished && grace > 0 {
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                let grace = Duration::from_secs(grace.unsigned_abs());
                self.ending
                    .insert(k.clone(), Instant::now() + grace.min(self.stops_within));
                return Ok(self.commit("MODIFIED", k, object));
            }
            return Ok(object);
        }
        if has_finalizers {
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                return Ok(self.commit("MODIFIED", k, object));
            }
            return Ok(object);
        }
        Ok(self.commit("DELETED", k, object))
    }

    /// What happens with time: pods move along their timelines, Terminating pods go once
    /// their containers have stopped, and the pvc-protection controller lets claims go once no
    /// pod uses them.
    pub fn advance(&mut self) {
        let now = Instant::now();
        let due: Vec<(Key, usize, Value)> = self
            .timelines
            .iter()
            .filter_map(|(k, t)| {
                let at = now.duration_since(t.born);
                let step = t.steps.iter().rposition(|(after, _)| *after <= at)?;
                (Some(step) != t.shown).then(|| (k.clone(), step, t.steps[step].1.clone()))
            })
            .collect();
        for (k, step, status) in due {
            if let Some(t) = self.timelines.get_mut(&k) {
                t.shown = Some(step);
            }
            if let Some(mut pod) = self.objects.get(&k).cloned() {
                pod["status"] = status;
                if pod["status"]["podIP"].is_string() {
                    pod["status"]["podIP"] = json!(self.pod_ip);
                    pod["status"]["podIPs"] = json!([{"ip": self.pod_ip}]);
                }
                self.commit("MODIFIED", &k, pod);
            }
        }
        let stopped: Vec<Key> = self
            .ending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stopped {
            if let Some(pod) = self.objects.get(&k).cloned() {
                self.commit("DELETED", &k, pod);
            }
        }
        let releasable: Vec<Key> = self
            .objects
            .iter()
            .filter(|(k, o)| {
                k.1 == "persistentvolumeclaims"
                    && !o["metadata"]["deletionTimestamp"].is_null()
                    && !self.claim_in_use(&k.0, &k.2)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in releasable {
            if let Some(mut claim) = self.objects.get(&k).cloned() {
                if let Some(f) = claim["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|f| f != PVC_PROTECTION);
                }
                let done = claim["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                self.commit(if done { "DELETED" } else { "MODIFIED" }, &k, claim);
            }
        }
    }

    fn claim_in_use(&self, namespace: &str, claim: &str) -> bool {
        self.objects.iter().any(|((ns, r, _), pod)| {
            ns == namespace
                && r == "pods"
                && pod["spec"]["volumes"].as_array().is_some_and(|vols| {
                    vols.iter()
                        .any(|v| v["persistentVolumeClaim"]["claimName"] == claim)
                })
        })
    }

    /// Sets a pod's status now, as its kubelet reports a change.
    pub fn set_status(&mut self, k: &Key, status: Value) {
        self.timelines.remove(k);
        if let Some(mut pod) = self.objects.get(k).cloned() {
            pod["status"] = status;
            self.commit("MODIFIED", k, pod);
        }
    }
}

fn fill_metadata(object: &mut Value, namespace: &str) {
    let meta = &mut object["metadata"];
    meta["namespace"] = json!(namespace);
    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    if meta["creationTimestamp"].is_null() {
        meta["creationTimestamp"] = json!(now_rfc3339());
    }
}

pub fn not_found(k: &Key) -> Refusal {
    (404, "NotFound", format!("{} \"{}\" not found", k.1, k.2))
}
