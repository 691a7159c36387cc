//! The instance manager: the only writer of instance state. Launch → wait until ready →
//! running → stopping → gone, or failed with a reason and the app's last log lines.

mod culler;
mod lease;
mod pool;
mod readiness;
mod registry;
mod resolve;
mod seats;
mod sync;
#[cfg(test)]
mod tests;
mod view;

pub use pool::Members as PoolMembers;
pub use readiness::{HttpProbe, Probe};
pub use seats::Counts as SeatCounts;
pub use view::{DEFAULT_INSTANCE, InstanceStatus, InstanceView};

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

use lease::Lease;
use registry::{Record, Refused, Registry};

use crate::auth::Identity;
use crate::backend::{Backend, Health, LaunchRequest, Stage};
use crate::clock::Instant;
use crate::config::{AppSpec, Config};
use crate::observe::Metrics;
use crate::proxy::headers::AppHeaders;
use crate::proxy::pool::PoolTable;
use crate::proxy::{Route, RouteTable};
use crate::store::Store;

/// How long a recovered instance gets to answer before the server starts serving; one that
/// needs longer is waited for in the background.
const ADOPTION_QUICK_CHECK: std::time::Duration = std::time::Duration::from_secs(2);
/// How many of the app's log lines a failed launch shows.
const FAILURE_LOG_LINES: usize = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error("there is no app '{0}'")]
    UnknownApp(String),
    #[error("you may not open app '{0}'")]
    Forbidden(String),
    #[error("{0}")]
    LimitReached(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A pool's instances are shared: there is none to start for one user.
    #[error("app '{0}' is shared by its users; open it at /app_direct/{0}/")]
    Shared(String),
    /// The shared state store cannot be reached, so limits cannot be checked.
    #[error("apps cannot be started just now: {0}")]
    StoreUnavailable(String),
    /// The request's parameter values are missing or not allowed for this user.
    #[error("{0}")]
    Parameters(String),
    /// ShinyProxy's refusal of a second instance under one name.
    #[error("You already have an instance of this app with the name '{0}'")]
    NameTaken(String),
    /// An expression in the app's settings could not be filled in for this user.
    #[error("the app's settings cannot be filled in: {0}")]
    Settings(String),
}

/// An instance this replica runs (launched or adopted).
struct Entry {
    spec: AppSpec,
    created: Instant,
    view: watch::Sender<InstanceView>,
    address: Option<SocketAddr>,
    /// A pool member taken out of the rotation, finishing its requests before it stops.
    draining: bool,
    /// A user's seat in a shared container: no backend instance of its own.
    claim: bool,
}

impl Entry {
    fn new(spec: &AppSpec, view: InstanceView, address: Option<SocketAddr>) -> Self {
        Self {
            claim: spec.seats.is_some() && !view.user.is_empty(),
            spec: spec.clone(),
            created: Instant::now(),
            view: watch::Sender::new(view),
            address,
            draining: false,
        }
    }
}

/// Why an instance is stopped: said in the log and counted in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    User,
    Admin,
    Api,
    Idle,
    MaxLifetime,
    Logout,
    Shutdown,
    /// A pool had more instances than its load needs.
    ScaledDown,
    /// A config reload removed its app, with `proxy.reload.stop-removed-apps`.
    AppRemoved,
}

impl StopReason {
    pub fn label(self) -> &'static str {
        match self {
            StopReason::User => "user",
            StopReason::Admin => "admin",
            StopReason::Api => "api",
            StopReason::Idle => "idle",
            StopReason::MaxLifetime => "max_lifetime",
            StopReason::Logout => "logout",
            StopReason::Shutdown => "shutdown",
            StopReason::AppRemoved => "app_removed",
            StopReason::ScaledDown => "scaled_down",
        }
    }

    fn from_label(label: &str) -> Self {
        match label {
            "user" => StopReason::User,
            "admin" => StopReason::Admin,
            "idle" => StopReason::Idle,
            "max_lifetime" => StopReason::MaxLifetime,
            "logout" => StopReason::Logout,
            "shutdown" => StopReason::Shutdown,
            "scaled_down" => StopReason::ScaledDown,
            "app_removed" => StopReason::AppRemoved,
            _ => StopReason::Api,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            StopReason::User => "stopped by its user",
            StopReason::Admin => "stopped by an administrator",
            StopReason::Api => "stopped through the API",
            StopReason::Idle => "idle (heartbeat-timeout)",
            StopReason::MaxLifetime => "max-lifetime reached",
            StopReason::Logout => "its user logged out",
            StopReason::Shutdown => "the server is shutting down",
            StopReason::AppRemoved => "its app was removed from the config",
            StopReason::ScaledDown => "its pool needs fewer instances",
        }
    }
}

pub struct Manager {
    /// Replaced whole by a config reload: each reader sees one consistent version.
    config: arc_swap::ArcSwap<Config>,
    backend: Arc<dyn Backend>,
    probe: Arc<dyn Probe>,
    metrics: Arc<Metrics>,
    routes: Arc<RouteTable>,
    /// The shared instances of apps with a `pool`, which the data path balances over.
    pools: Arc<PoolTable>,
    /// Starts in a row that failed, per pool or seat app: the scaler backs off.
    pool_failures: Mutex<HashMap<String, u32>>,
    /// The seats of apps with `minimum-seats-available`.
    seats: HashMap<String, Arc<seats::Seats>>,
    /// The instances this replica runs.
    entries: Mutex<HashMap<String, Entry>>,
    /// Every replica's instances, in the shared store.
    registry: Registry,
    lease: Lease,
    accepting: std::sync::atomic::AtomicBool,
    /// `container-log-path`: where each instance's output is kept.
    log_archive: std::sync::OnceLock<crate::backend::log_file::LogArchive>,
}

