//! The shipped manifests (deploy/kubernetes): every kustomization renders with `kubectl
//! kustomize`, every object is a valid Kubernetes object, the Role grants exactly the calls the
//! backend makes, and the application.yml they carry loads.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use vestibule::backend::kubernetes::api_calls;
use vestibule::config::{BackendKind, StoreConfig, load_str};

/// vestibule's drain after SIGTERM (`DRAIN_TIME` in src/lib.rs): in-flight requests and
/// WebSockets get this long before the instances are handed over.
const DRAIN_SECONDS: i64 = 10;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn kustomizations() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![deploy_dir()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                found.push(dir.clone());
            }
        }
    }
    found.sort();
    found
}

fn render(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl is needed to render {} (scripts/install-test-deps.sh installs it): {e}",
                dir.display()
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

/// Deserializes into the k8s-openapi type and back: a field the type does not know (a typo, a
/// wrong level) is lost on the way, so the two differ.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> T {
    let name = format!("{} {}", object["kind"], object["metadata"]["name"]);
    let value: T = serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&value).unwrap();
    assert_eq!(&back, object, "{name} holds fields its type does not know");
    value
}

fn check_object(object: &Value) {
    match object["kind"].as_str().unwrap() {
        "Namespace" => drop(typed::<Namespace>(object)),
        "ServiceAccount" => drop(typed::<ServiceAccount>(object)),
        "Role" => drop(typed::<Role>(object)),
        "RoleBinding" => drop(typed::<RoleBinding>(object)),
        "ConfigMap" => drop(typed::<ConfigMap>(object)),
        "Deployment" => drop(typed::<Deployment>(object)),
        "Service" => drop(typed::<Service>(object)),
        "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(object)),
        "Ingress" => drop(typed::<Ingress>(object)),
        "NetworkPolicy" => drop(typed::<NetworkPolicy>(object)),
        "StorageClass" => drop(typed::<StorageClass>(object)),
        "PersistentVolumeClaim" => drop(typed::<PersistentVolumeClaim>(object)),
        "HorizontalPodAutoscaler" => drop(typed::<HorizontalPodAutoscaler>(object)),
        other => panic!("no check for kind {other}; add its k8s-openapi type here"),
    }
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn every_kustomization_renders_into_valid_objects() {
    let dirs = kustomizations();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for dir in dirs {
        let objects = render(&dir);
        assert!(
            objects.len() >= 9,
            "{}: {} objects",
            dir.display(),
            objects.len()
        );
        for object in &objects {
            check_object(object);
            let kind = object["kind"].as_str().unwrap();
            assert!(!kind.starts_with("Cluster"), "{kind}: nothing cluster-wide");
        }
        let config = find(&objects, "ConfigMap", "vestibule-config");
        let yml = config["data"]["application.yml"].as_str().unwrap();
        let loaded = load_str(
            &dir.join("application.yml"),
            yml,
            &HashMap::<String, String>::new(),
        )
        .unwrap_or_else(|e| panic!("{}: application.yml does not load:\n{e}", dir.display()));
        assert_eq!(
            loaded.config.proxy.container_backend,
            BackendKind::Kubernetes
        );
        assert_eq!(loaded.config.proxy.kubernetes.namespace, "shiny");
        assert_eq!(loaded.config.server.management_port, Some(9090));

        let deployment: Deployment = typed(find(&objects, "Deployment", "vestibule"));
        let spec = deployment.spec.unwrap();
        // Sessions and instances in one pod's memory: a second replica would log users out.
        if matches!(loaded.config.store, StoreConfig::Memory) {
            assert_eq!(
                spec.replicas,
                Some(1),
                "{}: memory mode runs one replica",
                dir.display()
            );
        }
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        let probe_port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|h| h.port.clone())
        };
        let management = Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("management".into()),
        );
        assert_eq!(probe_port(&c.readiness_probe), management);
        assert_eq!(probe_port(&c.liveness_probe), management);
        assert!(
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some()
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert_eq!(pod.service_account_name.as_deref(), Some("vestibule"));
    }
}

