//! A stand-in for the Kubernetes API server, which cannot run here: kube's client talks to it
//! through tower-test's mock service, and it answers as a real API server does (objects with
//! metadata, NotFound/AlreadyExists statuses, lists by label selector), while pods move through
//! a scripted series of statuses, one step per read.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One request the backend made.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    /// (resource plural, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// The statuses every new pod goes through; the last one stays.
    script: Vec<Value>,
    /// How many times each pod has been read.
    reads: BTreeMap<String, usize>,
    seen: Vec<Seen>,
    log: String,
    /// Answer watches with 403, as an API server does for a Role without `watch`.
    refuse_watch: bool,
}

#[derive(Clone)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

pub const NAMESPACE: &str = "shiny";

impl FakeCluster {
    /// A client for namespace `shiny`, and the cluster behind it.
    pub fn start(script: Vec<Value>) -> (kube::Client, FakeCluster) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = FakeCluster {
            state: Arc::new(Mutex::new(State {
                script,
                ..State::default()
            })),
        };
        let serving = cluster.clone();
        tokio::spawn(async move {
            while let Some((request, reply)) = handle.next_request().await {
                // Each on its own task: a watch is held open while other requests go on.
                let serving = serving.clone();
                tokio::spawn(async move {
                    let response = serving.answer(request).await;
                    reply.send_response(response);
                });
            }
        });
        (kube::Client::new(service, NAMESPACE), cluster)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    pub fn refuse_watches(&self) {
        self.lock().refuse_watch = true;
    }

    pub fn set_log(&self, text: &str) {
        self.lock().log = text.to_string();
    }

