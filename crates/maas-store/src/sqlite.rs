//! SQLite backend: the control plane in `<data_dir>/control.db`, every tenant in its own file
//! `<data_dir>/tenants/<tenant_id>/homeserver.db`, so a tenant can be backed up, measured or
//! removed on its own and tenants never wait on each other's write lock.

mod control;
mod e2ee;
mod export;
mod push;
mod rooms;
mod tenant;
mod util;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, ControlStore, Result, StoreError, TenantStore};

pub use control::SqliteControlStore;
pub use tenant::SqliteTenantStore;

static CONTROL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite/control");
static TENANT_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite/tenant");

/// Writers queue on SQLite's single write lock; wait this long before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const CONTROL_MAX_CONNECTIONS: u32 = 4;
/// Thousands of tenants may be open at once, each with its own pool, so tenant pools stay
/// small and let idle connections (one thread each) go.
const TENANT_MAX_CONNECTIONS: u32 = 4;
const TENANT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The SQLite backend rooted at one data directory.
pub struct SqliteBackend {
    data_dir: PathBuf,
    control: Arc<SqliteControlStore>,
    durable: bool,
}

impl SqliteBackend {
    /// Opens (creating and migrating when new) the control plane under `data_dir`; commits
    /// survive a crash of the process, not necessarily of the machine.
    pub async fn open(data_dir: &Path) -> Result<SqliteBackend> {
        Self::open_with(data_dir, false).await
    }

    /// As [`SqliteBackend::open`]; with `durable`, every commit is fsynced before it returns,
    /// so it also survives power loss.
    pub async fn open_with(data_dir: &Path, durable: bool) -> Result<SqliteBackend> {
        tokio::fs::create_dir_all(data_dir.join("tenants")).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(CONTROL_MAX_CONNECTIONS)
            .connect_with(connect_options(&data_dir.join("control.db"), durable))
            .await?;
        CONTROL_MIGRATIONS.run(&pool).await?;
        Ok(SqliteBackend {
            data_dir: data_dir.to_path_buf(),
            control: Arc::new(SqliteControlStore::new(pool)),
            durable,
        })
    }

    /// The directory holding everything of one tenant.
    fn tenant_dir(&self, tenant_id: &str) -> Result<PathBuf> {
        if !is_safe_tenant_id(tenant_id) {
            // The id becomes a path component: never let it climb out of `tenants/`.
            return Err(StoreError::NotFound(format!(
                "invalid tenant id {tenant_id:?}"
            )));
        }
        Ok(self.data_dir.join("tenants").join(tenant_id))
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn control(&self) -> Arc<dyn ControlStore> {
        self.control.clone()
    }

    async fn open_tenant(&self, tenant_id: &str) -> Result<Arc<dyn TenantStore>> {
        let dir = self.tenant_dir(tenant_id)?;
        tokio::fs::create_dir_all(&dir).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(TENANT_MAX_CONNECTIONS)
            .min_connections(0)
            .idle_timeout(TENANT_IDLE_TIMEOUT)
            .connect_with(connect_options(&dir.join("homeserver.db"), self.durable))
            .await?;
        if let Err(err) = TENANT_MIGRATIONS.run(&pool).await {
            pool.close().await;
            return Err(err.into());
        }
        Ok(Arc::new(SqliteTenantStore::new(pool)))
    }

    async fn destroy_tenant(&self, tenant_id: &str) -> Result<()> {
        let dir = self.tenant_dir(tenant_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    async fn close(&self) {
        // SQLite checkpoints the WAL into the database when its last connection closes.
        self.control.close().await;
    }
}

/// Connection settings shared by the control plane and the tenants.
fn connect_options(path: &Path, durable: bool) -> SqliteConnectOptions {
    // In WAL mode a commit is written to the log before it returns, so NORMAL survives the
    // process being killed; only FULL also fsyncs the log, surviving power loss.
    let synchronous = if durable {
        SqliteSynchronous::Full
    } else {
        SqliteSynchronous::Normal
    };
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Whether `id` is usable as a directory name: no separators, no `.`/`..`, nothing hidden.
fn is_safe_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
