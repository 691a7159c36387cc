//! A Kubernetes API server in the test process (none can run here), on a real port, so kube's
//! client and a whole vestibule server talk to it over HTTP as they would to a cluster. It keeps
//! the semantics the backend depends on:
//! - objects keyed by namespace, resource and name; a missing namespace is 404 on create;
//! - a resourceVersion that grows with every change; 409 for a name taken (also by an object
//!   being deleted) and for a patch against a stale resourceVersion; 422 for invalid objects;
//!   `generateName`;
//! - watches from a resourceVersion, 410 Gone below the compacted history, bookmarks, ended
//!   at their timeout or by [`FakeCluster::end_watches`];
//! - graceful pod deletion (Terminating, `deletionTimestamp` set, until the app has stopped),
//!   the pvc-protection finalizer on claims;
//! - pod statuses scripted by time since creation, not advanced by reads;
//! - logs per container, honouring `tailLines`, `previous` (400 where there is no such run),
//!   `sinceTime`/`sinceSeconds`, `timestamps` and `follow` (see [`pod_logs`]);
//! - the metrics API (metrics-server) with the usage the test sets per pod, or none at all;
//! - RBAC: only what the shipped Role (deploy/kubernetes/base/role.yaml) grants, else 403.
#![allow(dead_code)]

mod pod_logs;
mod pod_metrics;
mod rbac;
mod statuses;
mod store;
mod validate;
mod watch;

pub use statuses::*;
pub use store::Key;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use store::{Refusal, Store, key};
use tokio_util::sync::CancellationToken;
use watch::{Selection, WatchAsk};

pub const NAMESPACE: &str = "shiny";
/// How far apart the statuses given to [`FakeCluster::start`] are.
pub const STEP: Duration = Duration::from_millis(40);

/// One request the backend made.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

struct State {
    store: Store,
    rbac: rbac::Rbac,
    logs: BTreeMap<pod_logs::LogKey, pod_logs::Logs>,
    /// Cancelled to end every open log follow.
    log_streams: CancellationToken,
    /// Whether metrics-server is installed (the metrics.k8s.io group is served).
    metrics_server: bool,
    /// What every new pod's container prints as it starts: (container, text).
    startup_output: Option<(String, String)>,
    /// What metrics-server reports for each pod.
    usage: BTreeMap<Key, Vec<pod_metrics::ContainerUsage>>,
    seen: Vec<Seen>,
    /// Requests answered 403, as (verb, group/resource, namespace).
    denied: Vec<String>,
    /// Cancelled to end every open watch.
    watches: CancellationToken,
    bookmark_every: Duration,
    /// This many next watches find their version compacted away (410 Gone), as when
    /// compaction falls between a client's read and its watch.
    expire: usize,
}

#[derive(Clone)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
    url: String,
}

impl FakeCluster {
    /// A cluster whose new pods go through `statuses`, [`STEP`] apart; a client for namespace
    /// `shiny`.
    pub fn start(statuses: Vec<Value>) -> (kube::Client, FakeCluster) {
        let timed = statuses
            .into_iter()
            .enumerate()
            .map(|(i, s)| (STEP * i as u32, s))
            .collect();
        Self::start_timed(timed)
    }

