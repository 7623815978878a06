//! The platform's runtime: the workers and limiters every tenant shares (commit threads, the
//! password-hashing limiter, rate limits, federation's transports and key cache). Created with the platform and handed to each tenant
//! when it opens, so nothing of it lives in a `static`; it ends with the platform.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::blobs::BlobStore;
use super::commit_threads::CommitThreads;
use crate::config::Config;
use crate::federation::Federation;
use crate::media::preview::{PreviewConfig, Previewer};
use crate::ratelimit::RateLimiter;
use crate::{Error, Result};

pub struct Runtime {
    commit_threads: CommitThreads,
    hashing: Hashing,
    limiter: RateLimiter,
    federation: Federation,
    /// `true` once the platform shuts down: waits that would outlast it (long-polls) end.
    shutting_down: watch::Sender<bool>,
    /// Opened on first use, so a platform that never stores media makes no directory for it.
    blobs: std::sync::OnceLock<BlobStore>,
    blobs_opening: parking_lot::Mutex<()>,
    media_root: std::path::PathBuf,
    /// Built on first use: it reads the system's DNS configuration.
    previewer: std::sync::OnceLock<Previewer>,
    preview_config: PreviewConfig,
    /// Thumbnails being made at once, one per CPU across all tenants: decoding a large image
    /// takes a core and up to its pixels' worth of memory, so a burst queues here.
    thumbnailing: Arc<Semaphore>,
}

impl Runtime {
    pub(crate) fn start(config: &Config) -> Self {
        Self {
            commit_threads: CommitThreads::start(),
            hashing: Hashing::per_cpu(),
            limiter: RateLimiter::new(config.rate_limits.enabled),
            federation: Federation::new(&config.federation),
            shutting_down: watch::Sender::new(false),
            blobs: std::sync::OnceLock::new(),
            blobs_opening: parking_lot::Mutex::new(()),
            media_root: config.server.data_dir.join("media"),
            previewer: std::sync::OnceLock::new(),
            preview_config: config.media.url_preview.clone(),
            thumbnailing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, usize::from),
            )),
        }
    }

    /// The media blob store under `<data_dir>/media`.
    pub(crate) fn blobs(&self) -> Result<&BlobStore> {
        if let Some(blobs) = self.blobs.get() {
            return Ok(blobs);
        }
        // Opening clears the store's temporary files: it must happen once, not once per
        // racing first use (which would remove another's upload in progress).
        let _opening = self.blobs_opening.lock();
        if let Some(blobs) = self.blobs.get() {
            return Ok(blobs);
        }
        let opened = BlobStore::open(&self.media_root).map_err(|e| {
            Error::Internal(format!(
                "cannot open the media store {}: {e}",
                self.media_root.display()
            ))
        })?;
        Ok(self.blobs.get_or_init(|| opened))
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    pub(crate) fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    /// A turn at making a thumbnail, held while it is made.
    pub(crate) async fn thumbnail_turn(&self) -> Result<OwnedSemaphorePermit> {
        self.thumbnailing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(format!("thumbnail turns unavailable: {e}")))
    }

    /// The URL preview fetcher; `None` when the platform's previews are off.
    pub(crate) fn previewer(&self) -> Result<Option<&Previewer>> {
        if !self.preview_config.enabled {
            return Ok(None);
        }
        if let Some(previewer) = self.previewer.get() {
            return Ok(Some(previewer));
        }
        let built = Previewer::new(&self.preview_config)
            .map_err(|e| Error::Internal(format!("cannot start URL previews: {e}")))?;
        Ok(Some(self.previewer.get_or_init(|| built)))
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

    pub(crate) fn federation(&self) -> &Federation {
        &self.federation
    }
}

/// Bounds the password hashes (argon2id) running at once across all tenants: each takes
/// `passwords.memory_kib` and a core for tens of milliseconds, so a burst of logins on one
/// tenant queues here instead of taking every core and hundreds of MiB from the others. Each
/// tenant hashes through a [`Hashing::share`] of it, so one tenant's burst can't hold every
/// slot either: it leaves at least one to the others.
#[derive(Clone)]
pub(crate) struct Hashing {
    slots: Arc<Semaphore>,
    capacity: usize,
    /// The tenant's own bound, for a share.
    share: Option<Arc<Semaphore>>,
}

impl Hashing {
    /// One hash at a time per CPU.
    fn per_cpu() -> Self {
        Self::with_slots(std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub(crate) fn with_slots(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            capacity: slots,
            share: None,
        }
    }

    /// The slots as one tenant uses them: at most half of them (at least one) at once.
    pub(crate) fn share(&self) -> Self {
        let mine = self
            .capacity
            .div_ceil(2)
            .min(self.capacity.saturating_sub(1))
            .max(1);
        Self {
            share: Some(Arc::new(Semaphore::new(mine))),
            ..self.clone()
        }
    }

    /// Runs the blocking work `f` on the blocking pool once a slot (of the share, then of the
    /// platform) is free. The slots move into the blocking task, so a caller that gives up
    /// waiting (a dropped request) frees them only when the work it started has really
    /// finished.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let unavailable = |e: tokio::sync::AcquireError| {
            Error::Internal(format!("password {what} slot unavailable: {e}"))
        };
        let share: Option<OwnedSemaphorePermit> = match &self.share {
            Some(share) => Some(
                Arc::clone(share)
                    .acquire_owned()
                    .await
                    .map_err(unavailable)?,
            ),
            None => None,
        };
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        tokio::task::spawn_blocking(move || {
            let result = f();
            drop((slot, share));
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("password {what} task failed: {e}")))
    }

    #[cfg(test)]
    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tenants_burst_leaves_a_slot_to_the_others() {
        let platform = Hashing::with_slots(2);
        let (busy, other) = (platform.share(), platform.share());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let first = {
            let busy = busy.clone();
            tokio::spawn(async move { busy.run("test", move || released.recv().is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let busy = busy.clone();
            tokio::spawn(async move { busy.run("test", || true).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !second.is_finished(),
            "the busy tenant's second hash waits for its share"
        );
        let others = tokio::time::timeout(Duration::from_secs(5), other.run("test", || true))
            .await
            .expect("another tenant hashes meanwhile");
        assert!(others.expect("ran"));
        release.send(()).expect("release");
        assert!(first.await.expect("task").expect("ran"));
        assert!(second.await.expect("task").expect("ran"));
        assert_eq!(
            platform.semaphore().available_permits(),
            2,
            "no slot leaked"
        );
    }
}
