//! Tenant connections used straight on SQLite, for event batches, the send path's point
//! lookups and sync's reads. sqlx runs every statement on its connection's own thread,
//! one hand-off there and back each, which under load costs more than the statements; here they
//! run back to back on the caller's thread.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{ErrorCode, TransactionBehavior};

use super::SqliteOptions;
use crate::{Result, StoreError};

/// Reads of up to this many rooms or events run on the caller's thread (`Direct::read_many`):
/// an incremental sync's, which name the few rooms that changed.
pub(crate) const INLINE_IDS: usize = 16;

/// How long a read waits for the connection on the caller's thread: longer than a small read
/// holds it.
const SHORT_WAIT: Duration = Duration::from_micros(200);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// One of a tenant's connections opened directly with rusqlite rather than through sqlx, and
/// used under a lock on the caller's thread. A tenant has two: its writer, for writes of
/// several statements (event batches), and a reader for the point lookups on the send path and
/// sync's reads.
/// The writer is always the same connection, which matters in WAL mode: a connection drops its
/// whole page cache whenever another one has written, so a writer moving between connections
/// would read the indexes it updates from the file every time. Each opens on first use and
/// closes after being unused for the tenant's idle connection timeout.
pub(crate) struct Direct {
    path: PathBuf,
    options: SqliteOptions,
    conn: Mutex<Option<Open>>,
}

struct Open {
    db: rusqlite::Connection,
    last_used: Instant,
}

