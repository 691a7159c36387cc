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
    fn a_malformed_hash_never_verifies() {
        assert!(!verify(
            &PasswordSpec::Argon2("$argon2id$garbage".into()),
            ""
        ));
        assert!(!verify(&PasswordSpec::Bcrypt("$2b$nonsense".into()), ""));
    }
}
