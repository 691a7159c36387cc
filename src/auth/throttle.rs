//! Login throttling that counts failures only. Guessing one user's password is slowed per user
//! name; spraying many users from one address is slowed per address. A successful login clears
//! the user's count, and successes never count, so a classroom behind one NAT address, or a
//! script that authenticates every API call, is never locked out by logging in.

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// Why a login may not be tried now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: wait this long.
    Wait(Duration),
    /// The counts cannot be read, so a guess cannot be told from a first try.
    Store(StoreError),
}

/// Counts live in the shared store, so guessing through several replicas is no faster than
/// through one.
pub struct LoginThrottle {
    store: Arc<dyn Store>,
    window: Duration,
    per_user: u64,
    per_ip: u64,
}

impl LoginThrottle {
    /// 5 failures a minute per user name, 50 per address (a class mistyping behind one NAT).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_limits(store, 5, 50, Duration::from_secs(60))
    }

    pub fn with_limits(
        store: Arc<dyn Store>,
        per_user: u64,
        per_ip: u64,
        window: Duration,
    ) -> Self {
        Self {
            store,
            window,
            per_user: per_user.max(1),
            per_ip: per_ip.max(1),
        }
    }

    /// Before checking a password: refused when this user or address has failed too often and
    /// must wait before trying again.
    pub async fn check(&self, user: &str, ip: IpAddr) -> Result<(), Refusal> {
        let wait = |limit: u64, found: Option<(u64, Duration)>| {
            found.and_then(|(count, left)| (count >= limit).then_some(left))
        };
        let by_user = self.store.counter(&user_key(user)).await;
        let by_ip = self.store.counter(&ip_key(ip)).await;
        let user_wait = wait(self.per_user, by_user.map_err(Refusal::Store)?);
        let ip_wait = wait(self.per_ip, by_ip.map_err(Refusal::Store)?);
        match user_wait.max(ip_wait) {
            Some(w) => Err(Refusal::Wait(w.min(self.window))),
            None => Ok(()),
        }
    }

    /// A wrong password (or unknown user) from `ip`.
    pub async fn failed(&self, user: &str, ip: IpAddr) {
        let by_user = self.store.count(&user_key(user), self.window).await;
        let by_ip = self.store.count(&ip_key(ip), self.window).await;
        if let Err(e) = by_user.and(by_ip) {
            tracing::warn!(error = %e, "a failed login could not be counted");
        }
    }

    /// The user proved who they are: their earlier failures no longer count.
    pub async fn succeeded(&self, user: &str) {
        if let Err(e) = self.store.delete(&user_key(user)).await {
            tracing::warn!(error = %e, "a user's failed logins could not be cleared");
        }
    }
}

/// User names are case-folded; a long one is hashed, so a client cannot make keys of any size.
fn user_key(user: &str) -> String {
    let user = user.to_lowercase();
    if user.len() <= 128 {
        format!("throttle:user:{user}")
    } else {
        let digest: String = Sha256::digest(user.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("throttle:user:#{digest}")
    }
}

fn ip_key(ip: IpAddr) -> String {
    format!("throttle:ip:{}", crate::config::canonical_ip(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::net::Ipv4Addr;

    const NAT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Arc::new(MemoryStore::default()))
    }

    #[tokio::test(start_paused = true)]
    async fn five_failures_lock_one_user_for_the_rest_of_the_minute() {
        let t = throttle();
        for _ in 0..5 {
            assert!(t.check("alice", NAT).await.is_ok());
            t.failed("alice", NAT).await;
        }
        let refused = t
            .check("Alice", NAT)
            .await
            .expect_err("user names are case-folded");
        assert_eq!(refused, Refusal::Wait(Duration::from_secs(60)));
        assert!(
            t.check("bob", NAT).await.is_ok(),
            "other users are unaffected"
        );
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(t.check("alice", NAT).await.is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(t.check("alice", NAT).await.is_ok(), "the window has passed");
    }

    #[tokio::test(start_paused = true)]
    async fn successes_never_count_and_clear_the_users_failures() {
        let t = throttle();
        // A class of 200 logging in through one address.
        for i in 0..200 {
            assert!(t.check(&format!("student{i}"), NAT).await.is_ok());
            t.succeeded(&format!("student{i}")).await;
        }
        for _ in 0..4 {
            t.failed("alice", NAT).await;
        }
        t.succeeded("alice").await;
        for _ in 0..4 {
            t.failed("alice", NAT).await;
        }
        assert!(
            t.check("alice", NAT).await.is_ok(),
            "the success cleared the first four"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_cannot_spray_many_users() {
        let t = LoginThrottle::with_limits(
            Arc::new(MemoryStore::default()),
            5,
            3,
            Duration::from_secs(60),
        );
        for u in ["a", "b", "c"] {
            t.failed(u, NAT).await;
        }
        assert!(t.check("d", NAT).await.is_err());
        let elsewhere = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert!(t.check("d", elsewhere).await.is_ok());
    }

    #[test]
    fn a_huge_user_name_makes_a_small_key() {
        assert!(user_key(&"x".repeat(100_000)).len() < 100);
        assert_eq!(user_key("Alice"), "throttle:user:alice");
    }
}
