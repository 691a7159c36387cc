//! Noticing, as it happens, that a serving app's pod has crashed, failed or gone: one watch per
//! namespace on this realm's pods. A watch the server ends is resumed from the last version
//! seen (bookmarks keep it current); one whose version is too old (410 Gone) starts over with
//! a list, which is compared with what is known, so no exit between the two is lost.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::broadcast;

use super::Shared;
use super::crash::{self, Crash};
use super::naming::{self, INSTANCE_LABEL};
use crate::backend::Exit;

/// How long the server holds one watch open; it is resumed after.
const WATCH_SECONDS: u32 = 290;
/// The pause before trying again after the API server could not be reached.
const RETRY: Duration = Duration::from_secs(1);

/// Follows `namespace` until the backend is dropped.
pub async fn follow(
    shared: Weak<Shared>,
    pods: Api<Pod>,
    namespace: String,
    realm: String,
    exits: broadcast::Sender<Exit>,
) {
    let selector = naming::selector(&realm);
    let mut version: Option<String> = None;
    loop {
        let Some(me) = shared.upgrade() else { return };
        let from = match version.take() {
            Some(v) => v,
            None => match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    me.reconcile(&pods, &namespace, &list.items, &exits).await;
                    list.metadata.resource_version.unwrap_or_default()
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list the app pods; trying again");
                    drop(me);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        drop(me);
        let params = WatchParams::default()
            .labels(&selector)
            .timeout(WATCH_SECONDS);
        let stream = match pods.watch(&params, &from).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(s)) if s.code == 410 => continue,
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the app pods; trying again");
                tokio::time::sleep(RETRY).await;
                version = Some(from);
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut last = Some(from);
        while let Some(event) = stream.next().await {
            let Some(me) = shared.upgrade() else { return };
            match event {
                Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                    last = pod.metadata.resource_version.clone();
                    me.judge(&pods, &pod, &exits).await;
                }
                Ok(WatchEvent::Deleted(pod)) => {
                    last = pod.metadata.resource_version.clone();
                    if let Some(id) = instance_of(&pod) {
                        me.report(&id, "was stopped: its pod was deleted".into(), &exits);
                    }
                }
                Ok(WatchEvent::Bookmark(b)) => last = Some(b.metadata.resource_version),
                Ok(WatchEvent::Error(s)) if s.code == 410 => {
                    last = None;
                    break;
                }
                Ok(WatchEvent::Error(s)) => {
                    tracing::debug!(error = %s.message, "the pod watch failed; resuming");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the pod watch broke off; resuming");
                    break;
                }
            }
        }
        version = last;
    }
}

pub fn instance_of(pod: &Pod) -> Option<String> {
    pod.metadata.labels.as_ref()?.get(INSTANCE_LABEL).cloned()
}

impl Shared {
    /// Reports the pod's instance as ended if it was serving and has crashed.
    async fn judge(&self, pods: &Api<Pod>, pod: &Pod, exits: &broadcast::Sender<Exit>) {
        let Some(id) = instance_of(pod) else { return };
        let Some(baseline) = self.serving_restarts(&id) else {
            return;
        };
        if let Some(Crash { how, previous_run }) = crash::crash_of(pod, baseline) {
            let name = naming::pod_name(&id);
            let output = super::waiting::last_output(pods, &name, previous_run).await;
            self.keep_output(&id, output);
            self.report(&id, how, exits);
        }
    }

    /// After a list: every serving instance of this namespace is judged, and one whose pod is
    /// no longer there has ended.
    async fn reconcile(
        &self,
        pods: &Api<Pod>,
        namespace: &str,
        listed: &[Pod],
        exits: &broadcast::Sender<Exit>,
    ) {
        for pod in listed {
            self.judge(pods, pod, exits).await;
        }
        for id in self.serving_in(namespace) {
            if !listed
                .iter()
                .any(|p| instance_of(p).as_deref() == Some(id.as_str()))
            {
                self.report(&id, "was stopped: its pod is gone".into(), exits);
            }
        }
    }

    /// Sends one exit per instance: it is no longer serving from now on.
    fn report(&self, id: &str, how: String, exits: &broadcast::Sender<Exit>) {
        if self.stop_serving(id) {
            let _ = exits.send(Exit {
                instance_id: id.to_string(),
                how,
            });
        }
    }
}
