//! Storage of maas: the SQLite and PostgreSQL backends of the storage contract that
//! `maas_core::store` defines. The control plane (tenants and their hosts) is one database;
//! every tenant has a database of its own. The binary opens one backend and hands it to core.

mod batch;
mod export;
pub mod postgres;
mod retention;
mod rows;
pub mod sqlite;

// The contract the backends implement, under the names their code and tests use.
pub use maas_core::store::*;

/// A failed schema migration, told apart from other database errors: the operator must act.
pub(crate) fn migration_failed(err: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(Box::new(err))
}
