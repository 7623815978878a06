//! The server configuration: every key has a default, so `maas serve` needs no file. The
//! binary layers a TOML file and `MAAS_<SECTION>__<KEY>` environment variables over these.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub operator: OperatorConfig,
    pub passwords: PasswordConfig,
    pub rate_limits: RateLimitConfig,
    pub limits: LimitsConfig,
    pub tenants: TenantsConfig,
    pub retention: RetentionConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Port other servers reach us on, used in the default `/.well-known/matrix/server`.
    pub federation_port: u16,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy in front of maas.
    pub behind_proxy: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            data_dir: PathBuf::from("./maas-data"),
            federation_port: 443,
            behind_proxy: false,
        }
    }
}

/// Where tenants are stored: SQLite files under the data dir unless a PostgreSQL URL is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://user@host/db` selects PostgreSQL: the control plane and every tenant in
    /// schemas of that one database.
    pub url: Option<String>,
    /// Connections of the shared PostgreSQL pool.
    pub max_connections: u32,
    /// Connections one tenant may hold at once.
    pub per_tenant_connections: u32,
    /// SQLite: fsync every commit before acknowledging it, so acknowledged writes survive
    /// power loss, not only a crash of the process. Concurrent writes share one fsync (group
    /// commit). PostgreSQL follows its own server settings (`synchronous_commit`).
    pub durable: bool,
    /// How each tenant's SQLite database is opened (not used with PostgreSQL).
    pub sqlite: SqliteTenantConfig,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 32,
            per_tenant_connections: 4,
            durable: false,
            sqlite: SqliteTenantConfig::default(),
        }
    }
}

/// Sizing of the connections to one tenant's SQLite file. Every open connection has a thread,
/// two file descriptors and its own caches, and thousands of tenants may be loaded at once;
/// the control database keeps SQLite's defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SqliteTenantConfig {
    /// Connections one tenant may hold at once: one writes, the others read (or checkpoint
    /// the write-ahead log) alongside.
    pub connections: u32,
    /// An unused connection is closed after between this and twice this many seconds.
    pub idle_connection_secs: u64,
    /// SQLite page cache of each connection, in KiB.
    pub cache_kib: u32,
    /// Prepared statements each connection keeps.
    pub statement_cache: usize,
}

impl Default for SqliteTenantConfig {
    fn default() -> Self {
        Self {
            connections: 3,
            idle_connection_secs: 15,
            cache_kib: 512,
            statement_cache: 40,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OperatorConfig {
    /// Operator API token; when unset one is generated into `<data_dir>/operator.token`.
    pub token: Option<String>,
}

/// argon2id parameters (RFC 9106 names).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordConfig {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        // OWASP's recommended argon2id minimum (19 MiB, 2 passes, 1 lane).
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub login_per_ip: Bucket,
    pub login_per_user: Bucket,
    pub register_per_ip: Bucket,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            login_per_ip: Bucket {
                per_second: 0.17,
                burst: 5,
            },
            login_per_user: Bucket {
                per_second: 0.17,
                burst: 5,
            },
            register_per_ip: Bucket {
                per_second: 0.17,
                burst: 5,
            },
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Largest accepted request body for JSON endpoints, in bytes.
    pub max_request_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantsConfig {
    /// A loaded tenant unused this long is unloaded (its database closed).
    pub idle_unload_secs: u64,
    /// Tenants loaded at once at most; loading one more first unloads the least recently
    /// used. 0 derives it from the limit on open files (each loaded SQLite tenant holds a few).
    pub max_loaded: usize,
    /// How long a user-interactive auth session stays valid.
    pub uia_session_secs: u64,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            idle_unload_secs: 600,
            max_loaded: 0,
            uia_session_secs: 900,
        }
    }
}

/// What each loaded tenant prunes, and when (core's `maintenance`). Unread notifications are
/// never pruned: only what no count, no sync token within the retention and no client can ask
/// for any more.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Seconds between two pruning passes over the loaded tenants; 0 turns pruning off.
    pub interval_secs: u64,
    /// Notifications a user has read stay this long (for `GET /notifications`), then go.
    pub notifications_secs: u64,
    /// Device list changes stay this long. A client syncing with an older token is told that
    /// every user it shares a room with may have changed (it queries their keys again).
    pub device_lists_secs: u64,
}

/// Thirty days, in seconds.
const THIRTY_DAYS_SECS: u64 = 30 * 24 * 3600;

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            notifications_secs: THIRTY_DAYS_SECS,
            device_lists_secs: THIRTY_DAYS_SECS,
        }
    }
}
