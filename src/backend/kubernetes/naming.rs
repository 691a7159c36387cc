//! Names, labels and annotations that tie cluster objects to vestibule instances, so a restarted
//! vestibule finds its pods again by label selector.

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "vestibule";
pub const INSTANCE_LABEL: &str = "vestibule.io/instance-id";
pub const SPEC_LABEL: &str = "vestibule.io/spec-id";
/// User names may hold characters a label value may not, so the user is an annotation.
pub const USER_ANNOTATION: &str = "vestibule.io/user";
pub const PORT_ANNOTATION: &str = "vestibule.io/port";
/// Which vestibule (`proxy.realm-id`) owns the pod, so two of them can share a namespace.
pub const REALM_LABEL: &str = "vestibule.io/realm";
/// `pool` or `seats` on pods shared by users; with the app's id label, a pool's members are
/// selected by `vestibule.io/shared=pool,vestibule.io/spec-id=<app>`.
pub const SHARED_LABEL: &str = "vestibule.io/shared";
/// The fingerprint of the app's settings the pod was started with.
pub const SPEC_HASH_ANNOTATION: &str = "vestibule.io/spec-hash";
/// The additional (not persistent) manifests created with the pod, as JSON, so a restarted
/// vestibule still deletes them when it stops an adopted instance.
pub const OWNED_ANNOTATION: &str = "vestibule.io/owned-objects";
/// ShinyProxy's annotation for what to do with an additional manifest that already exists.
pub const POLICY_ANNOTATION: &str = "openanalytics.eu/sp-additional-manifest-policy";

pub fn pod_name(instance_id: &str) -> String {
    format!("sp-pod-{instance_id}")
}

pub fn service_name(instance_id: &str) -> String {
    format!("sp-service-{instance_id}")
}

/// The pods of one realm.
pub fn selector(realm: &str) -> String {
    format!(
        "{MANAGED_BY}={MANAGER},{REALM_LABEL}={}",
        label_value(realm)
    )
}

/// A label value: at most 63 characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric.
pub fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}