impl Manager {
    pub fn new(config: Arc<Config>, backend: Arc<dyn Backend>, store: Arc<dyn Store>) -> Arc<Self> {
        Self::with_probe(config, backend, Arc::new(HttpProbe::default()), store)
    }

    /// A manager that asks `probe` whether a started app is ready (tests use a fake).
    pub fn with_probe(
        config: Arc<Config>,
        backend: Arc<dyn Backend>,
        probe: Arc<dyn Probe>,
        store: Arc<dyn Store>,
    ) -> Arc<Self> {
        let pools = PoolTable::new(
            config
                .proxy
                .specs
                .iter()
                .filter_map(|s| Some((s.id.as_str(), s.pool.as_ref()?))),
        );
        let seats = config
            .proxy
            .specs
            .iter()
            .filter_map(|s| {
                let settings = s.seats.clone()?;
                Some((s.id.clone(), Arc::new(seats::Seats::new(settings))))
            })
            .collect();
        Arc::new(Self {
            seats,
            pools: Arc::new(pools),
            pool_failures: Mutex::new(HashMap::new()),
            config: arc_swap::ArcSwap::new(config),
            backend,
            probe,
            metrics: Arc::new(Metrics::new()),
            routes: Arc::new(RouteTable::default()),
            entries: Mutex::new(HashMap::new()),
            registry: Registry::new(store),
            lease: Lease::default(),
            accepting: std::sync::atomic::AtomicBool::new(true),
            log_archive: std::sync::OnceLock::new(),
        })
    }

    /// This replica's name in the shared store.
    pub fn replica(&self) -> &str {
        &self.registry.replica
    }

    /// Whether other replicas may run instances. Without a shared store every instance is in
    /// `entries`, and the registry holds nothing more to read.
    fn has_peers(&self) -> bool {
        self.registry.store().is_shared()
    }