    /// Puts an object in place as if made earlier (by another vestibule, or an admin).
    pub fn insert(&self, resource: &str, object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        self.lock()
            .objects
            .insert((resource.to_string(), name), with_meta(object));
    }

    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource.to_string(), name.to_string()))
            .cloned()
    }

    pub fn names(&self, resource: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(r, _)| r == resource)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Each namespaced request as an RBAC rule sees it: (API group, resource, verb).
    pub fn rbac_calls(&self) -> Vec<(String, String, String)> {
        self.seen()
            .iter()
            .filter(|s| s.path.contains("/namespaces/"))
            .map(|s| {
                let group = s
                    .path
                    .strip_prefix("/apis/")
                    .and_then(|rest| rest.split('/').next())
                    .unwrap_or_default();
                let path = resource_path(&s.path);
                let parts: Vec<&str> = path.split('/').collect();
                let resource = match parts.as_slice() {
                    [r, _, sub] => format!("{r}/{sub}"),
                    [r, ..] => r.to_string(),
                    [] => String::new(),
                };
                let verb = match (s.method.as_str(), parts.len()) {
                    ("GET", 1) if s.query.contains("watch=true") => "watch",
                    ("GET", 1) => "list",
                    ("GET", _) => "get",
                    ("POST", _) => "create",
                    ("DELETE", _) => "delete",
                    ("PATCH", _) => "patch",
                    (other, _) => other,
                };
                (group.to_string(), resource, verb.to_string())
            })
            .collect()
    }

    /// `(method, resource path without namespace)` of each request, e.g. `("POST", "pods")`.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.seen()
            .iter()
            .map(|s| (s.method.to_string(), resource_path(&s.path)))
            .collect()
    }

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        self.lock().seen.push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        if let Some(list) = discovery(&path) {
            return reply(StatusCode::OK, list);
        }
        // /api/v1/namespaces/NS/RESOURCE[/NAME[/log]] or /apis/GROUP/VERSION/namespaces/...
        let in_namespace = path.split("/namespaces/").nth(1).unwrap_or_default();
        let namespace = in_namespace
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let after_ns: Vec<&str> = in_namespace.split('/').skip(1).collect();
        let resource = after_ns.first().copied().unwrap_or_default().to_string();
        let name = after_ns.get(1).map(|n| n.to_string());
        let sub = after_ns.get(2).copied();
        match (&parts.method, name, sub) {
            (&Method::POST, None, _) => self.create(&resource, &namespace, body),
            (&Method::GET, None, _) if query.contains("watch=true") => {
                self.watch(&resource, &query).await
            }
            (&Method::GET, None, _) => self.list(&resource, &namespace, &query),
            (&Method::GET, Some(_), Some("log")) => {
                let log = self.lock().log.clone();
                text(StatusCode::OK, log)
            }
            (&Method::GET, Some(name), _) => self.read(&resource, &name),
            (&Method::DELETE, Some(name), _) => {
                match self
                    .lock()
                    .objects
                    .remove(&(resource.clone(), name.clone()))
                {
                    Some(mut gone) => {
                        gone["metadata"]["deletionTimestamp"] = json!("2026-11-22T08:00:00Z");
                        reply(StatusCode::OK, gone)
                    }
                    None => not_found(&resource, &name),
                }
            }
            (&Method::PATCH, Some(name), _) => {
                let mut state = self.lock();
                match state.objects.get_mut(&(resource.clone(), name.clone())) {
                    Some(object) => {
                        json_patch::merge(object, &body);
                        reply(StatusCode::OK, object.clone())
                    }
                    None => not_found(&resource, &name),
                }
            }
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }

    fn create(&self, resource: &str, namespace: &str, body: Value) -> Response<Body> {
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = (resource.to_string(), name.clone());
        let mut state = self.lock();
        if state.objects.contains_key(&key) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{resource} \"{name}\" already exists"),
            );
        }
        let mut object = with_meta_in(body, namespace);
        match resource {
            "pods" => object["status"] = json!({"phase": "Pending", "qosClass": "Burstable"}),
            "services" => {
                object["spec"]["clusterIP"] = json!("10.100.23.7");
                if object["spec"]["type"] == "NodePort" {
                    object["spec"]["ports"][0]["nodePort"] = json!(31538);
                }
            }
            "persistentvolumeclaims" => object["status"] = json!({"phase": "Pending"}),
            _ => {}
        }
        state.objects.insert(key, object.clone());
        reply(StatusCode::CREATED, object)
    }

    fn read(&self, resource: &str, name: &str) -> Response<Body> {
        let mut state = self.lock();
        let key = (resource.to_string(), name.to_string());
        if !state.objects.contains_key(&key) {
            return not_found(resource, name);
        }
        if resource == "pods" && !state.script.is_empty() {
            let last = state.script.len() - 1;
            let n = state.reads.entry(name.to_string()).or_insert(0);
            let step = (*n).min(last);
            *n += 1;
            let next = state.script[step].clone();
            if let Some(object) = state.objects.get_mut(&key) {
                object["status"] = next;
            }
        }
        reply(StatusCode::OK, state.objects[&key].clone())
    }

    /// A watch on one pod (`fieldSelector=metadata.name=...`): while the pod's script has
    /// steps to go, a change is reported at once (the next read shows it); once it has settled,
    /// the watch is held open until its timeout, as the API server does when nothing changes.
    async fn watch(&self, resource: &str, query: &str) -> Response<Body> {
        if self.lock().refuse_watch {
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("{resource} is forbidden: cannot watch resource \"{resource}\""),
            );
        }
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name))
                .map(|s| urlencoding::decode(s).unwrap().to_string())
        };
        let name = param("fieldSelector=")
            .and_then(|f| f.strip_prefix("metadata.name=").map(str::to_string))
            .unwrap_or_default();
        let timeout: u64 = param("timeoutSeconds=")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290);
        let object = {
            let state = self.lock();
            let settled = state.script.is_empty()
                || state.reads.get(&name).copied().unwrap_or(0) >= state.script.len();
            let object = state
                .objects
                .get(&(resource.to_string(), name.clone()))
                .cloned();
            object.filter(|_| !settled)
        };
        let events = match object {
            Some(object) => json!({"type": "MODIFIED", "object": object}).to_string() + "\n",
            None => {
                tokio::time::sleep(std::time::Duration::from_secs(timeout)).await;
                String::new()
            }
        };
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from(Bytes::from(events)))
            .unwrap()
    }

    /// Lists by namespace, label selector and (as kubectl uses it for events) field selector.
    fn list(&self, resource: &str, namespace: &str, query: &str) -> Response<Body> {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name))
                .map(|s| urlencoding::decode(s).unwrap().to_string())
        };
        let (labels, fields) = (param("labelSelector="), param("fieldSelector="));
        let matches = |object: &Value, selector: &Option<String>, at: fn(&Value, &str) -> Value| {
            selector.as_ref().is_none_or(|sel| {
                sel.split(',').all(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    at(object, k) == json!(v)
                })
            })
        };
        let state = self.lock();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|((r, _), o)| r == resource && o["metadata"]["namespace"] == namespace)
            .map(|(_, o)| o.clone())
            .filter(|o| matches(o, &labels, |o, k| o["metadata"]["labels"][k].clone()))
            .filter(|o| {
                matches(o, &fields, |o, k| {
                    o.pointer(&format!("/{}", k.replace('.', "/")))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
            })
            .collect();
        let kind = match resource {
            "pods" => "PodList",
            "services" => "ServiceList",
            "events" => "EventList",
            _ => "List",
        };
        reply(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "4242"}, "items": items}),
        )
    }
}

