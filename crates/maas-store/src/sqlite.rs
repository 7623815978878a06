//! SQLite backend: the control plane in `<data_dir>/control.db`, every tenant in its own file
//! `<data_dir>/tenants/<tenant_id>/homeserver.db`, so a tenant can be backed up, measured or
//! removed on its own and tenants never wait on each other's write lock.

mod admin;
mod checkpoint;
mod control;
mod e2ee;
mod export;
mod federation;
mod media;
mod push;
mod raw;
mod reports;
mod retention;
mod rooms;
mod tenant;
mod usage;
mod util;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor};

use crate::{Backend, ControlStore, Result, StoreError, TenantStore};

pub use control::SqliteControlStore;
pub use tenant::SqliteTenantStore;

static CONTROL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite/control");
static TENANT_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite/tenant");

/// Writers queue on SQLite's single write lock; wait this long before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The control plane is one database for the whole process: it keeps SQLite's defaults.
const CONTROL_MAX_CONNECTIONS: u32 = 4;

/// How tenant databases are opened. Thousands of tenants may be loaded at once, each with its
/// own pool, and every open connection costs a thread (sqlx runs each SQLite connection on
/// one), two file descriptors (database and WAL; the shared-memory index is one more per
/// database) and its own caches. So tenant pools are small, keep small caches and let idle
/// connections go soon; a busy tenant keeps its connections open and warm.
#[derive(Clone, Copy, Debug)]
pub struct SqliteOptions {
    /// fsync every commit (`synchronous = FULL`), so it survives power loss too.
    pub durable: bool,
    /// Connections one tenant's pool may hold: one writes at a time (SQLite's write lock),
    /// the others read or checkpoint alongside it.
    pub tenant_connections: u32,
    /// An unused tenant connection is closed after between this and twice this long.
    pub tenant_idle_timeout: Duration,
    /// Page cache of one tenant connection, in KiB (SQLite's default is 2000). Pages are
    /// cached as they are read, so a small database never reaches it; past it, reads come
    /// from the operating system's file cache.
    pub tenant_cache_kib: u32,
    /// Prepared statements one tenant connection keeps (sqlx's default is 100). Each holds
    /// its compiled program, a few KiB; statements beyond it are prepared again when used.
    pub tenant_statement_cache: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durable: false,
            tenant_connections: 3,
            tenant_idle_timeout: Duration::from_secs(15),
            tenant_cache_kib: 512,
            tenant_statement_cache: 40,
        }
    }
}

/// The SQLite backend rooted at one data directory.
pub struct SqliteBackend {
    data_dir: PathBuf,
    control: Arc<SqliteControlStore>,
    options: SqliteOptions,
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
        let options = SqliteOptions {
            durable,
            ..SqliteOptions::default()
        };
        Self::open_with_options(data_dir, options).await
    }

    /// As [`SqliteBackend::open`], with tenant databases opened as `options` say.
    pub async fn open_with_options(
        data_dir: &Path,
        options: SqliteOptions,
    ) -> Result<SqliteBackend> {
        tokio::fs::create_dir_all(data_dir.join("tenants")).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(CONTROL_MAX_CONNECTIONS)
            // A local file doesn't go away like a network peer: no ping before every use.
            .test_before_acquire(false)
            .connect_with(connect_options(
                &data_dir.join("control.db"),
                options.durable,
            ))
            .await?;
        CONTROL_MIGRATIONS
            .run(&pool)
            .await
            .map_err(crate::migration_failed)?;
        Ok(SqliteBackend {
            data_dir: data_dir.to_path_buf(),
            control: Arc::new(SqliteControlStore::new(pool)),
            options: SqliteOptions {
                tenant_connections: options.tenant_connections.max(1),
                ..options
            },
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
        let options = &self.options;
        let connect = connect_options(&dir.join("homeserver.db"), options.durable)
            .pragma(
                "wal_autocheckpoint",
                checkpoint::AUTOCHECKPOINT_PAGES.to_string(),
            )
            .statement_cache_capacity(options.tenant_statement_cache)
            // Negative: a size in KiB rather than in pages.
            .pragma("cache_size", format!("-{}", options.tenant_cache_kib));
        // Lazy: the first connection is opened by the migration check below, and is then the
        // one the tenant's first requests reuse.
        let pool = SqlitePoolOptions::new()
            .max_connections(options.tenant_connections)
            .min_connections(0)
            .idle_timeout(options.tenant_idle_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        let writer = raw::Direct::new(dir.join("homeserver.db"), *options);
        let reader = raw::Direct::new(dir.join("homeserver.db"), *options);
        let migrated = match pool.acquire().await {
            Ok(mut conn) => migrate_tenant(&mut conn).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = migrated {
            pool.close().await;
            return Err(err);
        }
        Ok(Arc::new(SqliteTenantStore::new(pool, writer, reader)))
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

/// Brings a tenant database up to [`TENANT_MIGRATIONS`]. A full sqlx run reads and checks
/// its whole migration table on every open; a tenant is opened again on its first request
/// after each idle unload, so the outcome of a successful run is remembered in the database
/// header (`PRAGMA user_version`, otherwise unused) as a fingerprint of the migrations it
/// applied. When it matches this build's migrations the database is current and one read of
/// the header suffices; any other value (a new database, a build with more or changed
/// migrations) gets the full run, with sqlx's checks, and then the new fingerprint.
async fn migrate_tenant(conn: &mut SqliteConnection) -> Result<()> {
    let fingerprint = migrations_fingerprint(&TENANT_MIGRATIONS);
    let current: i32 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    if current == fingerprint {
        return Ok(());
    }
    TENANT_MIGRATIONS
        .run_direct(None, &mut *conn, false)
        .await
        .map_err(crate::migration_failed)?;
    conn.execute(AssertSqlSafe(format!(
        "PRAGMA user_version = {fingerprint}"
    )))
    .await?;
    Ok(())
}

/// A non-zero 32-bit digest (FNV-1a) of every migration's version and checksum, so it changes
/// whenever a migration is added or edited. A fresh database has `user_version` 0.
fn migrations_fingerprint(migrator: &Migrator) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for migration in migrator.iter() {
        let kind = [u8::from(migration.migration_type.is_down_migration())];
        let version = migration.version.to_le_bytes();
        for byte in version.iter().chain(&kind).chain(migration.checksum.iter()) {
            hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
        }
    }
    // `user_version` is a signed 32-bit integer; the cast keeps every bit.
    match hash.cast_signed() {
        0 => 1,
        fingerprint => fingerprint,
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