    /// Whether this replica runs the global tasks (always, with one replica).
    pub fn is_leader(&self) -> bool {
        self.lease.is_held()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Keeps every instance started from now on in `archive` (`container-log-path`); only the
    /// first call counts.
    pub fn keep_logs(&self, archive: crate::backend::log_file::LogArchive) {
        let _ = self.log_archive.set(archive);
    }

    /// Waits (at most `limit`) for the kept logs of ended instances to be written.
    pub async fn settle_logs(&self, limit: std::time::Duration) {
        if let Some(archive) = self.log_archive.get() {
            archive.settle(limit).await;
        }
    }

    /// The live log of an instance this replica runs.
    pub fn log_of(&self, id: &str) -> Option<Arc<crate::backend::LogBuffer>> {
        self.backend.log(id)
    }

    /// What an instance this replica runs uses of CPU and memory, if its backend can tell.
    pub async fn usage_of(&self, id: &str) -> Option<crate::backend::ResourceUsage> {
        self.backend.usage(id).await
    }

    /// The metrics text, with the instance gauges counted now.
    pub fn render_metrics(&self) -> String {
        let mut counts: HashMap<(String, String), i64> = HashMap::new();
        let mut users = std::collections::HashSet::new();
        for e in self.entries.lock().values() {
            let view = e.view.borrow();
            // Pool members and shared containers have no user of their own.
            if view.status.counts_against_limits() && !view.user.is_empty() {
                users.insert(view.user.clone());
            }
            let status = view.status.name().to_string();
            *counts.entry((e.spec.id.clone(), status)).or_default() += 1;
        }
        self.metrics.set_active_users(users.len() as i64);
        self.metrics.set_pools(&self.pool_gauges());
        for (app, c) in self.seat_counts() {
            self.metrics.set_seats(
                &app,
                i64::from(c.free),
                i64::from(c.claimed),
                i64::from(c.starting),
                i64::from(c.waiting),
            );
        }
        self.metrics.render(counts)
    }

    /// Each pool as its gauges show it (the metrics and the admin page).
    pub fn pool_gauges(&self) -> Vec<crate::observe::PoolGauges> {
        let mut gauges: Vec<crate::observe::PoolGauges> = self
            .pools
            .all()
            .map(|pool| {
                let m = self.pool_members(&pool.spec_id);
                let w = pool.wait_stats();
                crate::observe::PoolGauges {
                    app: pool.spec_id.clone(),
                    starting: i64::from(m.starting),
                    ready: i64::from(m.ready),
                    draining: i64::from(m.draining),
                    in_flight: pool.members().iter().map(|r| r.in_flight() as i64).sum(),
                    queued: pool.queued() as i64,
                    held: w.count,
                    held_seconds: w.total_secs,
                    refused: w.refused,
                }
            })
            .collect();
        gauges.sort_by(|a, b| a.app.cmp(&b.app));
        gauges
    }

    /// ShinyProxy's `DELETE /admin/delegate-proxy`: retires seat containers (of one app, or
    /// one container, or all), which are replaced as their users leave. Returns how many.
    pub fn retire_seat_containers(&self, app: Option<&str>, container: Option<&str>) -> usize {
        let mut n = 0;
        for (id, seats) in &self.seats {
            if app.is_none_or(|a| a == id) {
                n += seats.bank.lock().retire(container);
                seats.poke.notify_one();
            }
        }
        n
    }

    /// Each seat app's seats, by app id.
    pub fn seat_counts(&self) -> Vec<(String, SeatCounts)> {
        let mut counts: Vec<(String, SeatCounts)> = self
            .seats
            .iter()
            .map(|(app, s)| (app.clone(), s.bank.lock().counts()))
            .collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        counts
    }

    pub fn routes(&self) -> &Arc<RouteTable> {
        &self.routes
    }

    pub fn pools(&self) -> &Arc<PoolTable> {
        &self.pools
    }

    /// The config in effect now (a reload may replace it for the next caller).
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// Puts a reloaded config in effect: new launches, the portal and access checks use it;
    /// running instances keep the spec they were started with.
    pub fn replace_config(&self, config: Arc<Config>) {
        self.config.store(config);
    }

    /// Starts a new instance of `spec_id` for `who`, subject to access rules and limits. Returns
    /// at once; the launch goes on in the background and its progress is seen through
    /// [`Manager::watch`].
    pub async fn launch(
        self: &Arc<Self>,
        who: &Identity,
        spec_id: &str,
    ) -> Result<InstanceView, LaunchError> {
        self.launch_with(who, spec_id, LaunchOptions::default())
            .await
    }

    /// [`Manager::launch`], with what the request adds: variables from the user's login and
    /// the host it came through.
    pub async fn launch_with(
        self: &Arc<Self>,
        who: &Identity,
        spec_id: &str,
        options: LaunchOptions,
    ) -> Result<InstanceView, LaunchError> {
        if !self.accepting.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(LaunchError::ShuttingDown);
        }
        let spec = self
            .config()
            .proxy
            .spec(spec_id)
            .ok_or_else(|| LaunchError::UnknownApp(spec_id.to_string()))?
            .clone();
        if !crate::auth::access::may_open(who, &spec, options.server_name.as_deref()) {
            return Err(LaunchError::Forbidden(spec_id.to_string()));
        }
        if spec.pool.is_some() {
            return Err(LaunchError::Shared(spec_id.to_string()));
        }
        // A start without a name (ShinyProxy's POST /api/proxy) makes another unnamed one, as
        // there; only a named start must not take a name in use.
        let named = options.instance_name.is_some();
        let name = options
            .instance_name
            .unwrap_or_else(|| DEFAULT_INSTANCE.to_string());
        // A failed one under the name is over: it may be started again. With one instance
        // allowed, the limit's own refusal says more ("stop one first").
        if named
            && spec.max_instances != Some(1)
            && self
                .current_for(&who.user, spec_id, &name)
                .await
                .is_some_and(|v| !v.status.is_final())
        {
            return Err(LaunchError::NameTaken(name));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let public_path = format!("{}/app_proxy/{id}/", self.config().server.context_path);
        let mut runtime = runtime_values(who, &id, &public_path, &spec);
        runtime.insert("SHINYPROXY_APP_INSTANCE".into(), name.clone());
        runtime.extend(options.login_env);
        let chosen = match &spec.parameters {
            Some(p) => {
                let subject = crate::config::access::Subject {
                    user: &who.user,
                    groups: &who.groups,
                    server_name: options.server_name.as_deref(),
                };
                Some(
                    p.choose(options.parameters.as_ref(), &subject)
                        .map_err(LaunchError::Parameters)?,
                )
            }
            None => None,
        };
        let mut spec = spec;
        resolve::launch_settings(&mut spec, &who.user, &runtime, chosen.as_ref())
            .map_err(LaunchError::Settings)?;
        let mut env = spec.container_env.clone();
        env.extend(runtime);
        let mut view = InstanceView::starting(&id, &spec, &who.user, &public_path);
        view.instance_name = name;
        view.parameters = chosen.map(|c| c.names).unwrap_or_default();
        self.register(&view, &spec, spec.max_instances).await?;
        if let Some(seats) = self.seats.get(&spec.id).cloned() {
            return Ok(self.take_seat(&seats, &id, spec, env, view).await);
        }
        self.start_in_background(&id, &who.user, env, spec);
        Ok(view)
    }

    /// A launch of an app with seats: a free seat at once, or a place in the queue for the next
    /// one, for at most `seat-wait-time`.
    async fn take_seat(
        self: &Arc<Self>,
        seats: &Arc<seats::Seats>,
        id: &str,
        spec: AppSpec,
        env: BTreeMap<String, String>,
        view: InstanceView,
    ) -> InstanceView {
        let began = Instant::now();
        let free = {
            let mut bank = seats.bank.lock();
            bank.claim(id).ok_or_else(|| bank.wait(id))
        };
        match free {
            Ok(seat) => {
                self.seated(id, &spec, &env, seat, began).await;
                return self.get_local(id).unwrap_or(view);
            }
            Err(waiting) => {
                seats.poke.notify_one();
                let me = self.clone();
                let seats = seats.clone();
                let id = id.to_string();
                tokio::spawn(async move {
                    let wait = me.config().proxy.seat_wait_time;
                    match tokio::time::timeout(wait, waiting).await {
                        Ok(Ok(seat)) => me.seated(&id, &spec, &env, seat, began).await,
                        _ => {
                            seats.bank.lock().stop_waiting(&id);
                            let reason = format!(
                                "no seat of app '{}' became free within {} s",
                                spec.display_name,
                                wait.as_secs()
                            );
                            me.fail(&id, &spec.id, reason).await;
                        }
                    }
                });
            }
        }
        view
    }

    /// Routes a claim to its seat's container; gives the seat back if the claim was stopped
    /// while it waited.
    async fn seated(
        self: &Arc<Self>,
        id: &str,
        spec: &AppSpec,
        env: &BTreeMap<String, String>,
        seat: seats::Seat,
        began: Instant,
    ) {
        let record = {
            let mut entries = self.entries.lock();
            match entries.get_mut(id) {
                Some(e) if e.view.borrow().status == InstanceStatus::Starting => {
                    e.address = Some(seat.address);
                    let owner = e.view.borrow().user.clone();
                    let headers = AppHeaders::for_instance(spec, &owner, env);
                    self.routes.insert(Route::new(
                        id.to_string(),
                        owner,
                        spec.id.clone(),
                        seat.address,
                        &spec.target_path,
                        headers,
                    ));
                    e.view.send_modify(|v| v.set_running());
                    Some(Record {
                        view: e.view.borrow().clone(),
                        address: e.address,
                        replica: self.registry.replica.clone(),
                    })
                }
                _ => None,
            }
        };
        match record {
            Some(record) => {
                if let Err(e) = self.registry.put(&record).await {
                    tracing::warn!(instance = %id, error = %e, "the other replicas could not be told an instance runs");
                }
                self.metrics.launch_started(id, &spec.id, began.elapsed());
                tracing::info!(instance = %id, app = %spec.id, container = %seat.delegate, "seat claimed");
            }
            None => self.release_seat(&spec.id, id).await,
        }
    }

    /// Gives a claim's seat back, and stops its container when it is no longer needed.
    async fn release_seat(&self, spec_id: &str, claim: &str) {
        let Some(seats) = self.seats.get(spec_id) else {
            return;
        };
        let finished = seats.bank.lock().release(claim);
        seats.poke.notify_one();
        if let Some(container) = finished {
            tracing::info!(container = %container, app = %spec_id, "a container for seats is no longer needed");
            Box::pin(self.stop_local(&container, StopReason::ScaledDown)).await;
        }
    }

    /// Takes a new instance's place under the limits (per user, and the server's total), records
    /// it for the other replicas, and starts tracking it.
    async fn register(
        &self,
        view: &InstanceView,
        spec: &AppSpec,
        per_user: Option<u32>,
    ) -> Result<(), LaunchError> {
        let unavailable =
            |e: crate::store::StoreError| LaunchError::StoreUnavailable(e.to_string());
        let total = self.config().proxy.max_total_instances;
        let limits = registry::Limits {
            per_user: per_user.map(u64::from),
            per_app: spec.max_total_instances.map(u64::from),
            total: total.map(u64::from),
        };
        let admitted = match self
            .registry
            .admit(&view.id, &view.user, &spec.id, limits)
            .await
        {
            Ok(admitted) => admitted,
            Err(e) => {
                // A call that timed out may still have run in the store: give the place back,
                // or the user's retry is refused by their own invisible instance and the
                // server's limit shrinks by one (freeing a place never taken is harmless).
                let _ = self.registry.release(&view.id, &view.user, &spec.id).await;
                return Err(unavailable(e));
            }
        };
        match admitted {
            Ok(()) => {}
            Err(Refused::PerUser) => {
                return Err(LaunchError::LimitReached(format!(
                    "you already run {} instance(s) of '{}', the most allowed; stop one first",
                    per_user.unwrap_or(0),
                    spec.display_name
                )));
            }
            Err(Refused::PerApp) => {
                return Err(LaunchError::LimitReached(format!(
                    "'{}' runs {} instance(s) for all its users, the most allowed; try again later",
                    spec.display_name,
                    spec.max_total_instances.unwrap_or(0)
                )));
            }
            Err(Refused::Total) => {
                return Err(LaunchError::LimitReached(format!(
                    "the server runs {} apps, its limit; try again later",
                    total.unwrap_or(0)
                )));
            }
        }
        let record = Record {
            view: view.clone(),
            address: None,
            replica: self.registry.replica.clone(),
        };
        if let Err(e) = self.registry.put(&record).await {
            let _ = self.registry.release(&view.id, &view.user, &spec.id).await;
            return Err(unavailable(e));
        }
        self.entries
            .lock()
            .insert(view.id.clone(), Entry::new(spec, view.clone(), None));
        Ok(())
    }

    /// Starts one more shared instance of a pool. It belongs to no user, and is routed to only
    /// through its pool.
    pub async fn launch_member(self: &Arc<Self>, spec: &AppSpec) -> Result<String, LaunchError> {
        if !self.accepting.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(LaunchError::ShuttingDown);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let public_path = format!(
            "{}/app_direct/{}/",
            self.config().server.context_path,
            spec.id
        );
        let view = InstanceView::starting(&id, spec, "", &public_path);
        self.register(&view, spec, None).await?;
        let mut env = spec.container_env.clone();
        for prefix in ["SHINYPROXY", "VESTIBULE"] {
            env.insert(format!("{prefix}_PUBLIC_PATH"), public_path.clone());
            env.insert(format!("{prefix}_PROXY_ID"), id.clone());
        }
        if let Some(seats) = self.seats.get(&spec.id) {
            seats.bank.lock().starting(&id);
        }
        self.start_in_background(&id, "", env, spec.clone());
        Ok(id)
    }

    fn start_in_background(
        self: &Arc<Self>,
        id: &str,
        owner: &str,
        env: BTreeMap<String, String>,
        spec: AppSpec,
    ) {
        let weak = Arc::downgrade(self);
        let stage_id = id.to_string();
        let id = id.to_string();
        let request = LaunchRequest {
            owner: owner.to_string(),
            progress: crate::backend::Progress::new(move |stage| {
                if let Some(me) = weak.upgrade() {
                    me.update(&stage_id, |v| v.set_stage(stage));
                }
            }),
            instance_id: id.clone(),
            env,
            spec,
        };
        let me = self.clone();
        tokio::spawn(async move { me.run_launch(request).await });
    }

    async fn run_launch(self: Arc<Self>, req: LaunchRequest) {
        let began = Instant::now();
        let id = req.instance_id.clone();
        self.update(&id, |v| v.set_stage(Stage::Starting));
        // Backends that know finer stages (a pod being scheduled, its image pulled) report them
        // through the request's `progress`.
        let started = self.backend.start(&req).await;
        // Kept from the first line, failed launches too: their output says why.
        if let (Some(archive), Some(log)) = (self.log_archive.get(), self.backend.log(&id)) {
            archive.keep(&id, &req.spec.id, &log);
        }
        let started = match started {
            Ok(s) => s,
            Err(e) => return self.fail(&id, &req.spec.id, e.to_string()).await,
        };
        self.update(&id, |v| v.set_stage(Stage::WaitingForApp));
        let wait = self.config().proxy.container_wait_time;
        let ready = self
            .wait_until_ready(&id, started.address, &req.spec.target_path, wait)
            .await;
        if let Err(not_ready) = ready {
            let reason = match not_ready {
                readiness::NotReady::Exited(how) => {
                    format!("app '{}' {how} before it answered", req.spec.display_name)
                }
                readiness::NotReady::TimedOut(last) => format!(
                    "app '{}' did not answer on {} within {} s ({last})",
                    req.spec.display_name,
                    started.address,
                    wait.as_secs()
                ),
            };
            return self.fail(&id, &req.spec.id, reason).await;
        }
        if let Err(why) = self.backend.check_listener(&id).await {
            let reason = format!(
                "app '{}' cannot be reached safely: {why}",
                req.spec.display_name
            );
            return self.fail(&id, &req.spec.id, reason).await;
        }
        let still_wanted = {
            let mut entries = self.entries.lock();
            match entries.get_mut(&id) {
                Some(e) if e.view.borrow().status == InstanceStatus::Starting => {
                    e.address = Some(started.address);
                    let owner = e.view.borrow().user.clone();
                    let mut headers = AppHeaders::for_instance(&req.spec, &owner, &req.env);
                    headers.add(self.backend.instance_headers(&id));
                    let route = self.routes.insert(Route::new(
                        id.clone(),
                        owner,
                        req.spec.id.clone(),
                        started.address,
                        &req.spec.target_path,
                        headers,
                    ));
                    self.pool_failures.lock().remove(&req.spec.id);
                    if let Some(pool) = self.pools.get(&req.spec.id) {
                        pool.add(route);
                    }
                    let mut running = e.view.borrow().clone();
                    running.set_running();
                    Some(Record {
                        view: running,
                        address: e.address,
                        replica: self.registry.replica.clone(),
                    })
                }
                _ => None,
            }
        };
        if still_wanted.is_some()
            && let Some(seats) = self.seats.get(&req.spec.id)
        {
            let served = seats.bank.lock().ready(&id, started.address);
            for (claim, tx, seat) in served {
                if tx.send(seat).is_err() {
                    self.release_seat(&req.spec.id, &claim).await;
                }
            }
        }
        if let Some(record) = still_wanted {
            // The other replicas learn it runs before the user does, so a user whose next
            // request goes to another replica finds it running there too.
            if let Err(e) = self.registry.put(&record).await {
                tracing::warn!(instance = %id, error = %e, "the other replicas could not be told an instance runs");
            }
            self.update(&id, |v| {
                if v.status == InstanceStatus::Starting {
                    v.set_running()
                }
            });
            self.metrics
                .launch_started(&id, &req.spec.id, began.elapsed());
            tracing::info!(instance = %id, app = %req.spec.id, "app is ready");
        } else {
            // Stopped while it was starting.
            let _ = self.backend.stop(&id).await;
        }
    }

    async fn fail(&self, id: &str, app: &str, reason: String) {
        self.metrics.launch_failed(id, app);
        let lines = self.backend.last_log_lines(id, FAILURE_LOG_LINES);
        tracing::warn!(instance = %id, %reason, "launch failed");
        if let Some(pool) = self.pools.get(app) {
            pool.remove(id);
            pool.start_failed(&reason);
        }
        let (member, claim) = self
            .entries
            .lock()
            .get(id)
            .map(|e| (e.view.borrow().user.is_empty(), e.claim))
            .unwrap_or_default();
        if member {
            *self
                .pool_failures
                .lock()
                .entry(app.to_string())
                .or_default() += 1;
            if let Some(seats) = self.seats.get(app) {
                seats.bank.lock().gone(id);
            }
        }
        self.routes.remove(id);
        self.update(id, |v| v.set_failed(reason, lines));
        // A failure shows on the user's list for a while, but takes no place under the limits.
        if let Some(view) = self.get_local(id) {
            let _ = self.registry.release(id, &view.user, &view.spec_id).await;
        }
        self.publish(id).await;
        if claim {
            return;
        }
        if let Err(e) = self.backend.stop(id).await {
            tracing::warn!(instance = %id, error = %e, "cleaning up a failed instance");
        }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut InstanceView)) {
        if let Some(e) = self.entries.lock().get(id) {
            e.view.send_modify(change);
        }
    }

