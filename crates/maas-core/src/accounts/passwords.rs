//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking
//! pool and never stalls the request workers.
//!
//! Every hash (and verification) takes `memory_kib` of memory (19 MiB by default) and a core
//! for tens of milliseconds. Unbounded, a burst of logins or registrations runs one per
//! blocking thread (tokio allows 512): hundreds of MiB at once, which the allocator may keep
//! long after, and every core busy. So every hash waits for a slot of the platform's
//! [`Hashing`] limiter (one per CPU, all tenants share the CPUs), in order. That bounds memory
//! to CPUs x `memory_kib`, lets the same few blocks be reused, and makes a login storm on one
//! tenant a queue rather than a denial of service for the whole process.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordConfig;
use crate::platform::runtime::Hashing;
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
pub(crate) async fn hash(
    hashing: &Hashing,
    config: &PasswordConfig,
    password: &str,
) -> Result<String> {
    let argon2 = argon2(config)?;
    let password = password.to_owned();
    hashing
        .run("hashing", move || {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
        })
        .await?
}

/// Whether `password` matches `phc`. The parameters come from the stored hash, so hashes made
/// under older settings keep verifying.
pub(crate) async fn verify(hashing: &Hashing, phc: &str, password: &str) -> Result<bool> {
    let phc = phc.to_owned();
    let password = password.to_owned();
    hashing
        .run("verification", move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn cheap() -> PasswordConfig {
        PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hashing = Hashing::with_slots(1);
        let phc = hash(&hashing, &cheap(), "correct horse")
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            verify(&hashing, &phc, "correct horse")
                .await
                .expect("verify")
        );
        assert!(!verify(&hashing, &phc, "wrong").await.expect("verify"));
        assert!(!verify(&hashing, "not a hash", "x").await.expect("verify"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashes_are_bounded_and_all_finish() {
        let slots = 2;
        let hashing = Hashing::with_slots(slots);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..4 * slots + 3)
            .map(|i| {
                let (hashing, running, most) = (hashing.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    hashing
                        .run("test", move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await?;
                    hash(&hashing, &cheap(), &format!("pw{i}")).await
                })
            })
            .collect();
        for task in tasks {
            let phc = task.await.expect("task").expect("hash");
            assert!(phc.starts_with("$argon2id$"));
        }
        assert!(
            most.load(Ordering::SeqCst) <= slots,
            "more ran at once than slots"
        );
        assert_eq!(
            hashing.semaphore().available_permits(),
            slots,
            "a slot leaked"
        );
    }

    #[tokio::test]
    async fn hashing_waits_for_a_free_slot() {
        let hashing = Hashing::with_slots(2);
        let held = Arc::clone(hashing.semaphore())
            .acquire_many_owned(2)
            .await
            .expect("slots");
        let pending = {
            let hashing = hashing.clone();
            tokio::spawn(async move { hash(&hashing, &cheap(), "pw").await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!pending.is_finished(), "hashed while every slot was taken");
        drop(held);
        assert!(pending.await.expect("task").is_ok());
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_new_password("fine").is_ok());
    }
}
