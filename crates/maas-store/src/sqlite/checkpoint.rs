//! WAL checkpoints off the write path. SQLite copies the write-ahead log back into the
//! database in the connection whose commit crosses `wal_autocheckpoint` pages, so one commit
//! in a few dozen would wait for megabytes of writes and an fsync. Tenants instead checkpoint
//! on another connection in the background after every few event batches, and keep the
//! automatic checkpoint only as a backstop for the log's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use sqlx::sqlite::SqlitePool;

/// Event batches committed between two background checkpoints.
const BATCHES_PER_CHECKPOINT: u32 = 32;

/// Log pages past which the committing connection checkpoints itself (4 KiB pages: 16 MiB);
/// background checkpoints keep the log well below it.
pub(super) const AUTOCHECKPOINT_PAGES: u32 = 4000;

#[derive(Default)]
pub(super) struct Checkpoints {
    batches: AtomicU32,
    running: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Counts a committed batch, and starts a passive checkpoint (one that never blocks
    /// readers or writers) once enough have been, unless one is still running.
    pub(super) fn after_commit(&self, pool: &SqlitePool) {
        if self.batches.fetch_add(1, Ordering::AcqRel) + 1 < BATCHES_PER_CHECKPOINT {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.batches.store(0, Ordering::Release);
        let pool = pool.clone();
        let running = self.running.clone();
        tokio::spawn(async move {
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // The backstop checkpoint still bounds the log; nothing is lost.
                tracing::warn!(error = %err, "background WAL checkpoint failed");
            }
            running.store(false, Ordering::Release);
        });
    }
}
