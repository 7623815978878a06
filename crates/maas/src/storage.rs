//! The storage backend the configuration asks for: SQLite files under the data dir, or
//! PostgreSQL when `database.url` is set. The binary picks it; core only sees the contract.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use maas_core::config::Config;
use maas_core::store::Backend;
use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::{SqliteBackend, SqliteOptions};

pub async fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    let Some(url) = config.database.url.as_deref() else {
        return open_sqlite(config).await;
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("database.url must be a postgres:// URL");
    }
    let options = PostgresOptions {
        max_connections: config.database.max_connections,
        per_tenant_connections: config.database.per_tenant_connections,
    };
    let backend = PostgresBackend::open(url, options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot open the PostgreSQL database")?;
    Ok(Arc::new(backend))
}

async fn open_sqlite(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    let sqlite = &config.database.sqlite;
    let options = SqliteOptions {
        durable: config.database.durable,
        tenant_connections: sqlite.connections,
        tenant_idle_timeout: Duration::from_secs(sqlite.idle_connection_secs.max(1)),
        tenant_cache_kib: sqlite.cache_kib,
        tenant_statement_cache: sqlite.statement_cache,
    };
    let backend = SqliteBackend::open_with_options(&config.server.data_dir, options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot open the SQLite data directory")?;
    Ok(Arc::new(backend))
}
