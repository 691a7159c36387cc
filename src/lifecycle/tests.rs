//! The lifecycle against a fake backend, with tokio's clock paused: minutes of idle time, start
//! timeouts and lifetimes pass in microseconds, and every deadline is checked to the tick.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::{InstanceStatus, InstanceView, LaunchError, Manager, Probe, StopReason};
use crate::auth::Identity;
use crate::backend::{Backend, BackendError, Health, LaunchRequest, Recovered, Started};
use crate::clock::Instant;
use crate::config::{AppSpec, Config, embedded_default};

/// How one app behaves when the fake backend starts it.
#[derive(Clone)]
struct Plan {
    start_takes: Duration,
    start_error: Option<String>,
    /// `None`: the app never answers.
    ready_after: Option<Duration>,
    /// The app dies this long after it starts, saying how.
    exits_after: Option<(Duration, String)>,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            start_takes: Duration::from_millis(100),
            start_error: None,
            ready_after: Some(Duration::from_secs(2)),
            exits_after: None,
        }
    }
}

struct FakeInstance {
    address: SocketAddr,
    started: Instant,
    plan: Plan,
    crashed: Option<String>,
}

impl FakeInstance {
    fn exited(&self) -> Option<String> {
        self.crashed.clone().or_else(|| {
            self.plan
                .exits_after
                .as_ref()
                .filter(|(after, _)| self.started.elapsed() >= *after)
                .map(|(_, how)| how.clone())
        })
    }
}

/// A backend that runs nothing: instances are entries in a map, they become ready and die on
/// the paused clock as their app's [`Plan`] says, and every start and stop is recorded.
#[derive(Default)]
struct FakeBackend {
    plans: Mutex<HashMap<String, Plan>>,
    instances: Mutex<HashMap<String, FakeInstance>>,
    started: Mutex<Vec<String>>,
    stopped: Mutex<Vec<String>>,
    next_port: std::sync::atomic::AtomicU16,
}

impl FakeBackend {
    fn plan(&self, spec_id: &str, plan: Plan) {
        self.plans.lock().insert(spec_id.to_string(), plan);
    }

    fn crash(&self, id: &str, how: &str) {
        if let Some(i) = self.instances.lock().get_mut(id) {
            i.crashed = Some(how.to_string());
        }
    }

    fn running(&self) -> Vec<String> {
        self.instances.lock().keys().cloned().collect()
    }

    /// An instance an earlier run left, listening at `address`, that answers or not.
    fn left_running(&self, id: &str, address: SocketAddr, answers: bool) {
        let plan = Plan {
            ready_after: answers.then_some(Duration::ZERO),
            ..Plan::default()
        };
        self.instances.lock().insert(
            id.to_string(),
            FakeInstance {
                address,
                started: Instant::now(),
                plan,
                crashed: None,
            },
        );
    }