    /// A cluster whose new pods show each status from its time after their creation on.
    pub fn start_timed(script: Vec<(Duration, Value)>) -> (kube::Client, FakeCluster) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let cluster = FakeCluster {
            state: Arc::new(Mutex::new(State {
                store: Store::new(script),
                rbac: rbac::Rbac::shipped(),
                logs: BTreeMap::new(),
                log_streams: CancellationToken::new(),
                metrics_server: true,
                usage: BTreeMap::new(),
                startup_output: None,
                seen: Vec::new(),
                denied: Vec::new(),
                watches: CancellationToken::new(),
                bookmark_every: Duration::from_millis(200),
                expire: 0,
            })),
            url,
        };
        let serving = cluster.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let serving = serving.clone();
            async move { serving.answer(request).await }
        });
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let weak = Arc::downgrade(&cluster.state);
        tokio::spawn(advance_with_time(weak));
        (cluster.client(), cluster)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new client (for namespace `shiny`), as a restarted server would make.
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("url"));
        config.default_namespace = NAMESPACE.into();
        kube::Client::try_from(config).expect("client")
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// A Role without `watch` on pods.
    pub fn refuse_watches(&self) {
        self.lock().rbac.revoke("pods", "watch");
    }

    pub fn add_namespace(&self, namespace: &str) {
        self.lock().store.namespaces.insert(namespace.to_string());
    }

    /// An admin applies the shipped Role and RoleBinding in `namespace` too.
    pub fn grant_role_in(&self, namespace: &str) {
        self.lock().rbac.copy_to(namespace);
    }

    /// The output of `container` of pod `pod` (in `shiny`): this run's and the last one's.
    pub fn set_logs(&self, pod: &str, container: &str, current: &str, previous: &str) {
        self.lock().logs.insert(
            (NAMESPACE.into(), pod.into(), container.into()),
            pod_logs::Logs {
                current: pod_logs::Logs::stamped(current),
                previous: previous.into(),
            },
        );
    }

    /// `container` of pod `pod` (in `shiny`) prints a line now; open follows get it.
    pub fn append_log(&self, pod: &str, container: &str, line: &str) {
        self.lock()
            .logs
            .entry((NAMESPACE.into(), pod.into(), container.into()))
            .or_default()
            .current
            .extend(pod_logs::Logs::stamped(line));
    }

    /// Every pod created from now on has `container` print `text` as it starts (before anyone
    /// could follow it).
    pub fn new_pods_print(&self, container: &str, text: &str) {
        self.lock().startup_output = Some((container.into(), text.into()));
    }

    /// Ends every open log follow, as an API server's restart or a proxy's timeout would.
    pub fn end_log_streams(&self) {
        let mut state = self.lock();
        state.log_streams.cancel();
        state.log_streams = CancellationToken::new();
    }

    /// metrics-server's sample of pod `pod` (in `shiny`): (container, cpu, memory) quantities.
    pub fn set_pod_usage(&self, pod: &str, containers: &[(&str, &str, &str)]) {
        let usage = containers
            .iter()
            .map(|(c, cpu, m)| (c.to_string(), cpu.to_string(), m.to_string()))
            .collect();
        self.lock().usage.insert(key(NAMESPACE, "pods", pod), usage);
    }

    /// A cluster without metrics-server: the metrics.k8s.io group is not served.
    pub fn without_metrics_server(&self) {
        self.lock().metrics_server = false;
    }

    /// How long apps take to stop on SIGTERM (their pods stay Terminating that long).
    pub fn apps_stop_within(&self, within: Duration) {
        self.lock().store.stops_within = within;
    }

    /// The IP pods get (127.0.0.1 for an app served by the test itself).
    pub fn set_pod_ip(&self, ip: &str) {
        self.lock().store.pod_ip = ip.into();
    }

    /// The kubelet reports a new status for a pod in `namespace`.
    pub fn set_status(&self, namespace: &str, pod: &str, status: Value) {
        self.lock()
            .store
            .set_status(&key(namespace, "pods", pod), status);
    }

    /// Someone else deletes a pod whose app takes `within` to stop (Terminating until then).
    pub fn terminate_within(&self, namespace: &str, pod: &str, within: Duration) {
        self.lock()
            .store
            .terminate_within(&key(namespace, "pods", pod), within);
    }

    /// Ends every open watch (an API server restart, a proxy's idle timeout).
    pub fn end_watches(&self) {
        let mut state = self.lock();
        state.watches.cancel();
        state.watches = CancellationToken::new();
    }

    /// etcd compacts its history: a watch from any version so far gets 410 Gone.
    pub fn compact(&self) {
        self.lock().store.compact();
    }

    /// All at once, so no client can slip in between: the open watches end, `change` happens,
    /// and the history is compacted past it. A client that resumes from its last version gets
    /// 410 and must list again to learn of the change.
    pub fn while_watches_are_down(&self, change: impl FnOnce(&FakeCluster)) {
        self.end_watches();
        change(self);
        self.compact();
    }

    /// The next `n` watches get 410 Gone: their version was compacted before they arrived.
    pub fn expire_next_watches(&self, n: usize) {
        self.lock().expire = n;
    }

    /// Puts an object in place as if made earlier (by another vestibule, or an admin).
    pub fn insert(&self, resource: &str, object: Value) {
        self.lock().store.insert(resource, object);
    }

    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.get_in(NAMESPACE, resource, name)
    }

    pub fn get_in(&self, namespace: &str, resource: &str, name: &str) -> Option<Value> {
        self.lock()
            .store
            .objects
            .get(&key(namespace, resource, name))
            .cloned()
    }

    /// Names of the objects of `resource`, in every namespace.
    pub fn names(&self, resource: &str) -> Vec<String> {
        self.lock()
            .store
            .objects
            .keys()
            .filter(|(_, r, _)| r == resource)
            .map(|(_, _, n)| n.clone())
            .collect()
    }

    /// Names of the objects of `resource` not being deleted.
    pub fn live_names(&self, resource: &str) -> Vec<String> {
        self.lock()
            .store
            .objects
            .iter()
            .filter(|((_, r, _), o)| r == resource && o["metadata"]["deletionTimestamp"].is_null())
            .map(|((_, _, n), _)| n.clone())
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Requests refused by RBAC: "verb group/resource in namespace".
    pub fn denied(&self) -> Vec<String> {
        self.lock().denied.clone()
    }

    /// Each namespaced request as an RBAC rule sees it: (API group, resource, verb).
    pub fn rbac_calls(&self) -> Vec<(String, String, String)> {
        self.seen()
            .iter()
            .filter_map(|s| {
                let r = Route::of(&s.method, &s.path, &s.query)?;
                r.namespace.as_ref()?;
                Some((r.group.clone(), r.rbac_resource(), r.verb().to_string()))
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

    async fn answer(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 16 << 20)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.lock().seen.push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        if let Some(list) = discovery(&path) {
            return reply(StatusCode::OK, list);
        }
        let Some(route) = Route::of(&parts.method, &path, &query) else {
            return refuse((404, "NotFound", format!("the server could not find {path}")));
        };
        let mut state = self.lock();
        let verb = route.verb();
        if !state.rbac.allows(
            route.namespace.as_deref(),
            &route.group,
            &route.rbac_resource(),
            verb,
        ) {
            let message = rbac::forbidden_message(
                route.namespace.as_deref(),
                &route.group,
                &route.rbac_resource(),
                verb,
            );
            state.denied.push(format!(
                "{verb} {}/{} in {}",
                route.group,
                route.rbac_resource(),
                route.namespace.as_deref().unwrap_or("the cluster")
            ));
            return refuse((403, "Forbidden", message));
        }
        let ns = route.namespace.clone().unwrap_or_default();
        let name = route.name.clone().unwrap_or_default();
        let k = key(&ns, &route.resource, &name);
        if route.group == "metrics.k8s.io" {
            return pod_metrics::answer(&state, verb, &k);
        }
        let result = match (verb, route.sub.as_deref()) {
            ("create", _) => state.store.create(&ns, &route.resource, body),
            ("get", Some("log")) => return pod_logs::answer(&self.state, &state, &k, &query),
            ("get", _) => state.store.get(&k),
            ("list", _) => Ok(list(&state.store, route.selection(&query))),
            ("watch", _) if state.expire > 0 => {
                state.expire -= 1;
                state.store.compact();
                return watch::expired(state.store.compacted);
            }
            ("watch", _) => {
                let ask = WatchAsk {
                    selection: route.selection(&query),
                    since: param(&query, "resourceVersion")
                        .filter(|v| !v.is_empty() && v != "0")
                        .and_then(|v| v.parse().ok()),
                    timeout: Duration::from_secs(
                        param(&query, "timeoutSeconds")
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(1800),
                    ),
                    bookmarks: param(&query, "allowWatchBookmarks").as_deref() == Some("true"),
                };
                return watch::open(
                    &state.store,
                    ask,
                    state.watches.clone(),
                    state.bookmark_every,
                );
            }
            ("patch", _) => {
                let merge = !content_type.contains("json-patch");
                state.store.patch(&k, &body, merge)
            }
            ("delete", _) => {
                let grace = body["gracePeriodSeconds"]
                    .as_i64()
                    .or_else(|| param(&query, "gracePeriodSeconds").and_then(|g| g.parse().ok()));
                state.store.delete(&k, grace)
            }
            _ => Err((
                405,
                "MethodNotAllowed",
                format!("{verb} is not served here"),
            )),
        };
        match result {
            Ok(object) if verb == "create" => {
                if let (Some((container, text)), "pods") =
                    (state.startup_output.clone(), route.resource.as_str())
                {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    state.logs.insert(
                        (ns.clone(), name.to_string(), container),
                        pod_logs::Logs {
                            current: pod_logs::Logs::stamped(&text),
                            previous: String::new(),
                        },
                    );
                }
                reply(StatusCode::CREATED, object)
            }
            Ok(object) => reply(StatusCode::OK, object),
            Err(refusal) => refuse(refusal),
        }
    }
}

/// The clock of the controllers and kubelets: statuses move on, pods finish terminating,
/// finalizers are removed.
async fn advance_with_time(state: Weak<Mutex<State>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Some(state) = state.upgrade() else { return };
        state.lock().store.advance();
    }
}

/// A request path taken apart: `/api/v1/namespaces/NS/RESOURCE[/NAME[/SUB]]` or
/// `/apis/GROUP/VERSION/...`, and the same without `namespaces/NS` for cluster-wide calls.
struct Route {
    method: Method,
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

impl Route {
    fn of(method: &Method, path: &str, query: &str) -> Option<Route> {
        let rest = path.strip_prefix("/api/v1/").map(|r| ("", r)).or_else(|| {
            let after = path.strip_prefix("/apis/")?;
            let mut parts = after.splitn(3, '/');
            let group = parts.next()?;
            let _version = parts.next()?;
            Some((group, parts.next()?))
        });
        let (group, rest) = rest?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let (namespace, parts) = match parts.as_slice() {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
            all => (None, all),
        };
        Some(Route {
            method: method.clone(),
            group: group.to_string(),
            namespace,
            resource: parts.first()?.to_string(),
            name: parts.get(1).map(|s| s.to_string()),
            sub: parts.get(2).map(|s| s.to_string()),
            watch: query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1"),
        })
    }

    fn verb(&self) -> &'static str {
        match (&self.method, self.name.is_some()) {
            (&Method::GET, false) if self.watch => "watch",
            (&Method::GET, false) => "list",
            (&Method::GET, true) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "unknown",
        }
    }

    fn rbac_resource(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }

    fn selection(&self, query: &str) -> Selection {
        Selection {
            namespace: self.namespace.clone(),
            resource: self.resource.clone(),
            labels: param(query, "labelSelector"),
            fields: param(query, "fieldSelector"),
        }
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| {
            urlencoding::decode(&v.replace('+', " "))
                .map(|s| s.into_owned())
                .unwrap_or_default()
        })
    })
}

fn list(store: &Store, selection: Selection) -> Value {
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((ns, r, _), o)| selection.matches(ns, r, o))
        .map(|(_, o)| o.clone())
        .collect();
    let kind = match selection.resource.as_str() {
        "pods" => "PodList",
        "services" => "ServiceList",
        "events" => "EventList",
        _ => "List",
    };
    json!({"apiVersion": "v1", "kind": kind,
           "metadata": {"resourceVersion": store.version().to_string()}, "items": items})
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

fn reply(code: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn refuse((code, reason, message): Refusal) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}
