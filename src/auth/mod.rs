//! Who the user is: authenticators, passwords, sessions, CSRF tokens and login throttling.

pub mod access;
pub mod api_tokens;
pub mod authorization;
pub mod bearer_jwt;
pub mod csrf;
pub mod header;
mod ldap;
pub mod oidc;
pub mod password;
pub mod reconfirm;
#[cfg(feature = "saml")]
pub mod saml;
pub mod session;
mod simple;
pub mod throttle;
mod webservice;

pub use ldap::LdapAuthenticator;
pub use session::{Session, Sessions};
pub use simple::SimpleAuthenticator;
pub use webservice::WebserviceAuthenticator;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user name or password; deliberately does not say which.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The identity provider could not be asked (never reported as a wrong password).
    #[error("the login service is unavailable")]
    Unavailable(String),
}

/// Checks a user name and password (form login and HTTP Basic for scripts).
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Identity, AuthError>;
}

/// `authentication: none`: nobody logs in; each browser session is its own anonymous user.
pub struct NoAuthenticator;

#[async_trait]
impl Authenticator for NoAuthenticator {
    async fn authenticate(&self, _user: &str, _password: &str) -> Result<Identity, AuthError> {
        Err(AuthError::BadCredentials)
    }
}
