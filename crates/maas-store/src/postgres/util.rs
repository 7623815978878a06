//! Helpers shared by the PostgreSQL stores: connections bound to a tenant's schema, error
//! mapping and integer conversions.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::{AssertSqlSafe, Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Result, StoreError};

/// A pooled connection whose `search_path` is one schema, counted against that schema's cap.
pub(super) struct SchemaConn {
    conn: PoolConnection<Postgres>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for SchemaConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for SchemaConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Access to one schema through the shared pool.
#[derive(Clone)]
pub(super) struct Schema {
    pool: PgPool,
    name: String,
    permits: Arc<Semaphore>,
}

impl Schema {
    pub(super) fn new(pool: PgPool, name: String, max_connections: u32) -> Self {
        let permits = Arc::new(Semaphore::new(max_connections.max(1) as usize));
        Self {
            pool,
            name,
            permits,
        }
    }

    /// A connection set to this schema. Every use sets `search_path` afresh: pooled
    /// connections are shared by all tenants, and PostgreSQL re-plans prepared statements
    /// when `search_path` changes, so no statement can reach another tenant's tables.
    pub(super) async fn conn(&self) -> Result<SchemaConn> {
        let permit = self.permit().await?;
        let mut conn = self.pool.acquire().await?;
        conn.execute(AssertSqlSafe(format!(
            "SET search_path TO \"{}\"",
            self.name
        )))
        .await?;
        Ok(SchemaConn {
            conn,
            _permit: permit,
        })
    }

    /// A transaction on a connection of this schema. Callers `commit()`; dropping rolls back.
    pub(super) async fn begin(&self) -> Result<SchemaTx> {
        // Begun on the pool, because sqlx only hands out an owned (`'static`) transaction from
        // there; `SET LOCAL` then binds the schema for exactly this transaction.
        let permit = self.permit().await?;
        let mut tx = self.pool.begin().await?;
        tx.execute(AssertSqlSafe(format!(
            "SET LOCAL search_path TO \"{}\"",
            self.name
        )))
        .await?;
        Ok(SchemaTx {
            tx,
            _permit: permit,
        })
    }

    /// A place under this schema's connection cap.
    async fn permit(&self) -> Result<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Corrupt("connection limiter closed".into()))
    }
}

/// A transaction on a schema connection.
pub(super) struct SchemaTx {
    // Kept alive for the transaction; the transaction borrows nothing from it because it owns
    // the pooled connection through `Transaction<'static, _>`.
    tx: Transaction<'static, Postgres>,
    _permit: OwnedSemaphorePermit,
}

impl SchemaTx {
    pub(super) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub(super) async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for SchemaTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for SchemaTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// Turns a unique or primary key violation into `Conflict(what)`; other errors stay as they are.
pub(super) fn conflict(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => err.into(),
    }
}

/// Whether a unique violation was raised by the named constraint.
pub(super) fn violates(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

pub(super) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

pub(super) fn found(rows_affected: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

pub(super) fn to_u64(value: i64, column: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is negative: {value}")))
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
