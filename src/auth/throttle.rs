//! Login throttling, per user name and per client address, so that neither guessing one user's
//! password nor spraying many users from one address gets far.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

pub struct LoginThrottle {
    per_user: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(5, 20)
    }
}

impl LoginThrottle {
    /// Allows bursts of `per_user` attempts per user name and `per_ip` per address, each
    /// refilling over a minute.
    pub fn new(per_user: u32, per_ip: u32) -> Self {
        let quota = |n: u32| {
            let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(n).allow_burst(n)
        };
        Self {
            per_user: RateLimiter::keyed(quota(per_user)),
            per_ip: RateLimiter::keyed(quota(per_ip)),
        }
    }

    /// Records an attempt; `Err(wait)` when the caller must wait before trying again.
    pub fn attempt(&self, user: &str, ip: IpAddr) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        let user_key = user.to_lowercase();
        self.per_ip
            .check_key(&ip)
            .and_then(|_| self.per_user.check_key(&user_key))
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Forgets keys whose limits have fully refilled.
    pub fn purge(&self) {
        self.per_user.retain_recent();
        self.per_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_sixth_quick_attempt_for_one_user_is_refused() {
        let t = LoginThrottle::new(5, 100);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        for _ in 0..5 {
            assert!(t.attempt("alice", ip).is_ok());
        }
        assert!(
            t.attempt("Alice", ip).is_err(),
            "user names are case-folded"
        );
        assert!(t.attempt("bob", ip).is_ok(), "other users are unaffected");
    }

    #[test]
    fn one_address_cannot_spray_many_users() {
        let t = LoginThrottle::new(5, 3);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for u in ["a", "b", "c"] {
            assert!(t.attempt(u, ip).is_ok());
        }
        assert!(t.attempt("d", ip).is_err());
    }
}