    fn stops_of(&self, id: &str) -> usize {
        self.stopped.lock().iter().filter(|s| *s == id).count()
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn start(&self, req: &LaunchRequest) -> Result<Started, BackendError> {
        let plan = self
            .plans
            .lock()
            .get(&req.spec.id)
            .cloned()
            .unwrap_or_default();
        self.started.lock().push(req.instance_id.clone());
        req.progress.stage(crate::backend::Stage::Creating("fake"));
        sleep(plan.start_takes).await;
        if let Some(e) = &plan.start_error {
            return Err(BackendError::Start(e.clone()));
        }
        let port = 20_000
            + self
                .next_port
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        self.instances.lock().insert(
            req.instance_id.clone(),
            FakeInstance {
                address,
                started: Instant::now(),
                plan,
                crashed: None,
            },
        );
        Ok(Started { address })
    }

    async fn stop(&self, instance_id: &str) -> Result<(), BackendError> {
        self.stopped.lock().push(instance_id.to_string());
        self.instances.lock().remove(instance_id);
        Ok(())
    }

    async fn list(&self) -> Vec<String> {
        self.running()
    }

    async fn health(&self, instance_id: &str) -> Health {
        match self.instances.lock().get(instance_id) {
            Some(i) => i.exited().map(Health::Exited).unwrap_or(Health::Running),
            None => Health::Unknown,
        }
    }

    fn last_log_lines(&self, instance_id: &str, _n: usize) -> Vec<String> {
        vec![format!("last words of {instance_id}")]
    }
}

#[async_trait]
impl Probe for FakeBackend {
    async fn check(&self, target: &super::readiness::ProbeTarget<'_>) -> Result<(), String> {
        let address = target.address;
        let instances = self.instances.lock();
        let Some(i) = instances.values().find(|i| i.address == address) else {
            return Err("connection refused".into());
        };
        match i.plan.ready_after {
            Some(after) if i.started.elapsed() >= after && i.exited().is_none() => Ok(()),
            _ => Err("connection refused".into()),
        }
    }
}

fn spec(id: &str) -> AppSpec {
    let mut spec = embedded_default(Path::new("/bin/true"), String::new())
        .proxy
        .specs
        .remove(0);
    spec.id = id.to_string();
    spec.display_name = format!("App {id}");
    spec.heartbeat_timeout = None;
    spec.max_lifetime = None;
    spec.max_instances = None;
    spec
}

fn config(specs: Vec<AppSpec>) -> Config {
    let mut cfg = embedded_default(Path::new("/bin/true"), String::new());
    cfg.proxy.specs = specs;
    cfg.proxy.container_wait_time = Duration::from_secs(20);
    cfg
}

struct World {
    manager: Arc<Manager>,
    backend: Arc<FakeBackend>,
    culler: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.culler.cancel();
    }
}

fn world(cfg: Config) -> World {
    world_with(cfg, |_| {})
}

fn world_with(cfg: Config, plans: impl FnOnce(&FakeBackend)) -> World {
    let backend = Arc::new(FakeBackend::default());
    plans(&backend);
    let manager = Manager::with_probe(
        Arc::new(cfg),
        backend.clone(),
        backend.clone(),
        Arc::new(crate::store::MemoryStore::default()),
    );
    let culler = CancellationToken::new();
    manager.spawn_culler(culler.clone());
    World {
        manager,
        backend,
        culler,
    }
}

fn user(name: &str) -> Identity {
    Identity {
        user: name.to_string(),
        groups: vec!["analysts".into()],
        is_admin: false,
    }
}

impl World {
    async fn launch(&self, who: &str, app: &str) -> InstanceView {
        self.manager
            .launch(&user(who), app)
            .await
            .unwrap_or_else(|e| panic!("{who} could not launch {app}: {e}"))
    }

    /// Waits (on the paused clock) until the instance reaches `status`, or panics after `within`.
    async fn until(&self, id: &str, status: InstanceStatus, within: Duration) -> InstanceView {
        let mut rx = self.manager.watch(id).expect("a known instance");
        let reached = tokio::time::timeout(within, rx.wait_for(|v| v.status == status)).await;
        match reached {
            Ok(Ok(view)) => view.clone(),
            _ => panic!(
                "{id} did not become {status:?} within {within:?}: {:?}",
                self.manager.get(id).await
            ),
        }
    }

    async fn status(&self, id: &str) -> Option<InstanceStatus> {
        self.manager.get(id).await.map(|v| v.status)
    }
}

