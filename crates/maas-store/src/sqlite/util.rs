//! Helpers shared by the SQLite stores: error mapping, integer conversions and write
//! transactions.

use sqlx::Transaction;
use sqlx::sqlite::{Sqlite, SqlitePool};

use crate::{Result, StoreError};

/// Starts a transaction that takes the write lock at once. A deferred transaction that reads
/// first and writes later fails with SQLITE_BUSY (without waiting) when another writer got in
/// between; taking the lock up front makes it wait in the busy handler instead.
pub(super) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Turns a unique or primary key violation into `Conflict(what)`; other errors stay as they are.
pub(super) fn conflict(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => err.into(),
    }
}

/// Whether a unique violation was raised by `column` (SQLite names it as `table.column`).
pub(super) fn violates(err: &sqlx::Error, column: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.message().contains(column))
}

/// Whether a row was written pointing at a row that doesn't exist.
pub(super) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// `Ok` when an update touched a row, `NotFound(what)` otherwise.
pub(super) fn found(rows_affected: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// SQLite integers are signed; a negative count can only come from a damaged database.
pub(super) fn to_u64(value: i64, column: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is negative: {value}")))
}

/// Counts beyond `i64::MAX` can't be reached anyway, so they are stored as `i64::MAX`.
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Serialising plain records can't fail in practice; `Corrupt` is the nearest variant if it did.
pub(super) fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// JSON columns that don't parse mean the database was damaged or written by something else.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
