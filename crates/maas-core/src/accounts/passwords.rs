//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking
//! pool and never stalls the request workers.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordConfig;
use crate::{Error, Result};

/// Longest password accepted; argon2 handles more, but nobody needs it and it bounds CPU use.
pub const MAX_PASSWORD_LEN: usize = 512;

fn argon2(config: &PasswordConfig) -> Result<Argon2<'static>> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| Error::Internal(format!("invalid argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn check_new_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidParam("Password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::InvalidParam(format!(
            "Password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// The PHC string of `password`, salted.
pub async fn hash(config: &PasswordConfig, password: &str) -> Result<String> {
    let argon2 = argon2(config)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
}

/// Whether `password` matches `phc`. The parameters come from the stored hash, so hashes made
/// under older settings keep verifying.
pub async fn verify(phc: &str, password: &str) -> Result<bool> {
    let phc = phc.to_owned();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(|e| Error::Internal(format!("password verification task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let config = PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let phc = hash(&config, "correct horse").await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(&phc, "correct horse").await.expect("verify"));
        assert!(!verify(&phc, "wrong").await.expect("verify"));
        assert!(!verify("not a hash", "x").await.expect("verify"));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_new_password("fine").is_ok());
    }
}
