//! PostgreSQL backend: one database shared by all tenants, the control plane in the schema
//! `maas_control` and every tenant in a schema of its own (`t_<tenant_id>`). One connection
//! pool serves them all; a per-tenant semaphore caps how many connections one tenant holds.

mod admin;
mod control;
mod e2ee;
mod export;
mod federation;
mod media;
mod push;
mod reports;
mod retention;
mod rooms;
mod tenant;
mod usage;
mod util;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

use crate::{Backend, ControlStore, Result, StoreError, TenantStore};

pub use control::PostgresControlStore;
pub use tenant::PostgresTenantStore;

static CONTROL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres/control");
static TENANT_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres/tenant");

pub(crate) const CONTROL_SCHEMA: &str = "maas_control";

/// Sizing of the shared pool.
#[derive(Clone, Copy, Debug)]
pub struct PostgresOptions {
    pub max_connections: u32,
    /// Connections one tenant may hold at once, so one busy tenant can't starve the others.
    pub per_tenant_connections: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 32,
            per_tenant_connections: 4,
        }
    }
}

pub struct PostgresBackend {
    pool: PgPool,
    options: PostgresOptions,
    control: Arc<PostgresControlStore>,
}

/// The schema of a tenant. Tenant ids are generated (`t` + hex) but are checked anyway, since
/// the name is spliced into SQL (the `AssertSqlSafe` calls rely on this check).
pub(crate) fn tenant_schema(tenant_id: &str) -> Result<String> {
    let safe = !tenant_id.is_empty()
        && tenant_id.len() <= 50
        && tenant_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !safe {
        return Err(StoreError::NotFound(format!(
            "invalid tenant id {tenant_id:?}"
        )));
    }
    Ok(format!("t_{tenant_id}"))
}

impl PostgresBackend {
    /// Connects and migrates the control plane. Safe when several nodes start at once: sqlx
    /// takes a PostgreSQL advisory lock around migrations.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self> {
        let connect: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await?;
        migrate_schema(&pool, CONTROL_SCHEMA, &CONTROL_MIGRATIONS).await?;
        let control = Arc::new(PostgresControlStore::new(pool.clone()));
        Ok(Self {
            pool,
            options,
            control,
        })
    }
}

/// Creates `schema` if needed and runs `migrator` inside it, on one connection whose
/// `search_path` is that schema (so sqlx's bookkeeping table lives there too).
async fn migrate_schema(pool: &PgPool, schema: &str, migrator: &Migrator) -> Result<()> {
    let mut conn = pool.acquire().await?;
    // Two nodes creating the schema at once: both pass the IF NOT EXISTS check and the later
    // one fails on the catalog's unique index once the first commits. The schema exists then,
    // which is all this step is for; the migrations below run under sqlx's advisory lock.
    match conn
        .execute(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .await
    {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
        result => {
            result?;
        }
    }
    conn.execute(AssertSqlSafe(format!("SET search_path TO \"{schema}\"")))
        .await?;
    // `run_direct` rather than `run`: `run`'s `Acquire<'a>` bound makes the future of every
    // async-trait method calling this fail to prove `Send` ("implementation of `Acquire` is not
    // general enough"); sqlx keeps `run_direct` public for exactly that.
    let result = migrator.run_direct(None, &mut *conn, false).await;
    if result.is_err() {
        // sqlx returns early without releasing its session-level advisory lock; back in the
        // shared pool, this connection would hold it and block every later migration.
        conn.execute("SELECT pg_advisory_unlock_all()").await?;
    }
    // The connection goes back to the shared pool: leave it in a neutral state.
    conn.execute("RESET search_path").await?;
    result.map_err(crate::migration_failed)
}

#[async_trait]
impl Backend for PostgresBackend {
    fn control(&self) -> Arc<dyn ControlStore> {
        self.control.clone()
    }

    async fn open_tenant(&self, tenant_id: &str) -> Result<Arc<dyn TenantStore>> {
        let schema = tenant_schema(tenant_id)?;
        migrate_schema(&self.pool, &schema, &TENANT_MIGRATIONS).await?;
        Ok(Arc::new(PostgresTenantStore::new(
            self.pool.clone(),
            schema,
            self.options.per_tenant_connections,
        )))
    }

    async fn destroy_tenant(&self, tenant_id: &str) -> Result<()> {
        let schema = tenant_schema(tenant_id)?;
        self.pool
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
