//! `authentication: simple`: the users listed in `proxy.users`.

use async_trait::async_trait;
use std::sync::Arc;

use super::{AuthError, Authenticator, Identity, password};
use crate::config::{Config, PasswordSpec};

pub struct SimpleAuthenticator {
    config: Arc<Config>,
    /// Verified when the user does not exist, so that unknown and known users take as long.
    decoy: PasswordSpec,
}

impl SimpleAuthenticator {
    pub fn new(config: Arc<Config>) -> Self {
        let decoy = password::hash("vestibule-decoy")
            .map(PasswordSpec::Argon2)
            .unwrap_or_else(|_| PasswordSpec::Plain(String::new()));
        Self { config, decoy }
    }
}

#[async_trait]
impl Authenticator for SimpleAuthenticator {
    async fn authenticate(&self, user: &str, pw: &str) -> Result<Identity, AuthError> {
        let entry = self.config.proxy.users.iter().find(|u| u.name == user);
        let spec = entry
            .map(|u| u.password.clone())
            .unwrap_or(self.decoy.clone());
        let pw = pw.to_string();
        // Hash verification is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || password::verify(&spec, &pw))
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
