//! Threads that store event batches for tenants whose store commits on the calling thread
//! (SQLite). Each runs a single-threaded runtime, so a commit runs right there, back to back
//! with the next, instead of each one making a runtime worker hand its other tasks to a
//! fresh thread (`block_in_place`, ~0.1 ms a batch). One thread per CPU serves all tenants;
//! they end with the platform's runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub(crate) struct CommitThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping these ends the threads (and the tasks still on them).
    _stops: Vec<oneshot::Sender<()>>,
}

impl CommitThreads {
    /// One thread per CPU; none when they cannot be started (tasks then run on the caller's
    /// runtime).
    pub(crate) fn start() -> Self {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let (handles, stops) = (0..count).filter_map(start_one).unzip();
        Self {
            handles,
            next: AtomicUsize::new(0),
            _stops: stops,
        }
    }

    /// Runs `task` on one of the threads, taken in turn; on the current runtime when there
    /// are none.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if self.handles.is_empty() {
            tokio::spawn(task);
            return;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }
}

/// A thread running a single-threaded runtime until its stop sender is dropped.
fn start_one(index: usize) -> Option<(Handle, oneshot::Sender<()>)> {
    let runtime = match Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::warn!(error = %err, "cannot start a commit thread's runtime");
            return None;
        }
    };
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name(format!("commit-{index}"))
        .spawn(move || {
            // Either outcome (sent or dropped) means the platform is gone.
            let _ = runtime.block_on(stopped);
        });
    if let Err(err) = started {
        tracing::warn!(error = %err, "cannot start a commit thread");
        return None;
    }
    Some((handle, stop))
}
