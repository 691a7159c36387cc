//! `authentication: simple`: the users listed in `proxy.users`.

use async_trait::async_trait;
use std::sync::Arc;

use super::{AuthError, Authenticator, Identity, password};
use crate::config::{Config, PasswordSpec};

pub struct SimpleAuthenticator {
    config: Arc<Config>,
    /// Verified for an unknown user and alongside a plain-text password, so that a wrong
    /// password costs the same for every name: the timing must not tell which users exist or
    /// how their passwords are stored. Made like the users' own hashes (same algorithm, cost).
    decoy: PasswordSpec,
}

impl SimpleAuthenticator {
    pub fn new(config: Arc<Config>) -> Self {
        let model = config
            .proxy
            .users
            .iter()
            .map(|u| &u.password)
            .find(|p| !matches!(p, PasswordSpec::Plain(_)));
        let decoy = password::decoy_like(model);
        Self { config, decoy }
    }
}

#[async_trait]
impl Authenticator for SimpleAuthenticator {
    async fn authenticate(&self, user: &str, pw: &str) -> Result<Identity, AuthError> {
        let entry = self.config.proxy.users.iter().find(|u| u.name == user);
        let own = entry.map(|u| u.password.clone());
        let decoy = self.decoy.clone();
        let pw = pw.to_string();
        // Hash verification is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || match own {
            Some(PasswordSpec::Plain(p)) => {
                // Equal work: the decoy's verdict is thrown away (black_box keeps the
                // optimiser from dropping the work along with it).
                std::hint::black_box(password::verify(&decoy, &pw));
                password::verify(&PasswordSpec::Plain(p), &pw)
            }
            Some(hashed) => password::verify(&hashed, &pw),
            None => {
                std::hint::black_box(password::verify(&decoy, &pw));
                false
            }
        })
        .await
        .unwrap_or(false);
        match entry {
            Some(u) if ok => Ok(Identity {
                user: u.name.clone(),
                groups: u.groups.clone(),
                is_admin: self.config.proxy.is_admin(&u.name, &u.groups),
            }),
            _ => Err(AuthError::BadCredentials),
        }
    }
}
