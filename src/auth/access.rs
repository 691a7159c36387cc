//! Who may open an app and who may use an instance: the one place the web layer and lifecycle
//! ask, so a new kind of app or instance changes the rule here rather than in every handler.

use super::Identity;
use crate::config::AppSpec;

/// Whether `who` may open `spec` (see it on the portal, launch it, call its pool): everyone for
/// a public app, otherwise the app's access rules. `server_name` is the host the request came
/// through, which rules may read (ShinyProxy's `serverName`).
pub fn may_open(who: &Identity, spec: &AppSpec, server_name: Option<&str>) -> bool {
    spec.public || spec.allows(&who.user, &who.groups, server_name)
}

/// Whether `who` may use, watch or stop an instance owned by `owner`: its owner or an admin.
/// An instance of nobody (a pool's member, a seat container) is reached only through its app,
/// so directly only by admins.
pub fn may_use(who: &Identity, owner: &str) -> bool {
    who.is_admin || (!owner.is_empty() && owner == who.user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, admin: bool) -> Identity {
        Identity {
            user: user.into(),
            groups: Vec::new(),
            is_admin: admin,
        }
    }

    #[test]
    fn an_instance_is_its_owners_and_the_admins_and_a_shared_one_only_the_admins() {
        assert!(may_use(&who("alice", false), "alice"));
        assert!(!may_use(&who("bob", false), "alice"));
        assert!(may_use(&who("root", true), "alice"));
        assert!(
            !may_use(&who("", false), ""),
            "nobody's instance is nobody's to use"
        );
        assert!(may_use(&who("root", true), ""));
    }
}
