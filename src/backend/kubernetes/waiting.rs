//! Following a new pod until it is Ready, and turning what goes wrong on the way into a sentence
//! a user understands.

use crate::clock::Instant;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStateWaiting, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams, WatchEvent, WatchParams};
use std::time::Duration;

/// How far a pod has come, as the app page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Waiting,
    Scheduled,
    PullingImage,
    Starting,
    Ready,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Waiting => "waiting for a node",
            Stage::Scheduled => "scheduled",
            Stage::PullingImage => "pulling image",
            Stage::Starting => "starting",
            Stage::Ready => "ready",
        }
    }

    /// The stage as the app page shows it; readiness is lifecycle's to report.
    pub fn shown(self, image: &str) -> Option<crate::backend::Stage> {
        use crate::backend::Stage as Shown;
        match self {
            Stage::Waiting => Some(Shown::WaitingForNode),
            Stage::Scheduled => Some(Shown::Scheduled),
            Stage::PullingImage => Some(Shown::PullingImage {
                image: image.to_string(),
                percent: None,
            }),
            Stage::Starting => Some(Shown::StartingInstance("container")),
            Stage::Ready => None,
        }
    }
}

/// How long each part of the wait may take and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Until the pod is scheduled and its container runs.
    pub pod: Duration,
    /// From running until Ready.
    pub container: Duration,
    pub poll: Duration,
}

/// What the pod shows right now.
enum Verdict {
    Stage(Stage),
    /// Hopeless however long we wait.
    Failed(String),
}

/// The pod being waited for, and where to read about it.
pub struct Watched<'a> {
    pub pods: &'a Api<Pod>,
    /// The events of the pod's namespace: they say what the pod's status does not (the
    /// registry's reason for refusing an image, a volume that does not mount).
    pub events: &'a Api<Event>,
    pub name: &'a str,
    pub image: &'a str,
}

pub async fn until_ready(
    watched: Watched<'_>,
    patience: Patience,
    mut on_stage: impl FnMut(Stage),
) -> Result<Pod, String> {
    let Watched { pods, name, .. } = watched;
    let start = Instant::now();
    let mut running_since: Option<Instant> = None;
    loop {
        let pod = pods
            .get(name)
            .await
            .map_err(|e| format!("could not read pod {name}: {e}"))?;
        match verdict(&pod, watched.image) {
            Verdict::Failed(why) if why.contains("CrashLoopBackOff") || why.contains("exited") => {
                return Err(with_logs(pods, &pod, why).await);
            }
            Verdict::Failed(why) => return Err(explained(&watched, why).await),
            Verdict::Stage(Stage::Ready) => {
                on_stage(Stage::Ready);
                return Ok(pod);
            }
            Verdict::Stage(stage) => {
                on_stage(stage);
                let now = Instant::now();
                if stage == Stage::Starting {
                    let since = *running_since.get_or_insert(now);
                    if now.duration_since(since) > patience.container {
                        return Err(with_logs(
                            pods,
                            &pod,
                            format!(
                                "the app's container runs but did not become ready within {} s",
                                patience.container.as_secs()
                            ),
                        )
                        .await);
                    }
                } else if now.duration_since(start) > patience.pod {
                    let why = timed_out(&pod, watched.image, stage, patience.pod);
                    return Err(explained(&watched, why).await);
                }
            }
        }
        let deadline = match running_since {
            Some(since) => since + patience.container,
            None => start + patience.pod,
        };
        let version = pod.metadata.resource_version.as_deref();
        next_change(pods, name, version, deadline, patience.poll).await;
    }
}

/// The longest a single watch waits before the pod is read again anyway, in case a change was
/// missed.
const LONGEST_WATCH: Duration = Duration::from_secs(10);

/// Returns when the pod changes after `version` (a watch, so a change is seen at once), or at
/// `deadline`. Where watching fails (a proxy that does not stream, a Role without `watch`), it
/// waits `poll` instead.
async fn next_change(
    pods: &Api<Pod>,
    name: &str,
    version: Option<&str>,
    deadline: Instant,
    poll: Duration,
) {
    let limit = deadline
        .saturating_duration_since(Instant::now())
        .min(LONGEST_WATCH);
    let Some(version) = version else {
        return tokio::time::sleep(poll.min(limit)).await;
    };
    let server_timeout = u32::try_from(limit.as_secs()).unwrap_or(u32::MAX).max(1);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(server_timeout)
        .disable_bookmarks();
    let watched = tokio::time::timeout(limit, async {
        let stream = pods
            .watch(&params, version)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        match stream.next().await {
            // The version is older than the server keeps (410 Gone): reading the pod again
            // gives a current one to watch from.
            Some(Ok(WatchEvent::Error(e))) if e.code == 410 => Ok(()),
            Some(Ok(WatchEvent::Error(e))) => Err(e.message),
            Some(Err(e)) => Err(e.to_string()),
            // A change, or the server ended the watch: either way, read the pod again.
            _ => Ok(()),
        }
    })
    .await;
    if let Ok(Err(why)) = watched {
        tracing::debug!(pod = name, error = %why, "cannot watch the pod; polling");
        tokio::time::sleep(poll.min(limit)).await;
    }
}

