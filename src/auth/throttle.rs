//! Login throttling that counts failures only. Guessing one user's password is slowed per user
//! name; spraying many users from one address is slowed per address. A successful login clears
//! the user's count, and successes never count, so a classroom behind one NAT address, or a
//! script that authenticates every API call, is never locked out by logging in.

use dashmap::DashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use crate::clock::Instant;

/// Failed attempts for one key within the current window.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

struct Counter<K: Eq + Hash> {
    limit: u32,
    failures: DashMap<K, Failures>,
}

impl<K: Eq + Hash> Counter<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            failures: DashMap::new(),
        }
    }

    /// How long `key` must wait, if it has used up its failures in this window.
    fn wait(&self, key: &K, window: Duration, now: Instant) -> Option<Duration> {
        let f = *self.failures.get(key)?;
        let ends = f.since + window;
        (f.count >= self.limit && ends > now).then(|| ends - now)
    }

    fn fail(&self, key: K, window: Duration, now: Instant) {
        let mut f = self.failures.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= f.since + window {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count += 1;
    }

    fn purge(&self, window: Duration, now: Instant) {
        self.failures.retain(|_, f| now < f.since + window);
    }
}

pub struct LoginThrottle {
    window: Duration,
    per_user: Counter<String>,
    per_ip: Counter<IpAddr>,
}

impl Default for LoginThrottle {
    /// 5 failures a minute per user name, 50 per address (a class mistyping behind one NAT).
    fn default() -> Self {
        Self::new(5, 50, Duration::from_secs(60))
    }
}

impl LoginThrottle {
    pub fn new(per_user: u32, per_ip: u32, window: Duration) -> Self {
        Self {
            window,
            per_user: Counter::new(per_user),
            per_ip: Counter::new(per_ip),
        }
    }

    /// Before checking a password: `Err(wait)` when this user or address has failed too often
    /// and must wait before trying again.
    pub fn check(&self, user: &str, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let user_wait = self.per_user.wait(&user.to_lowercase(), self.window, now);
        let ip_wait = self.per_ip.wait(&ip, self.window, now);
        match user_wait.max(ip_wait) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// A wrong password (or unknown user) from `ip`.
    pub fn failed(&self, user: &str, ip: IpAddr) {
        let now = Instant::now();
        self.per_user.fail(user.to_lowercase(), self.window, now);
        self.per_ip.fail(ip, self.window, now);
    }

    /// The user proved who they are: their earlier failures no longer count.
    pub fn succeeded(&self, user: &str) {
        self.per_user.failures.remove(&user.to_lowercase());
    }

    /// Forgets counts whose window has passed.
    pub fn purge(&self) {
        let now = Instant::now();
        self.per_user.purge(self.window, now);
        self.per_ip.purge(self.window, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NAT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    #[tokio::test(start_paused = true)]
    async fn five_failures_lock_one_user_for_the_rest_of_the_minute() {
        let t = LoginThrottle::default();
        for _ in 0..5 {
            assert!(t.check("alice", NAT).is_ok());
            t.failed("alice", NAT);
        }
        let wait = t
            .check("Alice", NAT)
            .expect_err("user names are case-folded");
        assert_eq!(wait, Duration::from_secs(60));
        assert!(t.check("bob", NAT).is_ok(), "other users are unaffected");
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(t.check("alice", NAT).is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(t.check("alice", NAT).is_ok(), "the window has passed");
    }

    #[tokio::test(start_paused = true)]
    async fn successes_never_count_and_clear_the_users_failures() {
        let t = LoginThrottle::default();
        // A class of 200 logging in through one address.
        for i in 0..200 {
            assert!(t.check(&format!("student{i}"), NAT).is_ok());
            t.succeeded(&format!("student{i}"));
        }
        for _ in 0..4 {
            t.failed("alice", NAT);
        }
        t.succeeded("alice");
        for _ in 0..4 {
            t.failed("alice", NAT);
        }
        assert!(
            t.check("alice", NAT).is_ok(),
            "the success cleared the first four"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_cannot_spray_many_users() {
        let t = LoginThrottle::new(5, 3, Duration::from_secs(60));
        for u in ["a", "b", "c"] {
            t.failed(u, NAT);
        }
        assert!(t.check("d", NAT).is_err());
        let elsewhere = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert!(t.check("d", elsewhere).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn purge_forgets_only_passed_windows() {
        let t = LoginThrottle::default();
        t.failed("old", NAT);
        tokio::time::sleep(Duration::from_secs(61)).await;
        t.failed("new", NAT);
        t.purge();
        assert_eq!(t.per_user.failures.len(), 1);
        assert!(t.per_user.failures.contains_key("new"));
    }
}
