//! The labels that mark a container as one of this server's instances, so a restarted server can
//! find, adopt or remove what an earlier run left.

use std::collections::HashMap;

use crate::backend::LaunchRequest;

pub const INSTANCE_ID: &str = "vestibule.instance-id";
pub const USER: &str = "vestibule.user";
pub const APP_ID: &str = "vestibule.app-id";
pub const SPEC_HASH: &str = "vestibule.spec-hash";
pub const REALM: &str = "vestibule.realm";
pub const CREATED_MS: &str = "vestibule.created-ms";
/// `pool` or `seats` on instances shared by users: a pool's members, seat containers.
pub const SHARED: &str = "vestibule.shared";

/// The spec's own `labels` plus ours; ours win, so a config cannot disguise a container.
pub fn for_instance(req: &LaunchRequest, realm: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = req
        .spec
        .container
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let user = req.owner.clone();
    labels.insert(INSTANCE_ID.into(), req.instance_id.clone());
    labels.insert(USER.into(), user);
    labels.insert(APP_ID.into(), req.spec.id.clone());
    labels.insert(
        SPEC_HASH.into(),
        crate::backend::spec_fingerprint(&req.spec),
    );
    labels.insert(REALM.into(), realm.to_string());
    labels.insert(CREATED_MS.into(), crate::clock::now_unix_ms().to_string());
    if let Some(kind) = req.shared_as() {
        labels.insert(SHARED.into(), kind.into());
        if kind == "seats" {
            labels.insert(crate::backend::SP_DELEGATE_LABEL.into(), "true".into());
        }
    }
    labels
}

/// The Docker filter that selects this realm's instances.
pub fn realm_filter(realm: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{REALM}={realm}")])])
}
