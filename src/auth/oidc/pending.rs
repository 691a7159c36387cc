//! Logins that went to the provider and have not come back yet: their state, nonce and PKCE
//! verifier stay here on the server, keyed by a random value in a short-lived cookie, so none
//! of them is ever exposed to the browser. Each is used at most once.

use dashmap::DashMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long a user may take at the provider's login page.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Bounds the memory an unauthenticated client can make the server hold by starting logins.
const MAX_PENDING: usize = 10_000;

pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where the user goes after login.
    pub next: String,
    pub redirect_uri: String,
}

#[derive(Default)]
pub struct PendingLogins {
    map: DashMap<String, (Pending, Instant)>,
}

impl PendingLogins {
    /// Keeps `pending` and returns the key for the browser's cookie.
    pub fn insert(&self, pending: Pending) -> String {
        if self.map.len() >= MAX_PENDING {
            self.purge();
            if self.map.len() >= MAX_PENDING {
                // Under a flood, the oldest half goes: real users retry a login, a flood does not.
                let mut ages: Vec<(String, Instant)> =
                    self.map.iter().map(|e| (e.key().clone(), e.1)).collect();
                ages.sort_by_key(|(_, t)| *t);
                for (k, _) in ages.into_iter().take(MAX_PENDING / 2) {
                    self.map.remove(&k);
                }
            }
        }
        let key = crate::auth::session::random_token();
        self.map
            .insert(key.clone(), (pending, Instant::now() + PENDING_LIFETIME));
        key
    }

    /// Takes the pending login out (a second callback with the same cookie finds nothing).
    pub fn take(&self, key: &str) -> Option<Pending> {
        let (_, (pending, expires)) = self.map.remove(key)?;
        (expires > Instant::now()).then_some(pending)
    }

    pub fn purge(&self) {
        let now = Instant::now();
        self.map.retain(|_, (_, expires)| *expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/".into(),
            redirect_uri: "http://x/cb".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_login_is_used_once_and_expires() {
        let p = PendingLogins::default();
        let k = p.insert(pending());
        assert!(p.take(&k).is_some());
        assert!(p.take(&k).is_none(), "used once");
        let k = p.insert(pending());
        tokio::time::advance(PENDING_LIFETIME + Duration::from_secs(1)).await;
        assert!(p.take(&k).is_none(), "expired");
    }
}