impl Direct {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Arc<Direct> {
        Arc::new(Direct {
            path,
            options,
            conn: Mutex::new(None),
        })
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`
    /// and rolling back otherwise.
    pub(crate) async fn write<T>(
        self: &Arc<Self>,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        blocking(|| {
            self.with(|db| {
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = write(&tx)?;
                tx.commit()?;
                Ok(out)
            })
        })
    }

    /// Runs `read`, a lookup of a few rows by index, right here: in WAL mode a read never
    /// waits for writers, and such a lookup takes microseconds, less than handing it to
    /// another thread. Another small read holding the connection is waited for here too;
    /// one that holds it longer (a read of many rooms) is waited for off the runtime's
    /// workers.
    pub(crate) async fn read<T>(
        self: &Arc<Self>,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        match self.conn.try_lock_for(SHORT_WAIT) {
            Some(conn) => self.with_locked(conn, |db| read(db)),
            None => blocking(|| self.with(|db| read(db))),
        }
    }

    /// Runs `read`, a read of `ids` rooms or events, right here when they are few (as
    /// `read`), and off the runtime's workers when they are many: an initial sync reads the
    /// timelines and state of hundreds of rooms, milliseconds that must not stall the
    /// requests sharing the worker.
    pub(crate) async fn read_many<T>(
        self: &Arc<Self>,
        ids: usize,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        if ids <= INLINE_IDS {
            return self.read(read).await;
        }
        blocking(|| self.with(|db| read(db)))
    }

    fn with<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        self.with_locked(self.conn.lock(), f)
    }

    fn with_locked<T>(
        self: &Arc<Self>,
        mut conn: MutexGuard<'_, Option<Open>>,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let open = match conn.take() {
            Some(open) => open,
            None => {
                let db = self.open()?;
                self.close_when_idle();
                Open {
                    db,
                    last_used: Instant::now(),
                }
            }
        };
        let open = conn.insert(open);
        open.last_used = Instant::now();
        f(&mut open.db)
    }

    /// Whether the connection waits for a flush to disk on every commit.
    pub(crate) fn durable(&self) -> bool {
        self.options.durable
    }

    /// Closes the connection now (it opens again on the next write).
    pub(crate) fn close(&self) {
        *self.conn.lock() = None;
    }

    /// The settings sqlx gives the tenant's other connections (see `connect_options`); the
    /// journal mode (WAL) is stored in the database itself.
    fn open(&self) -> Result<rusqlite::Connection> {
        let db = rusqlite::Connection::open(&self.path)?;
        db.busy_timeout(super::BUSY_TIMEOUT)?;
        // Every statement the connection runs stays prepared: rusqlite's default keeps 16,
        // fewer than the reader's.
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let synchronous = if self.options.durable {
            "FULL"
        } else {
            "NORMAL"
        };
        db.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -{}; PRAGMA wal_autocheckpoint = {};",
            self.options.tenant_cache_kib,
            super::checkpoint::AUTOCHECKPOINT_PAGES,
        ))?;
        Ok(db)
    }

    /// Closes the connection once it has been unused for the idle timeout.
    fn close_when_idle(self: &Arc<Self>) {
        let this: Weak<Direct> = Arc::downgrade(self);
        let idle = self.options.tenant_idle_timeout;
        tokio::spawn(async move {
            let mut wait = idle;
            loop {
                tokio::time::sleep(wait).await;
                let Some(this) = this.upgrade() else {
                    return;
                };
                let mut conn = this.conn.lock();
                let Some(open) = conn.as_ref() else {
                    return;
                };
                let unused = open.last_used.elapsed();
                if unused >= idle {
                    *conn = None;
                    return;
                }
                wait = idle - unused + Duration::from_millis(1);
            }
        });
    }
}

/// Runs `f`, which blocks on SQLite (and, when durable, an fsync), without stalling the other
/// tasks of a multi-threaded runtime; right here on any other thread (the committer's own
/// threads run a current-thread runtime each, for exactly this).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Every row of `rows`, each mapped by `map`.
pub(crate) fn collect<'stmt, T>(
    mut rows: rusqlite::Rows<'stmt>,
    map: impl Fn(&rusqlite::Row<'stmt>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Turns a unique or primary key violation into `Conflict(what)`.
pub(crate) fn conflict(err: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_constraint(&err, &[UNIQUE, PRIMARY_KEY]) {
        return StoreError::Conflict(what());
    }
    err.into()
}

/// Whether a unique violation was raised by `column` (SQLite names it as `table.column`).
pub(crate) fn violates(err: &rusqlite::Error, column: &str) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(_, Some(message)) if message.contains(column))
}

/// Whether a row was written pointing at a row that doesn't exist.
pub(crate) fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    is_constraint(err, &[FOREIGN_KEY])
}

// Extended result codes (sqlite3.h).
const UNIQUE: i32 = 2067;
const PRIMARY_KEY: i32 = 1555;
const FOREIGN_KEY: i32 = 787;

fn is_constraint(err: &rusqlite::Error, extended: &[i32]) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation && extended.contains(&e.extended_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(dir: &tempfile::TempDir, idle: Duration) -> Arc<Direct> {
        let options = SqliteOptions {
            tenant_idle_timeout: idle,
            ..SqliteOptions::default()
        };
        Direct::new(dir.path().join("t.db"), options)
    }

    #[tokio::test]
    async fn writes_commit_or_roll_back_as_a_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = direct(&dir, Duration::from_secs(60));
        db.write(|tx| Ok(tx.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")?))
            .await
            .expect("create");
        let failed = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                tx.execute("INSERT INTO t VALUES (1)", [])
                    .map_err(|e| conflict(e, || "row 1".into()))?;
                Ok(())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(what)) if what == "row 1"));
        let count: i64 = db
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(count, 0, "the first insert was rolled back with the second");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_of_a_busy_connection_waits_for_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = direct(&dir, Duration::from_secs(60));
        db.write(
            |tx| Ok(tx.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)")?),
        )
        .await
        .expect("create");
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let holder = {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let _busy = db.conn.lock();
                locked_tx.send(()).expect("signal");
                std::thread::sleep(Duration::from_millis(100));
            })
        };
        locked
            .recv()
            .expect("the other thread holds the connection");
        let read = |c: &rusqlite::Connection| Ok(c.query_row("SELECT v FROM t", [], |r| r.get(0))?);
        let value: i64 = db
            .read(read)
            .await
            .expect("read once the connection is free");
        assert_eq!(value, 7);
        let many: i64 = db
            .read_many(INLINE_IDS + 1, read)
            .await
            .expect("read of many ids");
        assert_eq!(many, 7);
        holder.join().expect("holder");
    }

    #[tokio::test]
    async fn the_connection_closes_when_idle_and_opens_again_on_use() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = direct(&dir, Duration::from_millis(100));
        db.write(|tx| Ok(tx.execute_batch("CREATE TABLE t (v INTEGER)")?))
            .await
            .expect("create");
        assert!(db.conn.lock().is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            db.conn.lock().is_none(),
            "still open after the idle timeout"
        );
        db.write(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", []).map(|_| ())?))
            .await
            .expect("insert after reopening");
        assert!(db.conn.lock().is_some());
    }
}