#[test]
fn the_role_grants_exactly_the_calls_the_backend_makes() {
    let objects = render(&deploy_dir().join("base"));
    let role: Role = typed(find(&objects, "Role", "vestibule-apps"));
    assert_eq!(
        role.metadata.namespace.as_deref(),
        Some("shiny"),
        "the apps namespace"
    );
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "no wildcards");
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let used: BTreeSet<_> = api_calls::ALL
        .iter()
        .map(|c| {
            (
                c.group.to_string(),
                c.resource.to_string(),
                c.verb.to_string(),
            )
        })
        .collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the backend needs these but the Role lacks them: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "the Role grants what the backend never uses: {extra:?}"
    );

    let binding: RoleBinding = typed(find(&objects, "RoleBinding", "vestibule-apps"));
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("vestibule", Some("vestibule"))
    );
}

#[test]
fn the_eks_overlay_reproduces_the_seed_setup() {
    let objects = render(&deploy_dir().join("overlays/eks"));
    let ingress = find(&objects, "Ingress", "vestibule");
    let notes = &ingress["metadata"]["annotations"];
    assert_eq!(notes["alb.ingress.kubernetes.io/target-type"], "ip");
    assert_eq!(
        notes["alb.ingress.kubernetes.io/healthcheck-path"],
        "/actuator/health"
    );
    assert!(
        notes["alb.ingress.kubernetes.io/load-balancer-attributes"]
            .as_str()
            .unwrap()
            .contains("idle_timeout.timeout_seconds=1800")
    );
    assert_eq!(
        find(&objects, "StorageClass", "efs-sc")["provisioner"],
        "efs.csi.aws.com"
    );
    assert_eq!(
        find(&objects, "PersistentVolumeClaim", "shared-data")["spec"]["storageClassName"],
        "efs-sc"
    );
    find(&objects, "HorizontalPodAutoscaler", "shared-dashboard");

    let config = find(&objects, "ConfigMap", "vestibule-config");
    let yml = config["data"]["application.yml"].as_str().unwrap();
    let loaded = load_str(
        Path::new("eks/application.yml"),
        yml,
        &HashMap::<String, String>::new(),
    )
    .unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.to_string().contains("kubernetes")),
        "{:?}",
        loaded.warnings
    );
    let k = &loaded.config.proxy.kubernetes;
    assert_eq!(
        k.node_selector.get("NodeSize").map(String::as_str),
        Some("m5.xlarge")
    );
    let spec = &loaded.config.proxy.specs[0];
    assert_eq!(
        spec.kubernetes.persistent_manifests[0]["metadata"]["name"],
        "home-#{proxy.userId}"
    );
    assert_eq!(
        spec.kubernetes.pod_patches.as_ref().map(|p| p.0.len()),
        Some(2)
    );
}