/// What API discovery answers for the groups the tests use: kinds, plurals and scope.
fn discovery(path: &str) -> Option<Value> {
    let resource = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": "", "kind": kind, "namespaced": namespaced,
               "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
    };
    let (group_version, resources) = match path {
        "/api/v1" => (
            "v1",
            vec![
                resource("pods", "Pod", true),
                resource("pods/log", "Pod", true),
                resource("services", "Service", true),
                resource("persistentvolumeclaims", "PersistentVolumeClaim", true),
                resource("persistentvolumes", "PersistentVolume", false),
                resource("configmaps", "ConfigMap", true),
                resource("events", "Event", true),
            ],
        ),
        "/apis/networking.k8s.io/v1" => (
            "networking.k8s.io/v1",
            vec![resource("networkpolicies", "NetworkPolicy", true)],
        ),
        _ => return None,
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": group_version, "resources": resources}))
}

/// The part of a path after the namespace, e.g. `pods/sp-pod-1/log`.
pub fn resource_path(path: &str) -> String {
    path.split("/namespaces/")
        .nth(1)
        .map(|rest| {
            rest.split_once('/')
                .map(|x| x.1)
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|| path.to_string())
}

fn with_meta(object: Value) -> Value {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or(NAMESPACE)
        .to_string();
    with_meta_in(object, &namespace)
}

fn with_meta_in(mut object: Value, namespace: &str) -> Value {
    let meta = &mut object["metadata"];
    meta["namespace"] = json!(namespace);
    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    meta["resourceVersion"] = json!("4711");
    meta["creationTimestamp"] = json!("2026-11-22T07:59:00Z");
    object
}

fn reply(code: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(Bytes::from(body.to_string())))
        .unwrap()
}

fn text(code: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "text/plain")
        .body(Body::from(Bytes::from(body)))
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(resource: &str, name: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

// Pod statuses as the kubelet and scheduler report them.

pub fn unscheduled() -> Value {
    json!({"phase": "Pending", "qosClass": "Burstable"})
}

pub fn unschedulable(message: &str) -> Value {
    json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": message, "lastTransitionTime": "2026-11-22T07:59:01Z"}]})
}

pub fn container_creating(image: &str) -> Value {
    waiting(image, "ContainerCreating", None)
}

pub fn image_pull_backoff(image: &str) -> Value {
    waiting(
        image,
        "ImagePullBackOff",
        Some(&format!("Back-off pulling image \"{image}\"")),
    )
}

pub fn err_image_pull(image: &str) -> Value {
    waiting(
        image,
        "ErrImagePull",
        Some(&format!(
            "failed to pull and unpack image \"{image}\": not found"
        )),
    )
}

pub fn crash_loop(image: &str) -> Value {
    waiting(
        image,
        "CrashLoopBackOff",
        Some("back-off 10s restarting failed container=app"),
    )
}

fn waiting(image: &str, reason: &str, message: Option<&str>) -> Value {
    let mut state = json!({"waiting": {"reason": reason}});
    if let Some(m) = message {
        state["waiting"]["message"] = json!(m);
    }
    json!({"phase": "Pending", "hostIP": "192.168.12.4", "qosClass": "Burstable",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T07:59:01Z"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "2026-11-22T07:59:01Z"}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "", "ready": false,
            "restartCount": 0, "started": false, "state": state}]})
}

pub fn running(image: &str, ready: bool) -> Value {
    let flag = if ready { "True" } else { "False" };
    json!({"phase": "Running", "hostIP": "192.168.12.4", "podIP": "192.168.30.17",
        "podIPs": [{"ip": "192.168.30.17"}], "qosClass": "Burstable",
        "startTime": "2026-11-22T07:59:01Z",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T07:59:01Z"},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": "2026-11-22T07:59:05Z"},
            {"type": "Ready", "status": flag, "lastTransitionTime": "2026-11-22T07:59:05Z"}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "sha256:abc", "ready": ready,
            "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-11-22T07:59:04Z"}}}]})
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
            "labels": {"app.kubernetes.io/managed-by": "vestibule", "vestibule.io/instance-id": id,
                       "vestibule.io/spec-id": "01_hello", "vestibule.io/realm": realm},
            "annotations": notes},
        "spec": {"containers": [{"name": "app", "image": "img"}]},
        "status": status})
}
