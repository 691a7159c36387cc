//! Password hashing (argon2id for new hashes) and verification of argon2, bcrypt and plain text.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use subtle::ConstantTimeEq;

use crate::config::PasswordSpec;

/// A PHC-format argon2id hash of `password`, for `proxy.users[].password`.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash of a throw-away password made with the same algorithm and cost as `like`, so that
/// verifying against it takes as long as verifying against `like`. Without a model (no hashed
/// password in the config), argon2id with vestibule's defaults, as `hash` makes.
pub fn decoy_like(like: Option<&PasswordSpec>) -> PasswordSpec {
    let made = match like {
        Some(PasswordSpec::Bcrypt(h)) => h
            .parse::<bcrypt::HashParts>()
            .ok()
            .and_then(|parts| bcrypt::hash(DECOY, parts.get_cost()).ok())
            .map(PasswordSpec::Bcrypt),
        Some(PasswordSpec::Argon2(phc)) => argon2_like(phc).map(PasswordSpec::Argon2),
        _ => None,
    };
    made.or_else(|| hash(DECOY).ok().map(PasswordSpec::Argon2))
        // Hashing with the defaults cannot fail; this only keeps the type honest.
        .unwrap_or_else(|| PasswordSpec::Plain(String::new()))
}

/// What decoys hash; nobody can log in with it, as a decoy never grants access.
const DECOY: &str = "vestibule-decoy";

fn argon2_like(phc: &str) -> Option<String> {
    let model = PasswordHash::new(phc).ok()?;
    let algorithm = argon2::Algorithm::try_from(model.algorithm).ok()?;
    let version = argon2::Version::try_from(model.version?).ok()?;
    let params = argon2::Params::try_from(&model).ok()?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(algorithm, version, params)
        .hash_password(DECOY.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

pub fn verify(spec: &PasswordSpec, password: &str) -> bool {
    match spec {
        PasswordSpec::Argon2(phc) => PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false),
        PasswordSpec::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        PasswordSpec::Plain(p) => p.as_bytes().ct_eq(password.as_bytes()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&PasswordSpec::Argon2(h.clone()), "s3cret"));
        assert!(!verify(&PasswordSpec::Argon2(h), "S3cret"));
    }

    #[test]
    fn bcrypt_and_plain() {
        let b = bcrypt::hash("pw", 4).expect("bcrypt");
        assert!(verify(&PasswordSpec::Bcrypt(b.clone()), "pw"));
        assert!(!verify(&PasswordSpec::Bcrypt(b), "px"));
        assert!(verify(&PasswordSpec::Plain("pw".into()), "pw"));
        assert!(!verify(&PasswordSpec::Plain("pw".into()), "pw "));
    }

    #[test]
    fn decoys_cost_what_their_model_costs() {
        let b = bcrypt::hash("pw", 5).expect("bcrypt");
        match decoy_like(Some(&PasswordSpec::Bcrypt(b))) {
            PasswordSpec::Bcrypt(d) => assert!(d.starts_with("$2b$05$"), "{d}"),
            other => panic!("{other:?}"),
        }
        let cheap =
            "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$TZ8y9bi7uJ5zQzTE4a/9mIrZXZa9xoI6OFcxvXMcUDU";
        match decoy_like(Some(&PasswordSpec::Argon2(cheap.into()))) {
            PasswordSpec::Argon2(d) => {
                assert!(d.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{d}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decoy_like(None), PasswordSpec::Argon2(_)));
        assert!(matches!(
            decoy_like(Some(&PasswordSpec::Plain("x".into()))),
            PasswordSpec::Argon2(_)
        ));
    }

    #[test]
    fn a_malformed_hash_never_verifies() {
        assert!(!verify(
            &PasswordSpec::Argon2("$argon2id$garbage".into()),
            ""
        ));
        assert!(!verify(&PasswordSpec::Bcrypt("$2b$nonsense".into()), ""));
    }
}