#[tokio::test(start_paused = true)]
async fn a_launch_is_routed_only_once_the_app_answers() {
    let w = world_with(config(vec![spec("app")]), |b| {
        b.plan(
            "app",
            Plan {
                ready_after: Some(Duration::from_secs(3)),
                ..Plan::default()
            },
        )
    });
    let began = Instant::now();
    let view = w.launch("alice", "app").await;
    assert_eq!(view.status, InstanceStatus::Starting);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(w.status(&view.id).await, Some(InstanceStatus::Starting));
    assert!(w.manager.routes().get(&view.id).is_none(), "no route yet");

    w.until(&view.id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3500),
        "ready after {waited:?}, as soon as it answered"
    );
    let route = w.manager.routes().get(&view.id).expect("a route");
    assert_eq!(route.owner, "alice");
    assert_eq!(route.spec_id, "app");
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_answers_fails_at_the_wait_time_with_its_last_lines() {
    let w = world_with(config(vec![spec("mute")]), |b| {
        b.plan(
            "mute",
            Plan {
                ready_after: None,
                ..Plan::default()
            },
        )
    });
    let began = Instant::now();
    let id = w.launch("alice", "mute").await.id;
    let failed = w
        .until(&id, InstanceStatus::Failed, Duration::from_secs(30))
        .await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(19) && took <= Duration::from_secs(21),
        "failed after {took:?}, at container-wait-time (20 s)"
    );
    let reason = failed.reason.expect("a reason");
    assert!(
        reason.contains("did not answer") && reason.contains("20 s"),
        "{reason}"
    );
    assert_eq!(failed.log_lines, [format!("last words of {id}")]);
    assert!(w.manager.routes().get(&id).is_none());
    assert_eq!(w.backend.stops_of(&id), 1, "the dead launch is cleaned up");
}

