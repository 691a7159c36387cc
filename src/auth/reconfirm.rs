//! A logged-in identity checked against the config in effect, request by request, so that a
//! config reload that changes admins, a user's groups or the user list applies at once rather
//! than at each user's next login.

use super::Identity;
use crate::config::{AuthMethod, Config};

pub enum Reconfirmed {
    Same,
    Changed(Identity),
    /// The user is no longer listed: the session no longer logs anyone in.
    Gone,
}

/// `via_token`: an API token, which an admin may have made for a user never listed (a
/// service account), so it is not ended for being unlisted.
pub fn reconfirm(config: &Config, identity: &Identity, via_token: bool) -> Reconfirmed {
    let mut groups = None;
    if config.proxy.authentication == AuthMethod::Simple {
        match config.proxy.users.iter().find(|u| u.name == identity.user) {
            Some(entry) if entry.groups != identity.groups => groups = Some(entry.groups.clone()),
            Some(_) => {}
            None if via_token => {}
            None => return Reconfirmed::Gone,
        }
    }
    let now_groups = groups.as_deref().unwrap_or(&identity.groups);
    let is_admin = config.proxy.is_admin(&identity.user, now_groups);
    if groups.is_none() && is_admin == identity.is_admin {
        return Reconfirmed::Same;
    }
    Reconfirmed::Changed(Identity {
        user: identity.user.clone(),
        groups: groups.unwrap_or_else(|| identity.groups.clone()),
        is_admin,
    })
}

/// `session` as the config in effect sees it: unchanged, with its identity brought up to date,
/// or `None` when its user is no longer listed.
pub fn current_session(
    config: &Config,
    session: std::sync::Arc<super::Session>,
    via_token: bool,
) -> Option<std::sync::Arc<super::Session>> {
    match reconfirm(config, &session.identity, via_token) {
        Reconfirmed::Same => Some(session),
        Reconfirmed::Changed(identity) => Some(std::sync::Arc::new(super::Session {
            identity,
            ..(*session).clone()
        })),
        Reconfirmed::Gone => None,
    }
}