/// Adds the pod's latest warning event to a failure when it says more than the status did.
async fn explained(watched: &Watched<'_>, why: String) -> String {
    let Some(event) = latest_warning(watched.events, watched.name).await else {
        return why;
    };
    let reason = event.reason.unwrap_or_default();
    let message = event.message.unwrap_or_default();
    let message = message.trim();
    if message.is_empty() || why.contains(message) {
        return why;
    }
    let told = match reason.as_str() {
        "FailedMount" | "FailedAttachVolume" => {
            format!("a volume could not be mounted: {message}")
        }
        "FailedScheduling" => short_resources(message),
        "Failed" if message.contains("image") => format!("the registry said: {message}"),
        _ => format!("{reason}: {message}"),
    };
    format!("{why}; {told}")
}

/// The most recent Warning event about the pod, if the events can be read at all.
async fn latest_warning(events: &Api<Event>, pod: &str) -> Option<Event> {
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    let list = match events.list(&lp).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(pod, error = %e, "cannot read the pod's events");
            return None;
        }
    };
    list.into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
}

fn verdict(pod: &Pod, image: &str) -> Verdict {
    let Some(status) = &pod.status else {
        return Verdict::Stage(Stage::Waiting);
    };
    let waiting = container_waiting(pod);
    if let Some(w) = &waiting {
        match w.reason.as_deref() {
            Some("ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull") => {
                return Verdict::Failed(image_failure(image, w));
            }
            Some("CrashLoopBackOff") => {
                return Verdict::Failed("the app keeps crashing (CrashLoopBackOff)".into());
            }
            Some("CreateContainerConfigError") => {
                return Verdict::Failed(format!(
                    "the app's container cannot be created: {}",
                    w.message.as_deref().unwrap_or("no reason given")
                ));
            }
            _ => {}
        }
    }
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => {
            return Verdict::Failed(format!(
                "the app's pod exited ({})",
                status
                    .reason
                    .as_deref()
                    .or(status.message.as_deref())
                    .unwrap_or("no reason given")
            ));
        }
        Some("Running") if condition(pod, "Ready") == Some(true) => {
            return Verdict::Stage(Stage::Ready);
        }
        Some("Running") => return Verdict::Stage(Stage::Starting),
        _ => {}
    }
    if condition(pod, "PodScheduled") != Some(true) {
        return Verdict::Stage(Stage::Waiting);
    }
    match waiting.and_then(|w| w.reason) {
        Some(r) if r == "ContainerCreating" || r == "ErrImagePull" || r == "PodInitializing" => {
            Verdict::Stage(Stage::PullingImage)
        }
        _ => Verdict::Stage(Stage::Scheduled),
    }
}

fn timed_out(pod: &Pod, image: &str, stage: Stage, limit: Duration) -> String {
    let secs = limit.as_secs_f64();
    if let Some(message) = unschedulable(pod) {
        return format!(
            "no node can run the app within {secs} s: {}",
            short_resources(&message)
        );
    }
    if let Some(w) = container_waiting(pod).filter(|w| w.reason.as_deref() == Some("ErrImagePull"))
    {
        return image_failure(image, &w);
    }
    format!(
        "the app's pod did not start within {secs} s (last stage: {})",
        stage.describe()
    )
}

fn image_failure(image: &str, w: &ContainerStateWaiting) -> String {
    format!(
        "the image '{image}' could not be pulled ({}): {}",
        w.reason.as_deref().unwrap_or("error"),
        w.message.as_deref().unwrap_or("no reason given")
    )
}

/// The scheduler's message, e.g. `0/3 nodes are available: 3 Insufficient memory.`
fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

/// Names the short resources ("not enough memory, cpu") ahead of the scheduler's own text.
pub fn short_resources(message: &str) -> String {
    let mut short: Vec<String> = Vec::new();
    for part in message.split([',', ':', '.']) {
        if let Some(idx) = part.find("Insufficient ") {
            let what = part[idx + "Insufficient ".len()..].trim().to_string();
            if !short.contains(&what) {
                short.push(what);
            }
        }
    }
    if short.is_empty() {
        message.trim().to_string()
    } else {
        format!(
            "not enough {} in the cluster ({})",
            short.join(", "),
            message.trim()
        )
    }
}

fn condition(pod: &Pod, kind: &str) -> Option<bool> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status == "True")
}

fn container_waiting(pod: &Pod) -> Option<ContainerStateWaiting> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()
}

/// Adds the app's last log lines (of the crashed run) to a failure.
async fn with_logs(pods: &Api<Pod>, pod: &Pod, why: String) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match last_output(pods, name, crashed_run_is_previous(pod)).await {
        Some(text) => format!("{why}; its last output:\n{text}"),
        None => why,
    }
}

/// Whether the crashed run's output is the previous run's: a container waiting to be
/// restarted has no current output, while a terminated one that was never restarted has no
/// previous run (the API server answers 400 for it).
fn crashed_run_is_previous(pod: &Pod) -> bool {
    let Some(c) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
    else {
        return false;
    };
    let terminated_now = c.state.as_ref().is_some_and(|s| s.terminated.is_some());
    let ran_before = c
        .last_state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some());
    ran_before && !terminated_now
}

/// The last lines the app container wrote in its current or previous run.
pub async fn last_output(pods: &Api<Pod>, name: &str, previous_run: bool) -> Option<String> {
    let lp = LogParams {
        tail_lines: Some(LOG_LINES),
        previous: previous_run,
        ..LogParams::default()
    };
    match pods.logs(name, &lp).await {
        Ok(text) if !text.trim().is_empty() => Some(text.trim_end().to_string()),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(pod = name, previous_run, error = %e, "cannot read the app's output");
            None
        }
    }
}

pub const LOG_LINES: i64 = 20;
