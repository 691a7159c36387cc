//! The provider's tokens as a session carries them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcTokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the access token expires (seconds since the epoch); `None` if the provider did not say.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for OidcTokens {
    // Tokens are bearer credentials: they never go into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcTokens")
            .field("access_token", &"<redacted>")
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl OidcTokens {
    pub fn expired(&self) -> bool {
        self.expires_at
            .is_some_and(|at| at <= crate::clock::now_unix_secs())
    }

    /// What an app instance receives from its user's login (ShinyProxy's name).
    pub fn app_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            "SHINYPROXY_OIDC_ACCESS_TOKEN".to_string(),
            self.access_token.clone(),
        )])
    }
}