/// Two replicas share state in the overlay's Redis, and a replica that goes leaves the load
/// balancer before it stops serving.
#[test]
fn the_eks_overlay_runs_two_replicas_on_redis_and_leaves_the_load_balancer_first() {
    let objects = render(&deploy_dir().join("overlays/eks"));
    let deployment: Deployment = typed(find(&objects, "Deployment", "vestibule"));
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == "vestibule")
        .expect("the vestibule container");
    let pre_stop = pre_stop_sleep_seconds(container);
    assert!(
        pre_stop >= 5,
        "a preStop sleep of {pre_stop} s gives the ALB no time to deregister the pod"
    );
    let grace = pod
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace >= pre_stop + DRAIN_SECONDS,
        "a grace period of {grace} s does not cover the preStop sleep ({pre_stop} s) and \
         vestibule's drain ({DRAIN_SECONDS} s)"
    );
    // The ALB must not cut connections vestibule is still draining.
    let ingress = find(&objects, "Ingress", "vestibule");
    let attributes =
        ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-group-attributes"]
            .as_str()
            .unwrap();
    let delay: i64 = attributes
        .split(',')
        .find_map(|a| a.strip_prefix("deregistration_delay.timeout_seconds="))
        .expect("a deregistration delay")
        .parse()
        .unwrap();
    assert!(
        delay >= pre_stop + DRAIN_SECONDS,
        "deregistration delay {delay} s"
    );

    let config = find(&objects, "ConfigMap", "vestibule-config");
    let yml = config["data"]["application.yml"].as_str().unwrap();
    let loaded = load_str(
        Path::new("eks/application.yml"),
        yml,
        &HashMap::<String, String>::new(),
    )
    .unwrap();
    let StoreConfig::Redis(redis) = &loaded.config.store else {
        panic!(
            "two replicas need proxy.store-mode: Redis, got {:?}",
            loaded.config.store
        );
    };
    assert_eq!((redis.host.as_str(), redis.port), ("redis", 6379));
    // That host is the overlay's Redis Service, in vestibule's namespace, on that port.
    let service: Service = typed(find(&objects, "Service", &redis.host));
    assert_eq!(service.metadata.namespace.as_deref(), Some("vestibule"));
    let ports = service.spec.unwrap().ports.unwrap();
    assert!(ports.iter().any(|p| p.port == i32::from(redis.port)));
    let redis_pods: Deployment = typed(find(&objects, "Deployment", "redis"));
    assert_eq!(
        redis_pods.spec.unwrap().template.metadata.unwrap().labels,
        Some(
            [("app.kubernetes.io/name".to_string(), "redis".to_string())]
                .into_iter()
                .collect()
        )
    );
    // Only vestibule may reach it.
    let policy: NetworkPolicy = typed(find(&objects, "NetworkPolicy", "redis"));
    let from = serde_json::to_value(policy.spec.unwrap().ingress.unwrap()).unwrap();
    assert_eq!(
        from[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "vestibule"
    );
}

/// The seconds a container's preStop hook sleeps: `exec: [sleep, N]` or `sleep: {seconds: N}`.
fn pre_stop_sleep_seconds(container: &k8s_openapi::api::core::v1::Container) -> i64 {
    let hook = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .expect("a preStop hook");
    if let Some(sleep) = &hook.sleep {
        return sleep.seconds;
    }
    let command = hook
        .exec
        .as_ref()
        .and_then(|e| e.command.clone())
        .expect("preStop runs a command or sleeps");
    match command.as_slice() {
        [sleep, seconds] if sleep == "sleep" || sleep.ends_with("/sleep") => seconds
            .parse()
            .unwrap_or_else(|_| panic!("preStop: sleep {seconds}")),
        other => panic!("preStop should be a sleep, not {other:?}"),
    }
}

/// The ServiceMonitor (monitoring/servicemonitor.yaml, for prometheus-operator) selects the
/// base's Service and scrapes the pods' management port where vestibule serves its metrics, the
/// same port the pods' `prometheus.io/*` annotations name.
#[test]
fn the_service_monitor_scrapes_the_management_port() {
    let text =
        std::fs::read_to_string(deploy_dir().join("monitoring/servicemonitor.yaml")).unwrap();
    let monitor: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(monitor["kind"], "ServiceMonitor");
    let objects = render(&deploy_dir().join("base"));
    let service = find(&objects, "Service", "vestibule");
    assert_eq!(
        monitor["metadata"]["namespace"],
        service["metadata"]["namespace"]
    );
    let wanted = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(!wanted.is_empty());
    for (label, value) in wanted {
        assert_eq!(&service["metadata"]["labels"][label], value, "{label}");
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/actuator/prometheus");
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the Service has the port the ServiceMonitor scrapes");
    assert_eq!(port["targetPort"], "management");
    let pod = &find(&objects, "Deployment", "vestibule")["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], port["port"].to_string());
    assert_eq!(annotations["prometheus.io/path"], endpoint["path"]);
    let container_port = pod["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "management")
        .expect("a management container port");
    assert_eq!(container_port["containerPort"], port["port"]);
}
