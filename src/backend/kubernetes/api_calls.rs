//! Every Kubernetes API call the backend makes, in one list: the backend's code paths name their
//! entry here, and the shipped Role (deploy/kubernetes) is tested against it, so the Role grants
//! exactly what is used.

/// One kind of API call: `verb` on `resource` (with its API group, "" for the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
}

const fn call(group: &'static str, resource: &'static str, verb: &'static str) -> ApiCall {
    ApiCall {
        group,
        resource,
        verb,
    }
}

pub const CREATE_POD: ApiCall = call("", "pods", "create");
pub const GET_POD: ApiCall = call("", "pods", "get");
pub const LIST_PODS: ApiCall = call("", "pods", "list");
/// Following a starting pod, so its readiness is seen at once rather than at the next poll, and
/// the realm's pods, so a crash is seen as it happens (with LIST_PODS after a 410 Gone).
pub const WATCH_PODS: ApiCall = call("", "pods", "watch");
pub const DELETE_POD: ApiCall = call("", "pods", "delete");
/// The last output of a pod that failed, and the live log of a running one (followed).
pub const GET_POD_LOG: ApiCall = call("", "pods/log", "get");
/// A pod's CPU and memory for the admin console, from metrics-server.
pub const GET_POD_METRICS: ApiCall = call("metrics.k8s.io", "pods", "get");
pub const CREATE_SERVICE: ApiCall = call("", "services", "create");
pub const GET_SERVICE: ApiCall = call("", "services", "get");
pub const DELETE_SERVICE: ApiCall = call("", "services", "delete");
pub const LIST_EVENTS: ApiCall = call("", "events", "list");
/// Additional manifests may be of any kind; the shipped Role covers the kind the EKS setup
/// uses (per-user PersistentVolumeClaims). Other kinds need their own rule.
pub const GET_CLAIM: ApiCall = call("", "persistentvolumeclaims", "get");
pub const CREATE_CLAIM: ApiCall = call("", "persistentvolumeclaims", "create");
pub const PATCH_CLAIM: ApiCall = call("", "persistentvolumeclaims", "patch");
pub const DELETE_CLAIM: ApiCall = call("", "persistentvolumeclaims", "delete");

pub const ALL: &[ApiCall] = &[
    CREATE_POD,
    GET_POD,
    LIST_PODS,
    WATCH_PODS,
    DELETE_POD,
    GET_POD_LOG,
    GET_POD_METRICS,
    CREATE_SERVICE,
    GET_SERVICE,
    DELETE_SERVICE,
    LIST_EVENTS,
    GET_CLAIM,
    CREATE_CLAIM,
    PATCH_CLAIM,
    DELETE_CLAIM,
];