#[tokio::test(start_paused = true)]
async fn an_app_that_dies_while_starting_is_reported_at_once_not_at_the_deadline() {
    let w = world_with(config(vec![spec("dies")]), |b| {
        b.plan(
            "dies",
            Plan {
                ready_after: Some(Duration::from_secs(10)),
                exits_after: Some((Duration::from_secs(1), "exited with code 3".into())),
                ..Plan::default()
            },
        )
    });
    let began = Instant::now();
    let id = w.launch("alice", "dies").await.id;
    let failed = w
        .until(&id, InstanceStatus::Failed, Duration::from_secs(30))
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let reason = failed.reason.expect("a reason");
    assert!(
        reason.contains("exited with code 3") && reason.contains("before it answered"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_cannot_start_the_app_says_why() {
    let w = world_with(config(vec![spec("broken")]), |b| {
        b.plan(
            "broken",
            Plan {
                start_error: Some("image 'nope' not found".into()),
                ..Plan::default()
            },
        )
    });
    let id = w.launch("alice", "broken").await.id;
    let failed = w
        .until(&id, InstanceStatus::Failed, Duration::from_secs(5))
        .await;
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("image 'nope' not found"),
        "{failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_user_and_server_limits_hold_and_a_failed_instance_frees_its_place() {
    let mut one_each = spec("one");
    one_each.max_instances = Some(1);
    let mut cfg = config(vec![one_each, spec("many"), spec("broken")]);
    cfg.proxy.max_total_instances = Some(3);
    let w = world_with(cfg, |b| {
        b.plan(
            "broken",
            Plan {
                start_error: Some("no".into()),
                ..Plan::default()
            },
        )
    });

    let first = w.launch("alice", "one").await;
    let again = w.manager.launch(&user("alice"), "one").await;
    assert!(
        matches!(again, Err(LaunchError::LimitReached(ref m)) if m.contains("stop one first")),
        "{again:?}"
    );
    // The limit is per user: bob may run his own.
    w.launch("bob", "one").await;

    // A failed launch does not hold a place: with max-instances 1 a retry must be allowed.
    let mut broken_one = spec("broken-one");
    broken_one.max_instances = Some(1);
    let w2 = world_with(config(vec![broken_one]), |b| {
        b.plan(
            "broken-one",
            Plan {
                start_error: Some("no".into()),
                ..Plan::default()
            },
        )
    });
    let failed = w2.launch("alice", "broken-one").await.id;
    w2.until(&failed, InstanceStatus::Failed, Duration::from_secs(5))
        .await;
    assert!(
        w2.manager
            .launch(&user("alice"), "broken-one")
            .await
            .is_ok()
    );

    // max-total-instances counts everyone's live instances: two run, one more fits.
    w.launch("carol", "many").await;
    let full = w.manager.launch(&user("dave"), "many").await;
    assert!(
        matches!(full, Err(LaunchError::LimitReached(ref m)) if m.contains("its limit")),
        "{full:?}"
    );
    // Stopping one makes room again.
    assert!(w.manager.stop(&first.id, StopReason::User).await);
    assert!(w.manager.launch(&user("dave"), "many").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_apps_max_total_instances_counts_all_its_users_and_leaves_other_apps_alone() {
    let mut scarce = spec("scarce");
    scarce.max_total_instances = Some(2);
    let w = world(config(vec![scarce, spec("other")]));
    let first = w.launch("alice", "scarce").await;
    w.launch("bob", "scarce").await;
    let full = w.manager.launch(&user("carol"), "scarce").await;
    assert!(
        matches!(full, Err(LaunchError::LimitReached(ref m)) if m.contains("for all its users")),
        "{full:?}"
    );
    // Other apps are not counted against it.
    w.launch("carol", "other").await;
    // A stopped instance gives its place back.
    assert!(w.manager.stop(&first.id, StopReason::User).await);
    assert!(w.manager.launch(&user("carol"), "scarce").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_idle_instance_is_stopped_after_the_heartbeat_timeout_and_traffic_postpones_it() {
    let mut idle = spec("idle");
    idle.heartbeat_timeout = Some(Duration::from_secs(60));
    let w = world(config(vec![idle]));
    let id = w.launch("alice", "idle").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    let route = w.manager.routes().get(&id).expect("route");

    sleep(Duration::from_secs(50)).await;
    route.touch();
    sleep(Duration::from_secs(50)).await;
    assert_eq!(
        w.status(&id).await,
        Some(InstanceStatus::Running),
        "traffic at 50 s resets the clock"
    );
    sleep(Duration::from_secs(12)).await;
    assert_eq!(
        w.status(&id).await,
        None,
        "stopped 60 s after the last traffic"
    );
    assert_eq!(w.backend.stops_of(&id), 1);
    assert!(w.manager.routes().get(&id).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_instance_of_an_app_removed_by_a_reload_is_still_culled_by_its_own_timeout() {
    let mut idle = spec("idle");
    idle.heartbeat_timeout = Some(Duration::from_secs(60));
    let w = world(config(vec![idle]));
    let id = w.launch("alice", "idle").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    // The reloaded config no longer has the app; its running instance keeps its limits.
    w.manager
        .replace_config(Arc::new(config(vec![spec("other")])));
    sleep(Duration::from_secs(30)).await;
    assert_eq!(w.status(&id).await, Some(InstanceStatus::Running));
    sleep(Duration::from_secs(32)).await;
    assert_eq!(
        w.status(&id).await,
        None,
        "culled 60 s after the last traffic, as its app said"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_websocket_keeps_an_instance_from_idle_culling() {
    let mut idle = spec("ws");
    idle.heartbeat_timeout = Some(Duration::from_secs(60));
    let w = world(config(vec![idle]));
    let id = w.launch("alice", "ws").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    let route = w.manager.routes().get(&id).expect("route");
    let open = route.hold_open();
    sleep(Duration::from_secs(600)).await;
    assert_eq!(w.status(&id).await, Some(InstanceStatus::Running));
    drop(open);
    sleep(Duration::from_secs(62)).await;
    assert_eq!(w.status(&id).await, None, "idle once the connection closed");
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_stops_an_instance_at_its_age_and_not_before() {
    let mut old = spec("old");
    old.max_lifetime = Some(Duration::from_secs(600));
    let w = world(config(vec![old]));
    let id = w.launch("alice", "old").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    let route = w.manager.routes().get(&id).expect("route");
    for _ in 0..9 {
        sleep(Duration::from_secs(60)).await;
        route.touch();
    }
    assert_eq!(
        w.status(&id).await,
        Some(InstanceStatus::Running),
        "9 busy minutes in, it still runs"
    );
    sleep(Duration::from_secs(62)).await;
    assert_eq!(
        w.status(&id).await,
        None,
        "stopped at 10 minutes although busy"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_start_is_shown_with_the_apps_last_lines_and_unrouted() {
    let w = world(config(vec![spec("app")]));
    let id = w.launch("alice", "app").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    w.backend.crash(&id, "was killed by SIGKILL");
    let failed = w
        .until(&id, InstanceStatus::Failed, Duration::from_secs(2))
        .await;
    let reason = failed.reason.expect("reason");
    assert!(
        reason.contains("stopped unexpectedly") && reason.contains("SIGKILL"),
        "{reason}"
    );
    assert_eq!(failed.log_lines, [format!("last words of {id}")]);
    assert!(w.manager.routes().get(&id).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failure_stays_visible_for_15_minutes_then_is_forgotten() {
    let w = world_with(config(vec![spec("broken")]), |b| {
        b.plan(
            "broken",
            Plan {
                start_error: Some("no".into()),
                ..Plan::default()
            },
        )
    });
    let id = w.launch("alice", "broken").await.id;
    w.until(&id, InstanceStatus::Failed, Duration::from_secs(5))
        .await;
    sleep(Duration::from_secs(14 * 60)).await;
    assert_eq!(w.status(&id).await, Some(InstanceStatus::Failed));
    sleep(Duration::from_secs(62)).await;
    assert_eq!(w.status(&id).await, None);
}

#[tokio::test(start_paused = true)]
async fn stopping_an_instance_while_it_starts_never_routes_it_and_leaves_nothing_running() {
    let w = world_with(config(vec![spec("slow")]), |b| {
        b.plan(
            "slow",
            Plan {
                start_takes: Duration::from_secs(5),
                ..Plan::default()
            },
        )
    });
    let id = w.launch("alice", "slow").await.id;
    sleep(Duration::from_secs(1)).await;
    assert!(w.manager.stop(&id, StopReason::User).await);
    sleep(Duration::from_secs(30)).await;
    assert_eq!(w.status(&id).await, None);
    assert!(w.manager.routes().get(&id).is_none());
    assert!(
        w.backend.running().is_empty(),
        "the app the backend finished starting was stopped: {:?}",
        w.backend.running()
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_launches_and_stops_instances_when_configured() {
    let mut cfg = config(vec![spec("app")]);
    cfg.proxy.stop_proxies_on_shutdown = true;
    let w = world(cfg);
    let id = w.launch("alice", "app").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    w.manager.shutdown().await;
    assert_eq!(
        w.manager.launch(&user("bob"), "app").await.err(),
        Some(LaunchError::ShuttingDown)
    );
    assert!(w.backend.running().is_empty());

    let mut keep = config(vec![spec("app")]);
    keep.proxy.stop_proxies_on_shutdown = false;
    let w = world(keep);
    let id = w.launch("alice", "app").await.id;
    w.until(&id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    w.manager.shutdown().await;
    assert_eq!(
        w.backend.running(),
        [id],
        "left running for the next start to adopt"
    );
}

#[tokio::test(start_paused = true)]
async fn adoption_keeps_known_apps_and_stops_instances_of_apps_no_longer_configured() {
    let w = world(config(vec![spec("app")]));
    let found = |id: &str, app: &str, port: u16| Recovered {
        instance_id: id.into(),
        spec_id: app.into(),
        user: "alice".into(),
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        spec_hash: String::new(),
        created_unix_ms: 0,
    };
    let kept = found("kept", "app", 9);
    w.backend.left_running("kept", kept.address, true);
    w.manager
        .adopt(vec![kept, found("orphan", "removed-app", 10)])
        .await;
    assert_eq!(w.status("kept").await, Some(InstanceStatus::Running));
    assert_eq!(
        w.manager.routes().get("kept").map(|r| r.owner.clone()),
        Some("alice".into())
    );
    assert_eq!(w.status("orphan").await, None);
    tokio::task::yield_now().await;
    assert_eq!(w.backend.stops_of("orphan"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_instance_that_never_answers_is_not_routed_and_fails() {
    // As after a kill in the middle of a launch: the container exists, its app never answered.
    let w = world(config(vec![spec("app")]));
    let stuck = Recovered {
        instance_id: "stuck".into(),
        spec_id: "app".into(),
        user: "alice".into(),
        address: SocketAddr::from(([127, 0, 0, 1], 11)),
        spec_hash: String::new(),
        created_unix_ms: 0,
    };
    w.backend.left_running("stuck", stuck.address, false);
    w.manager.adopt(vec![stuck]).await;
    assert_eq!(w.status("stuck").await, Some(InstanceStatus::Starting));
    assert!(
        w.manager.routes().get("stuck").is_none(),
        "routed to an app that does not answer"
    );
    let failed = w
        .until("stuck", InstanceStatus::Failed, Duration::from_secs(60))
        .await;
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("did not answer"),
        "{failed:?}"
    );
}

fn pool_spec(id: &str, min: u32, max: u32) -> AppSpec {
    let mut s = spec(id);
    s.pool = Some(crate::config::PoolSettings {
        min_instances: min,
        max_instances: max,
        target_concurrency: 2,
        scale_down_delay: Duration::from_secs(5),
        session_affinity: false,
        stable_window: Duration::from_secs(10),
        queue_limit: 100,
        client_rate_limit: None,
    });
    s
}

/// Waits (on the paused clock) until the pool has `ready` members in rotation.
async fn pool_ready(w: &World, app: &str, ready: usize, within: Duration) {
    let pool = w.manager.pools().get(app).expect("a pool").clone();
    let reached = tokio::time::timeout(within, async {
        while pool.members().len() != ready {
            sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{app} did not reach {ready} ready members within {within:?}: {:?}",
        w.manager.pool_members(app)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pool_at_zero_starts_an_instance_for_a_held_request_and_serves_it_when_ready() {
    let w = world(config(vec![pool_spec("api", 0, 3)]));
    let pool = w.manager.pools().get("api").expect("a pool").clone();
    sleep(Duration::from_secs(5)).await;
    assert!(w.backend.running().is_empty(), "nothing runs without load");
    let began = Instant::now();
    let served = pool
        .acquire(None, Duration::from_secs(20))
        .await
        .expect("served once an instance is ready");
    let waited = began.elapsed();
    // Started at once on the poke, ready 2.1 s later (start 0.1 s, then the app's 2 s).
    assert!(waited < Duration::from_millis(2500), "held for {waited:?}");
    assert_eq!(w.backend.running(), vec![served.instance_id.clone()]);
    assert!(
        w.manager.launch(&user("alice"), "api").await.is_err(),
        "no private instances of a pool"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashed_member_leaves_the_rotation_and_the_minimum_is_restored() {
    let w = world(config(vec![pool_spec("api", 2, 3)]));
    pool_ready(&w, "api", 2, Duration::from_secs(10)).await;
    let pool = w.manager.pools().get("api").expect("a pool").clone();
    let victim = pool.members()[0].instance_id.clone();
    w.backend.crash(&victim, "was killed by signal 9");
    sleep(Duration::from_millis(1500)).await;
    assert!(
        pool.members().iter().all(|r| r.instance_id != victim),
        "a dead member is never picked"
    );
    pool_ready(&w, "api", 2, Duration::from_secs(10)).await;
    assert!(!pool.members().iter().any(|r| r.instance_id == victim));
}

#[tokio::test(start_paused = true)]
async fn a_surplus_member_is_drained_then_stopped_after_its_requests_finish() {
    let w = world(config(vec![pool_spec("api", 0, 2)]));
    let pool = w.manager.pools().get("api").expect("a pool").clone();
    // Load for two instances (target 2 each): four requests held open.
    let mut held = Vec::new();
    for _ in 0..4 {
        let route = pool
            .acquire(None, Duration::from_secs(20))
            .await
            .expect("served");
        held.push(route.begin());
        pool_ready(&w, "api", pool.members().len(), Duration::from_secs(1)).await;
    }
    pool_ready(&w, "api", 2, Duration::from_secs(15)).await;
    // The load ends except for one long request.
    let long = held.pop().expect("a request");
    drop(held);
    let busy = pool
        .members()
        .iter()
        .max_by_key(|r| r.in_flight())
        .map(|r| r.instance_id.clone())
        .expect("a member");
    // Window (10 s) and delay (5 s) pass: one member is drained; the idle one goes first.
    pool_ready(&w, "api", 1, Duration::from_secs(30)).await;
    assert_eq!(
        pool.members()[0].instance_id,
        busy,
        "the member with work left stays"
    );
    drop(long);
    // And with no load at all, the last one goes too.
    pool_ready(&w, "api", 0, Duration::from_secs(30)).await;
    sleep(Duration::from_secs(1)).await;
    assert!(w.backend.running().is_empty(), "{:?}", w.backend.running());
}

fn seat_spec(id: &str, min: u32, per_container: u32, reuse: bool) -> AppSpec {
    let mut s = spec(id);
    s.seats = Some(crate::config::SeatSettings {
        minimum_available: min,
        per_container,
        allow_reuse: reuse,
        scale_down_delay: Duration::from_secs(120),
    });
    s
}

/// Waits (on the paused clock) until `app` has `free` free seats.
async fn free_seats(w: &World, app: &str, free: u32, within: Duration) {
    let counts = || {
        w.manager
            .seat_counts()
            .into_iter()
            .find(|(a, _)| a == app)
            .map(|(_, c)| c)
            .unwrap_or_default()
    };
    let reached = tokio::time::timeout(within, async {
        while counts().free != free {
            sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{app} never had {free} free seats: {:?}",
        counts()
    );
}

#[tokio::test(start_paused = true)]
async fn a_free_seat_is_handed_out_at_once_and_the_floor_is_refilled() {
    let w = world(config(vec![seat_spec("shiny", 2, 1, true)]));
    free_seats(&w, "shiny", 2, Duration::from_secs(10)).await;
    let began = Instant::now();
    let view = w.launch("alice", "shiny").await;
    assert_eq!(view.status, InstanceStatus::Running, "no start to wait for");
    assert!(began.elapsed() < Duration::from_millis(10));
    let route = w.manager.routes().get(&view.id).expect("routed");
    assert_eq!(route.owner, "alice");
    // One seat taken, one more container started in the background.
    free_seats(&w, "shiny", 2, Duration::from_secs(10)).await;
    assert_eq!(w.backend.running().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn with_no_free_seat_a_launch_waits_for_the_next_container() {
    let w = world(config(vec![seat_spec("shiny", 0, 2, true)]));
    sleep(Duration::from_secs(3)).await;
    assert!(
        w.backend.running().is_empty(),
        "a minimum of 0 starts nothing ahead"
    );
    let view = w.launch("alice", "shiny").await;
    assert_eq!(view.status, InstanceStatus::Starting);
    w.until(&view.id, InstanceStatus::Running, Duration::from_secs(5))
        .await;
    // The container's second seat goes to the next user, at once.
    let bob = w.launch("bob", "shiny").await;
    assert_eq!(bob.status, InstanceStatus::Running);
    assert_eq!(w.backend.running().len(), 1, "two users, one container");
}

#[tokio::test(start_paused = true)]
async fn without_reuse_a_left_container_is_replaced_and_a_dead_one_never_handed_out() {
    let w = world(config(vec![seat_spec("shiny", 1, 1, false)]));
    free_seats(&w, "shiny", 1, Duration::from_secs(10)).await;
    let first = w.backend.running();
    let view = w.launch("alice", "shiny").await;
    assert!(w.manager.stop(&view.id, StopReason::User).await);
    free_seats(&w, "shiny", 1, Duration::from_secs(10)).await;
    let now = w.backend.running();
    assert_eq!(now.len(), 1);
    assert_ne!(now, first, "alice's container was removed, not reused");
    assert_eq!(w.backend.stops_of(&first[0]), 1);

    // The free container dies: its seat is not handed out, and a new one takes its place.
    let dead = w
        .manager
        .routes()
        .get(&now[0])
        .map(|r| r.target)
        .expect("its address");
    w.backend.crash(&now[0], "was killed by signal 9");
    sleep(Duration::from_millis(1500)).await;
    let bob = w.launch("bob", "shiny").await;
    let bob = w
        .until(&bob.id, InstanceStatus::Running, Duration::from_secs(10))
        .await;
    let route = w.manager.routes().get(&bob.id).expect("routed");
    assert_ne!(route.target, dead, "not routed to the dead container");
}
