//! The storage backend the configuration asks for: SQLite files under the data dir, or
//! PostgreSQL when `database.url` is set. The binary picks it; core only sees the contract.
//! Also the lock that keeps a second server off a PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use maas_core::config::Config;
use maas_core::store::Backend;
use maas_store::postgres::{PostgresBackend, PostgresOptions};
use maas_store::sqlite::{SqliteBackend, SqliteOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use tokio::task::JoinHandle;

/// The PostgreSQL advisory lock of "one maas serve per database" (the bytes of `maas_srv`).
/// It is distinct from the keys sqlx derives for its migration lock.
const DATABASE_LOCK_KEY: i64 = 0x6d61_6173_5f73_7276;

/// How often the lock's connection is checked, and the lock taken again if it was lost.
const DATABASE_LOCK_CHECK: Duration = Duration::from_secs(30);

/// How long a taken lock is tried again before the server refuses to start.
const DATABASE_LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// One server per PostgreSQL database, as the data directory's lock is one per directory: two
/// servers with different data directories but one `database.url` would both write every
/// tenant's schema. The lock is a session-level advisory lock, held by a connection of its own
/// for as long as the server runs; PostgreSQL releases it when that connection ends, however
/// the process ends. Scale-out replaces it with per-tenant leases in the control plane.
pub struct DatabaseLock {
    watchdog: JoinHandle<()>,
}

impl Drop for DatabaseLock {
    fn drop(&mut self) {
        // The task owns the connection: ending it closes the connection, releasing the lock.
        self.watchdog.abort();
    }
}

/// Takes the database's lock when the configuration names a PostgreSQL database, or says
/// which server holds it.
pub async fn lock_database(config: &Config) -> anyhow::Result<Option<DatabaseLock>> {
    let Some(url) = config.database.url.as_deref() else {
        return Ok(None);
    };
    let options: PgConnectOptions = url
        .parse()
        .context("database.url is not a PostgreSQL URL")?;
    // The name shows in pg_stat_activity, which is how a refused server names the holder.
    let options = options.application_name(&format!("maas serve pid {}", std::process::id()));
    let conn = take_database_lock(&options).await?;
    let watchdog = tokio::spawn(watch_database_lock(conn, options));
    Ok(Some(DatabaseLock { watchdog }))
}

async fn take_database_lock(options: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .context("cannot connect to the PostgreSQL database (database.url)")?;
    // A server that has just ended may hold the lock a moment longer: its session ends when
    // PostgreSQL reads the end of its connection. So a taken lock is tried a few more times
    // before the refusal (a restart right after a crash must not be refused).
    let give_up = tokio::time::Instant::now() + DATABASE_LOCK_PATIENCE;
    loop {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(DATABASE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .context("cannot lock the PostgreSQL database")?;
        if locked {
            return Ok(conn);
        }
        if tokio::time::Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap_or_default();
    // Best effort: naming the holder needs the right to see its session.
    let holder = database_lock_holder(&mut conn).await.unwrap_or_default();
    anyhow::bail!(
        "another maas serve{holder} uses the PostgreSQL database {database}; stop it first \
         (one server per database until several can share one)"
    )
}

/// ` (pid N, connected from ADDR)` of the session holding the lock, from its application
/// name; empty when it can't be seen.
async fn database_lock_holder(conn: &mut PgConnection) -> anyhow::Result<String> {
    let holder: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.application_name::text, host(a.client_addr) \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid::bigint = $1 AND l.objid::bigint = $2",
    )
    .bind(DATABASE_LOCK_KEY >> 32)
    .bind(DATABASE_LOCK_KEY & 0xffff_ffff)
    .fetch_optional(conn)
    .await?;
    let Some((name, addr)) = holder else {
        return Ok(String::new());
    };
    let pid = name
        .as_deref()
        .and_then(|n| n.strip_prefix("maas serve pid "));
    Ok(match (pid, addr) {
        (Some(pid), Some(addr)) => format!(" (pid {pid}, connected from {addr})"),
        (Some(pid), None) => format!(" (pid {pid})"),
        (None, _) => String::new(),
    })
}

/// Keeps the lock's connection alive, and takes the lock again if the connection was lost
/// (PostgreSQL restarted, a network cut, an `idle_session_timeout`): without it, a second
/// server could start on the database unseen.
async fn watch_database_lock(mut conn: PgConnection, options: PgConnectOptions) {
    let mut lost = false;
    loop {
        tokio::time::sleep(DATABASE_LOCK_CHECK).await;
        if !lost && conn.execute("SELECT 1").await.is_ok() {
            continue;
        }
        match take_database_lock(&options).await {
            Ok(again) => {
                conn = again;
                lost = false;
                tracing::warn!(
                    "the connection holding the PostgreSQL database lock was lost; it is held again"
                );
            }
            Err(error) => {
                lost = true;
                tracing::error!(error = %format!("{error:#}"), "the PostgreSQL database lock is lost; another server may use the database");
            }
        }
    }
}

pub async fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    // `Config::check` made sure it is a postgres:// URL.
    let Some(url) = config.database.url.as_deref() else {
        return open_sqlite(config).await;
    };
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
