//! The embedded store: this process's memory, for one replica.

use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::broadcast;

use super::{Admission, Notice, Result, Store};
use crate::clock::Instant;

struct Value {
    text: String,
    expires: Option<Instant>,
}

impl Value {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

pub struct MemoryStore {
    values: DashMap<String, Value>,
    maps: DashMap<String, HashMap<String, String>>,
    sets: Mutex<HashMap<String, HashSet<String>>>,
    notices: broadcast::Sender<Notice>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            values: DashMap::new(),
            maps: DashMap::new(),
            sets: Mutex::new(HashMap::new()),
            notices: broadcast::channel(256).0,
        }
    }
}

impl MemoryStore {
    fn live_value(&self, key: &str) -> Option<dashmap::mapref::one::RefMut<'_, String, Value>> {
        let now = Instant::now();
        let entry = self.values.get_mut(key)?;
        if entry.live(now) {
            return Some(entry);
        }
        drop(entry);
        self.values.remove_if(key, |_, v| !v.live(now));
        None
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self.live_value(key).map(|v| v.text.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        self.values.insert(
            key.to_string(),
            Value {
                text: value.to_string(),
                expires: ttl.map(|t| Instant::now() + t),
            },
        );
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut set = false;
        self.values
            .entry(key.to_string())
            .and_modify(|v| {
                if !v.live(now) {
                    v.text = value.to_string();
                    v.expires = Some(now + ttl);
                    set = true;
                }
            })
            .or_insert_with(|| {
                set = true;
                Value {
                    text: value.to_string(),
                    expires: Some(now + ttl),
                }
            });
        Ok(set)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        Ok(match self.live_value(key) {
            Some(mut v) => {
                v.expires = Some(Instant::now() + ttl);
                true
            }
            None => false,
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        Ok(self.values.remove(key).is_some_and(|(_, v)| v.live(now)))
    }

    async fn take(&self, key: &str) -> Result<Option<String>> {
        let now = Instant::now();
        Ok(self
            .values
            .remove(key)
            .filter(|(_, v)| v.live(now))
            .map(|(_, v)| v.text))
    }

    async fn count(&self, key: &str, window: Duration) -> Result<u64> {
        let now = Instant::now();
        let mut entry = self.values.entry(key.to_string()).or_insert(Value {
            text: "0".into(),
            expires: Some(now + window),
        });
        if !entry.live(now) {
            *entry = Value {
                text: "0".into(),
                expires: Some(now + window),
            };
        }
        let count = entry.text.parse::<u64>().unwrap_or(0) + 1;
        entry.text = count.to_string();
        Ok(count)
    }

    async fn counter(&self, key: &str) -> Result<Option<(u64, Duration)>> {
        let now = Instant::now();
        Ok(self.live_value(key).map(|v| {
            let left = v.expires.map_or(Duration::MAX, |t| t - now);
            (v.text.parse().unwrap_or(0), left)
        }))
    }

    async fn map_set(&self, map: &str, field: &str, value: &str) -> Result<()> {
        self.maps
            .entry(map.to_string())
            .or_default()
            .insert(field.to_string(), value.to_string());
        Ok(())
    }

    async fn map_get(&self, map: &str, field: &str) -> Result<Option<String>> {
        Ok(self.maps.get(map).and_then(|m| m.get(field).cloned()))
    }

    async fn map_delete(&self, map: &str, field: &str) -> Result<bool> {
        Ok(self
            .maps
            .get_mut(map)
            .is_some_and(|mut m| m.remove(field).is_some()))
    }

    async fn map_entries(&self, map: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .maps
            .get(map)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn map_max(&self, map: &str, field: &str, value: u64) -> Result<()> {
        let mut m = self.maps.entry(map.to_string()).or_default();
        let current = m.get(field).and_then(|v| v.parse::<u64>().ok());
        if current.is_none_or(|c| c < value) {
            m.insert(field.to_string(), value.to_string());
        }
        Ok(())
    }

    async fn admit(&self, slots: &[(String, Option<u64>)], member: &str) -> Result<Admission> {
        let mut sets = self.sets.lock();
        let full = slots.iter().position(|(set, limit)| {
            let members = sets.get(set);
            let holds = members.is_some_and(|m| m.contains(member));
            let size = members.map_or(0, |m| m.len() as u64);
            !holds && limit.is_some_and(|l| size >= l)
        });
        if let Some(slot) = full {
            return Ok(Admission::Full(slot));
        }
        for (set, _) in slots {
            sets.entry(set.clone())
                .or_default()
                .insert(member.to_string());
        }
        Ok(Admission::Admitted)
    }

    async fn release(&self, sets: &[String], member: &str) -> Result<()> {
        let mut all = self.sets.lock();
        for set in sets {
            if let Some(m) = all.get_mut(set) {
                m.remove(member);
                if m.is_empty() {
                    all.remove(set);
                }
            }
        }
        Ok(())
    }

    async fn renew_if_holder(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        Ok(match self.live_value(key) {
            Some(mut v) if v.text == value => {
                v.expires = Some(Instant::now() + ttl);
                true
            }
            _ => false,
        })
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        // Nobody listening is fine: there is no other replica.
        let _ = self.notices.send(Notice {
            channel: channel.to_string(),
            message: message.to_string(),
        });
        Ok(())
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn purge_expired(&self) {
        let now = Instant::now();
        self.values.retain(|_, v| v.live(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn values_expire_and_expire_renews_them() {
        let s = MemoryStore::default();
        s.set("k", "v", Some(Duration::from_secs(10))).await.ok();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(
            s.expire("k", Duration::from_secs(10))
                .await
                .unwrap_or(false)
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(s.get("k").await, Ok(Some("v".into())));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(s.get("k").await, Ok(None));
        assert_eq!(s.take("k").await, Ok(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_counter_restarts_after_its_window() {
        let s = MemoryStore::default();
        let w = Duration::from_secs(60);
        assert_eq!(s.count("c", w).await, Ok(1));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(s.count("c", w).await, Ok(2));
        assert_eq!(s.counter("c").await, Ok(Some((2, Duration::from_secs(30)))));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(s.counter("c").await, Ok(None));
        assert_eq!(s.count("c", w).await, Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn set_if_absent_takes_an_expired_key() {
        let s = MemoryStore::default();
        let ttl = Duration::from_secs(5);
        assert_eq!(s.set_if_absent("lease", "a", ttl).await, Ok(true));
        assert_eq!(s.set_if_absent("lease", "b", ttl).await, Ok(false));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(s.set_if_absent("lease", "b", ttl).await, Ok(true));
        assert_eq!(s.get("lease").await, Ok(Some("b".into())));
    }
}
