//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking
//! pool and never stalls the request workers.
//!
//! Every hash (and verification) takes `memory_kib` of memory (19 MiB by default) and a core
//! for tens of milliseconds. Unbounded, a burst of logins or registrations runs one per
//! blocking thread (tokio allows 512): hundreds of MiB at once, which the allocator may keep
//! long after, and every core busy. So at most one hash per CPU runs at a time, process-wide
//! (all tenants share the CPUs); the others wait their turn in order. That bounds memory to
//! CPUs x `memory_kib`, lets the same few blocks be reused, and makes a login storm on one
//! tenant a queue rather than a denial of service for the whole process.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Hashes running at once, process-wide: one per CPU.
static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Arc::new(Semaphore::new(cpus))
});

/// Runs the argon2 work `f` on the blocking pool once a hashing slot is free. The slot moves
/// into the blocking task, so a caller that gives up waiting (a dropped request) frees it
/// only when the hash it started has really finished.
async fn run_hashing<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let permit: OwnedSemaphorePermit = Arc::clone(&HASHING)
        .acquire_owned()
        .await
        .map_err(|e| Error::Internal(format!("password {what} slot unavailable: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let result = f();
        drop(permit);
        result
    })
    .await
    .map_err(|e| Error::Internal(format!("password {what} task failed: {e}")))
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
    run_hashing("hashing", move || {
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
pub async fn verify(phc: &str, password: &str) -> Result<bool> {
    let phc = phc.to_owned();
    let password = password.to_owned();
    run_hashing("verification", move || {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashes_are_bounded_and_all_finish() {
        let config = PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let tasks: Vec<_> = (0..4 * cpus + 3)
            .map(|i| {
                let config = config.clone();
                tokio::spawn(async move { hash(&config, &format!("pw{i}")).await })
            })
            .collect();
        for task in tasks {
            let phc = task.await.expect("task").expect("hash");
            assert!(phc.starts_with("$argon2id$"));
        }
        // No slot leaked (other tests may hold some right now, never more than exist).
        assert!(HASHING.available_permits() <= cpus);
    }

    #[tokio::test]
    async fn hashing_waits_for_a_free_slot() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let slots = u32::try_from(cpus).expect("cpus");
        let held = Arc::clone(&HASHING)
            .acquire_many_owned(slots)
            .await
            .expect("slots");
        let config = PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let pending = tokio::spawn(async move { hash(&config, "pw").await });
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
