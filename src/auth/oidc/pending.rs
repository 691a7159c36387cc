//! Logins that went to the provider and have not come back yet: their nonce and PKCE verifier
//! stay here on the server, never in the browser. Each is found by its `state` and belongs to
//! the browser holding a random value in a short-lived cookie, so a callback URL is worthless
//! in another browser. One browser may have several logins under way (tabs that all found
//! their session expired), and each is used at most once.

use crate::clock::Instant;
use dashmap::DashMap;
use std::time::Duration;

/// How long a user may take at the provider's login page.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Bounds the memory an unauthenticated client can make the server hold by starting logins.
const MAX_PENDING: usize = 10_000;

pub struct Pending {
    /// The browser's cookie value.
    pub browser: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where the user goes after login.
    pub next: String,
    pub redirect_uri: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    /// No login with this state is under way (forged, already used, or expired).
    UnknownState,
    /// The login was started by another browser.
    OtherBrowser,
}

#[derive(Default)]
pub struct PendingLogins {
    by_state: DashMap<String, (Pending, Instant)>,
}

impl PendingLogins {
    pub fn insert(&self, state: String, pending: Pending) {
        if self.by_state.len() >= MAX_PENDING {
            self.purge();
            if self.by_state.len() >= MAX_PENDING {
                // Under a flood, the oldest half goes: real users retry a login, a flood does not.
                let mut ages: Vec<(String, Instant)> = self
                    .by_state
                    .iter()
                    .map(|e| (e.key().clone(), e.1))
                    .collect();
                ages.sort_by_key(|(_, t)| *t);
                for (k, _) in ages.into_iter().take(MAX_PENDING / 2) {
                    self.by_state.remove(&k);
                }
            }
        }
        self.by_state
            .insert(state, (pending, Instant::now() + PENDING_LIFETIME));
    }

    /// Takes out the login with this state, if `browser` started it; a wrong browser leaves it
    /// in place for the right one.
    pub fn take(&self, state: &str, browser: &str) -> Result<Pending, TakeError> {
        let taken = self.by_state.remove_if(state, |_, (p, _)| {
            crate::auth::csrf::matches(&p.browser, Some(browser))
        });
        match taken {
            Some((_, (pending, expires))) if expires > Instant::now() => Ok(pending),
            Some(_) => Err(TakeError::UnknownState),
            None if self.by_state.contains_key(state) => Err(TakeError::OtherBrowser),
            None => Err(TakeError::UnknownState),
        }
    }

    pub fn purge(&self) {
        let now = Instant::now();
        self.by_state.retain(|_, (_, expires)| *expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(browser: &str) -> Pending {
        Pending {
            browser: browser.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/".into(),
            redirect_uri: "http://x/cb".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_login_is_used_once_by_its_own_browser_and_expires() {
        let p = PendingLogins::default();
        p.insert("s1".into(), pending("b"));
        p.insert("s2".into(), pending("b"));
        assert_eq!(p.take("s1", "thief").err(), Some(TakeError::OtherBrowser));
        assert!(p.take("s1", "b").is_ok(), "still there for its browser");
        assert_eq!(
            p.take("s1", "b").err(),
            Some(TakeError::UnknownState),
            "used once"
        );
        assert!(
            p.take("s2", "b").is_ok(),
            "two logins at once from one browser"
        );
        p.insert("s3".into(), pending("b"));
        tokio::time::advance(PENDING_LIFETIME + Duration::from_secs(1)).await;
        assert_eq!(
            p.take("s3", "b").err(),
            Some(TakeError::UnknownState),
            "expired"
        );
    }
}
