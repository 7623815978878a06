//! Writes of several statements on a pooled connection's own SQLite handle. sqlx runs every
//! statement on the connection's thread, one hand-off there and back each, which under load
//! costs more than the statements; holding the handle runs them back to back on this thread.

use rusqlite::{ErrorCode, TransactionBehavior};
use sqlx::sqlite::SqlitePool;

use crate::{Result, StoreError};

/// Runs `write` in one `BEGIN IMMEDIATE` transaction on a connection of `pool`, committing
/// when it returns `Ok` and rolling back otherwise.
pub(crate) async fn write<T>(
    pool: &SqlitePool,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let mut conn = pool.acquire().await?;
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    blocking(|| {
        // SAFETY: sqlx's connection thread is locked out of the handle until `handle` drops,
        // which is after `db` and every statement prepared on it are gone; a connection made
        // from a handle doesn't close it.
        let mut db = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }?;
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = write(&tx)?;
        tx.commit()?;
        Ok(out)
    })
}

/// Runs `f`, which blocks on SQLite (and, when durable, an fsync), without stalling the other
/// tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
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
