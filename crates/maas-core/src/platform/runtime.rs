//! The platform's runtime: the workers and limiters every tenant shares (commit threads, the
//! password-hashing limiter, rate limits). Created with the platform and handed to each tenant
//! when it opens, so nothing of it lives in a `static`; it ends with the platform.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::commit_threads::CommitThreads;
use crate::ratelimit::RateLimiter;
use crate::{Error, Result};

pub struct Runtime {
    commit_threads: CommitThreads,
    hashing: Hashing,
    limiter: RateLimiter,
    /// `true` once the platform shuts down: waits that would outlast it (long-polls) end.
    shutting_down: watch::Sender<bool>,
}

impl Runtime {
    pub(crate) fn start(rate_limits_enabled: bool) -> Self {
        Self {
            commit_threads: CommitThreads::start(),
            hashing: Hashing::per_cpu(),
            limiter: RateLimiter::new(rate_limits_enabled),
            shutting_down: watch::Sender::new(false),
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    pub(crate) fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    pub(crate) fn commit_threads(&self) -> &CommitThreads {
        &self.commit_threads
    }

    pub(crate) fn hashing(&self) -> &Hashing {
        &self.hashing
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

/// Bounds the password hashes (argon2id) running at once across all tenants: each takes
/// `passwords.memory_kib` and a core for tens of milliseconds, so a burst of logins on one
/// tenant queues here instead of taking every core and hundreds of MiB from the others.
#[derive(Clone)]
pub(crate) struct Hashing(Arc<Semaphore>);

impl Hashing {
    /// One hash at a time per CPU.
    fn per_cpu() -> Self {
        Self::with_slots(std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub(crate) fn with_slots(slots: usize) -> Self {
        Self(Arc::new(Semaphore::new(slots)))
    }

    /// Runs the blocking work `f` on the blocking pool once a slot is free. The slot moves
    /// into the blocking task, so a caller that gives up waiting (a dropped request) frees it
    /// only when the work it started has really finished.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit: OwnedSemaphorePermit = Arc::clone(&self.0)
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

    #[cfg(test)]
    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.0
    }
}
