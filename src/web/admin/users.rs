//! Who is online: the owners of instances, and whoever logged in recently without logging out
//! since. Sessions live in the store (perhaps Redis) and are not listed; the instances and the
//! events are what this replica knows.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::lifecycle::InstanceView;
use crate::observe::recent::RecentEvent;

#[derive(Debug, Serialize)]
pub struct OnlineUser {
    pub user: String,
    /// The apps of their instances that have not ended.
    pub apps: Vec<String>,
    pub instances: usize,
    /// Seconds since their last traffic to an app, or since they logged in.
    pub idle_secs: Option<u64>,
}

pub fn online(instances: &[InstanceView], events: &[RecentEvent]) -> Vec<OnlineUser> {
    let mut users: BTreeMap<String, OnlineUser> = BTreeMap::new();
    for i in instances
        .iter()
        .filter(|i| !i.user.is_empty() && !i.status.is_final())
    {
        let u = slot(&mut users, &i.user);
        u.instances += 1;
        if !u.apps.contains(&i.display_name) {
            u.apps.push(i.display_name.clone());
        }
        u.idle_secs = min_some(u.idle_secs, i.idle_secs.or(Some(i.age_secs)));
    }
    // Events are newest first: a user's newest one says whether they are still logged in.
    let now = crate::clock::now_unix_ms();
    let mut seen = std::collections::HashSet::new();
    for e in events.iter().filter(|e| !e.user.is_empty()) {
        if !seen.insert(e.user.as_str()) || matches!(e.kind, "Logout" | "AuthFailed") {
            continue;
        }
        let u = slot(&mut users, &e.user);
        u.idle_secs = min_some(u.idle_secs, Some(now.saturating_sub(e.time_ms) / 1000));
    }
    users.into_values().collect()
}

fn slot<'a>(users: &'a mut BTreeMap<String, OnlineUser>, name: &str) -> &'a mut OnlineUser {
    users.entry(name.to_string()).or_insert_with(|| OnlineUser {
        user: name.to_string(),
        apps: Vec::new(),
        instances: 0,
        idle_secs: None,
    })
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