    /// Writes a local instance's state to the shared registry, for the other replicas.
    async fn publish(&self, id: &str) {
        let record = self.entries.lock().get(id).map(|e| Record {
            view: e.view.borrow().clone(),
            address: e.address,
            replica: self.registry.replica.clone(),
        });
        if let Some(record) = record
            && let Err(e) = self.registry.put(&record).await
        {
            // The periodic sync writes it again once the store is back.
            tracing::warn!(instance = %id, error = %e, "the other replicas could not be told of an instance");
        }
    }

    /// Stops an instance, on whichever replica runs it, and forgets it. Returns false when there
    /// was nothing to stop.
    pub async fn stop(&self, id: &str, why: StopReason) -> bool {
        if self.entries.lock().contains_key(id) {
            return self.stop_local(id, why).await;
        }
        if !self.has_peers() {
            return false;
        }
        let record = match self.registry.get(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot stop an instance of another replica");
                return false;
            }
        };
        let alive = Lease::alive(&self.registry).await.unwrap_or_default();
        if alive.contains(&record.replica) {
            tracing::info!(instance = %id, replica = %record.replica, reason = why.describe(), "asking the replica that runs it to stop it");
            return self
                .registry
                .request_stop(&record.replica, id, why.label())
                .await
                .is_ok();
        }
        // Its replica is gone: whoever is asked finishes the job.
        self.routes.remove(id);
        self.metrics.stopped(id, &record.view.spec_id, why.label());
        tracing::info!(instance = %id, replica = %record.replica, reason = why.describe(), "stopping an instance whose replica is gone");
        if let Err(e) = self.backend.stop(id).await {
            tracing::warn!(instance = %id, error = %e, "stop");
        }
        let _ = self.registry.remove(&record.view).await;
        true
    }

    async fn stop_local(&self, id: &str, why: StopReason) -> bool {
        let found = {
            let entries = self.entries.lock();
            entries.get(id).map(|e| {
                e.view.send_modify(|v| v.set_stopping());
                (e.spec.id.clone(), e.claim)
            })
        };
        let Some((app, claim)) = found else {
            return false;
        };
        if let Some(pool) = self.pools.get(&app) {
            pool.remove(id);
        }
        self.routes.remove(id);
        self.metrics.stopped(id, &app, why.label());
        tracing::info!(instance = %id, %app, reason = why.describe(), "stopping app");
        if claim {
            self.release_seat(&app, id).await;
        } else if let Err(e) = self.backend.stop(id).await {
            tracing::warn!(instance = %id, error = %e, "stop");
        }
        let gone = self.entries.lock().remove(id).map(|e| {
            e.view.send_modify(|v| v.set_stopped());
            e.view.borrow().clone()
        });
        if let Some(view) = gone
            && let Err(e) = self.registry.remove(&view).await
        {
            tracing::warn!(instance = %id, error = %e, "the other replicas could not be told an instance stopped");
        }
        true
    }

    /// One of this replica's running instances ended on its own: it shows as failed, with how
    /// and its last lines, and frees its place.
    async fn crashed(&self, id: &str, how: &str) {
        let app = {
            let entries = self.entries.lock();
            match entries.get(id) {
                Some(e) if e.view.borrow().status == InstanceStatus::Running => e.spec.id.clone(),
                // Being stopped, or already failed: not a crash.
                _ => return,
            }
        };
        self.metrics.stopped(id, &app, "crashed");
        let lines = self.backend.last_log_lines(id, FAILURE_LOG_LINES);
        tracing::warn!(instance = %id, %app, how, "the app stopped unexpectedly");
        if let Some(pool) = self.pools.get(&app) {
            pool.remove(id);
        }
        let claims = self
            .seats
            .get(&app)
            .map(|s| s.bank.lock().gone(id))
            .unwrap_or_default();
        for claim in claims {
            self.routes.remove(&claim);
            let reason = format!("the app stopped unexpectedly: its shared container {how}");
            self.update(&claim, |v| v.set_failed(reason, lines.clone()));
            if let Some(view) = self.get_local(&claim) {
                let _ = self
                    .registry
                    .release(&claim, &view.user, &view.spec_id)
                    .await;
            }
            self.publish(&claim).await;
        }
        self.routes.remove(id);
        self.update(id, |v| {
            v.set_failed(format!("the app stopped unexpectedly: it {how}"), lines)
        });
        if let Some(view) = self.get_local(id) {
            let _ = self.registry.release(id, &view.user, &view.spec_id).await;
        }
        self.publish(id).await;
        let _ = self.backend.stop(id).await;
    }

    /// The last lines an instance wrote, as a failure page shows them.
    pub fn recent_log(&self, id: &str) -> Vec<String> {
        self.backend.last_log_lines(id, FAILURE_LOG_LINES)
    }

    fn get_local(&self, id: &str) -> Option<InstanceView> {
        self.entries.lock().get(id).map(|e| self.snapshot(e))
    }

    /// The instance, wherever it runs.
    pub async fn get(&self, id: &str) -> Option<InstanceView> {
        if let Some(view) = self.get_local(id) {
            return Some(view);
        }
        if !self.has_peers() {
            return None;
        }
        let record = self.registry.get(id).await.ok().flatten()?;
        Some(self.remote_view(record))
    }

    fn remote_view(&self, record: Record) -> InstanceView {
        let mut v = record.view;
        v.age_secs = crate::clock::now_unix_ms().saturating_sub(v.created_unix_ms) / 1000;
        v.idle_secs = self.routes.get(&v.id).map(|r| r.idle_for().as_secs());
        v
    }

    /// Where the data path sends requests for `id`: this replica's route, or, for an instance
    /// another replica started, a route made from the shared registry once and kept.
    pub async fn route(&self, id: &str) -> Option<Arc<Route>> {
        if let Some(route) = self.routes.get(id) {
            return Some(route);
        }
        if !self.has_peers() || self.entries.lock().contains_key(id) {
            return None;
        }
        let record = self.registry.get(id).await.ok().flatten()?;
        let (InstanceStatus::Running, Some(address)) = (record.view.status, record.address) else {
            return None;
        };
        let config = self.config();
        let spec = config.proxy.spec(&record.view.spec_id)?;
        // The launch's runtime values stay with the replica that launched it; only the user
        // can be filled in again.
        let headers = AppHeaders::for_instance(spec, &record.view.user, &BTreeMap::new());
        self.routes.insert(Route::new(
            id.to_string(),
            record.view.user.clone(),
            spec.id.clone(),
            address,
            &spec.target_path,
            headers,
        ));
        self.routes.get(id)
    }

    pub fn watch(&self, id: &str) -> Option<watch::Receiver<InstanceView>> {
        self.entries.lock().get(id).map(|e| e.view.subscribe())
    }

    /// The instance once its start is over (up or failed), or as it is when a start would have
    /// timed out: what a caller that answers only after the start waits for.
    pub async fn settled(&self, view: InstanceView) -> InstanceView {
        let within = self.config().proxy.container_wait_time + std::time::Duration::from_secs(5);
        if let Some(mut rx) = self.watch(&view.id) {
            let _ = tokio::time::timeout(
                within,
                rx.wait_for(|v| v.status != InstanceStatus::Starting),
            )
            .await;
        }
        let id = view.id.clone();
        self.get(&id).await.unwrap_or(view)
    }

    /// The user's instances, or everyone's for `None`, on every replica; oldest first. While the
    /// store is unreachable, only this replica's.
    pub async fn list(&self, user: Option<&str>) -> Vec<InstanceView> {
        let others = if self.has_peers() {
            self.registry.all().await
        } else {
            Ok(Vec::new())
        };
        let mut views: HashMap<String, InstanceView> = match others {
            Ok(records) => records
                .into_iter()
                .filter(|r| user.is_none_or(|u| r.view.user == u))
                .map(|r| (r.view.id.clone(), self.remote_view(r)))
                .collect(),
            Err(_) => HashMap::new(),
        };
        {
            let entries = self.entries.lock();
            for e in entries.values() {
                if user.is_none_or(|u| e.view.borrow().user == u) {
                    let v = self.snapshot(e);
                    views.insert(v.id.clone(), v);
                }
            }
        }
        let mut views: Vec<InstanceView> = views.into_values().collect();
        views.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        views
    }

    /// The instance of `spec_id` named `name` that `user` would re-open: the newest one not
    /// stopping.
    pub async fn current_for(&self, user: &str, spec_id: &str, name: &str) -> Option<InstanceView> {
        self.list(Some(user)).await.into_iter().rev().find(|v| {
            v.spec_id == spec_id && v.instance_name == name && v.status != InstanceStatus::Stopping
        })
    }

    fn snapshot(&self, e: &Entry) -> InstanceView {
        let mut v = e.view.borrow().clone();
        v.age_secs = e.created.elapsed().as_secs();
        v.idle_secs = self.routes.get(&v.id).map(|r| r.idle_for().as_secs());
        if v.status == InstanceStatus::Starting {
            v.log_lines = self.backend.last_log_lines(&v.id, 5);
        }
        v
    }

    /// Stops the user's instances of apps with `stop-on-logout`, on every replica.
    pub async fn stop_on_logout(&self, user: &str) {
        let ids: Vec<String> = self
            .list(Some(user))
            .await
            .into_iter()
            .filter(|v| {
                self.config()
                    .proxy
                    .spec(&v.spec_id)
                    .is_some_and(|s| s.stop_on_logout)
            })
            .map(|v| v.id)
            .collect();
        for id in ids {
            self.stop(&id, StopReason::Logout).await;
        }
    }

    /// Takes over instances an earlier run (or a replica that died) left running. An instance
    /// whose app is no longer configured is stopped: nobody could be allowed to open it. An
    /// instance is routed only once its app answers: one killed mid-launch goes through the
    /// readiness wait again, and fails if it never answers.
    pub async fn adopt(self: &Arc<Self>, found: Vec<crate::backend::Recovered>) {
        let checks = found.into_iter().filter_map(|r| {
            let spec = self.config().proxy.spec(&r.spec_id).cloned();
            let Some(spec) = spec.filter(|s| s.pool.is_none() && s.seats.is_none()) else {
                // A pool's members hold nobody's work, and the pool starts what it needs.
                tracing::warn!(instance = %r.instance_id, app = %r.spec_id, "stopping a recovered instance of an app no longer configured, or of a pool");
                let backend = self.backend.clone();
                tokio::spawn(async move { backend.stop(&r.instance_id).await });
                return None;
            };
            Some(self.adopt_one(r, spec))
        });
        futures_util::future::join_all(checks).await;
    }

    async fn adopt_one(self: &Arc<Self>, r: crate::backend::Recovered, spec: AppSpec) {
        if self
            .backend
            .spec_hash(&spec)
            .is_some_and(|h| h != r.spec_hash)
        {
            tracing::info!(instance = %r.instance_id, app = %spec.id, "recovered instance was started with other app settings; keeping it");
        }
        let id = r.instance_id.clone();
        let public_path = format!("{}/app_proxy/{id}/", self.config().server.context_path);
        let mut view = InstanceView::starting(&id, &spec, &r.user, &public_path);
        view.set_stage(Stage::WaitingForApp);
        if r.created_unix_ms > 0 {
            view.created_unix_ms = r.created_unix_ms;
        }
        // It takes its place under the limits, whatever they are now.
        let _ = self
            .registry
            .admit(&id, &r.user, &spec.id, registry::Limits::default())
            .await;
        self.entries
            .lock()
            .insert(id.clone(), Entry::new(&spec, view, Some(r.address)));
        self.publish(&id).await;
        // A running app answers at once; one that does not gets the launch's full wait, in the
        // background, so a start with many instances is not held up by one.
        if self.answers(&r, &spec, ADOPTION_QUICK_CHECK).await {
            self.route_adopted(&r, &spec).await;
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let wait = me.config().proxy.container_wait_time;
            if me.answers(&r, &spec, wait).await {
                me.route_adopted(&r, &spec).await;
            } else {
                let reason = format!(
                    "app '{}' was found again after a restart but did not answer on {} within {} s",
                    spec.display_name,
                    r.address,
                    wait.as_secs()
                );
                me.fail(&r.instance_id, &spec.id, reason).await;
            }
        });
    }

    async fn answers(
        &self,
        r: &crate::backend::Recovered,
        spec: &AppSpec,
        within: std::time::Duration,
    ) -> bool {
        self.wait_until_ready(&r.instance_id, r.address, &spec.target_path, within)
            .await
            .is_ok()
    }

    /// Waits until the app at `address` answers, giving up when it exits or `within` passes.
    async fn wait_until_ready(
        &self,
        id: &str,
        address: SocketAddr,
        target_path: &str,
        within: std::time::Duration,
    ) -> Result<(), readiness::NotReady> {
        let backend = self.backend.clone();
        let headers = backend.instance_headers(id);
        let target = readiness::ProbeTarget {
            address,
            path: target_path,
            headers: &headers,
        };
        readiness::wait_until_ready(
            self.probe.as_ref(),
            &target,
            Instant::now() + within,
            || {
                let backend = backend.clone();
                let id = id.to_string();
                async move {
                    match backend.health(&id).await {
                        Health::Exited(how) => Some(how),
                        _ => None,
                    }
                }
            },
        )
        .await
    }

    async fn route_adopted(&self, r: &crate::backend::Recovered, spec: &AppSpec) {
        // The launch's runtime values are gone; only the user can be filled in again.
        let headers = AppHeaders::for_instance(spec, &r.user, &BTreeMap::new());
        self.routes.insert(Route::new(
            r.instance_id.clone(),
            r.user.clone(),
            spec.id.clone(),
            r.address,
            &spec.target_path,
            headers,
        ));
        self.update(&r.instance_id, |v| v.set_running());
        self.publish(&r.instance_id).await;
        tracing::info!(instance = %r.instance_id, app = %spec.id, user = %r.user, "recovered a running instance");
    }

    /// From now on every launch is refused (the server is draining).
    pub fn refuse_launches(&self) {
        self.accepting
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Refuses new launches and, with `stop-proxies-on-shutdown`, stops this replica's
    /// instances, unless other replicas are alive to take over instances that outlive this
    /// process (containers and pods): then they are left to them.
    pub async fn shutdown(&self) {
        self.refuse_launches();
        self.lease.release(&self.registry).await;
        if !self.config().proxy.stop_proxies_on_shutdown {
            return;
        }
        // Pool members and seat containers hold nobody's work: they go with the replica that
        // scaled them.
        let members: Vec<String> = self
            .entries
            .lock()
            .iter()
            .filter(|(_, e)| e.view.borrow().user.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        futures_util::future::join_all(
            members
                .iter()
                .map(|id| self.stop_local(id, StopReason::Shutdown)),
        )
        .await;
        let ids: Vec<String> = self.entries.lock().keys().cloned().collect();
        if !ids.is_empty() && self.backend.outlives_server() && self.has_peers() {
            let others = Lease::alive(&self.registry)
                .await
                .map(|alive| alive.len() > 1)
                .unwrap_or(false);
            if others {
                tracing::info!(
                    instances = ids.len(),
                    "leaving this replica's instances to the other replicas"
                );
                return;
            }
        }
        futures_util::future::join_all(
            ids.iter()
                .map(|id| self.stop_local(id, StopReason::Shutdown)),
        )
        .await;
    }

    /// Runs the periodic work until `stop` fires: crashes, idle and max lifetime (the culler),
    /// and keeping in step with the other replicas (the sync).
    pub fn spawn_culler(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let me = self.clone();
        let halt = stop.clone();
        tokio::spawn(async move { culler::run(me, halt).await });
        for spec in self.config().proxy.specs.iter() {
            let me = self.clone();
            let halt = stop.clone();
            let spec = spec.clone();
            if spec.pool.is_some() {
                tokio::spawn(async move { pool::run(me, spec, halt).await });
            } else if spec.seats.is_some() {
                tokio::spawn(async move { seats::run(me, spec, halt).await });
            }
        }
        if let Some(mut exits) = self.backend.exits() {
            let me = Arc::downgrade(self);
            let halt = stop.clone();
            tokio::spawn(async move {
                loop {
                    let exit = tokio::select! {
                        _ = halt.cancelled() => return,
                        exit = exits.recv() => exit,
                    };
                    let Some(me) = me.upgrade() else { return };
                    match exit {
                        Ok(exit) => me.crashed(&exit.instance_id, &exit.how).await,
                        // Missed reports are found by the culler's safety poll.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        sync::spawn(self.clone(), stop);
    }
}

/// What every instance learns about its user, under ShinyProxy's names and vestibule's twins.
/// What a launch request brings besides the user and the app.
#[derive(Debug, Default)]
pub struct LaunchOptions {
    /// Variables from the user's login (e.g. their OpenID Connect access token) added to the
    /// app's environment.
    pub login_env: BTreeMap<String, String>,
    /// The host the request came through, which access rules may read.
    pub server_name: Option<String>,
    /// The instance's name (`/app_i/<app>/<name>/`); `None` is the default instance, `_`.
    pub instance_name: Option<String>,
    /// The app's parameters as the request gives them (id → value or value name).
    pub parameters: Option<BTreeMap<String, String>>,
}

/// The values every instance is started with (ShinyProxy's runtime values), which its
/// settings' expressions may read and its environment receives.
fn runtime_values(
    who: &Identity,
    id: &str,
    public_path: &str,
    spec: &AppSpec,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("SHINYPROXY_SPEC_ID".to_string(), spec.id.clone()),
        (
            "SHINYPROXY_DISPLAY_NAME".to_string(),
            spec.display_name.clone(),
        ),
    ]);
    let groups = who.groups.join(",");
    for prefix in ["SHINYPROXY", "VESTIBULE"] {
        env.insert(format!("{prefix}_USERNAME"), who.user.clone());
        env.insert(format!("{prefix}_USERGROUPS"), groups.clone());
        env.insert(format!("{prefix}_PUBLIC_PATH"), public_path.to_string());
        env.insert(format!("{prefix}_PROXY_ID"), id.to_string());
    }
    env
}
