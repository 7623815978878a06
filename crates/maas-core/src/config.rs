//! The server configuration: every key has a default, so `maas serve` needs no file. The
//! binary layers a TOML file and `MAAS_<SECTION>__<KEY>` environment variables over these.
//! Unknown keys are refused (`deny_unknown_fields`): a misspelt key would otherwise leave its
//! setting at the default without a word, such as `[rate_limit]` leaving rate limits on.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub operator: OperatorConfig,
    pub passwords: PasswordConfig,
    pub rate_limits: RateLimitConfig,
    pub limits: LimitsConfig,
    pub tenants: TenantsConfig,
    pub retention: RetentionConfig,
    pub federation: FederationConfig,
    pub media: MediaConfig,
    pub metrics: MetricsConfig,
}

impl Config {
    /// Whether the operator API is served on the public listener rather than on its own:
    /// `operator.listen` is `server.listen`. Port 0 on both means two free ports.
    pub fn operator_on_public_listener(&self) -> bool {
        self.operator.listen == self.server.listen && self.server.listen.port() != 0
    }

    /// Whether the Server-Server API is served on the public listener rather than on its own:
    /// `federation.listen` is `server.listen`. Port 0 on both means two free ports.
    pub fn federation_on_public_listener(&self) -> bool {
        self.federation.listen == self.server.listen && self.server.listen.port() != 0
    }

    /// Refuses values that have the right type but can't work, naming each key: the server
    /// would otherwise start and fail later, on a request, far from the cause.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut require = |ok: bool, key: &str, why: &str| {
            if !ok {
                problems.push(format!("{key}: {why}"));
            }
        };
        require(
            self.server.federation_port != 0,
            "server.federation_port",
            "must be a port from 1 to 65535",
        );
        let db = &self.database;
        require(
            db.max_connections > 0,
            "database.max_connections",
            "must be at least 1",
        );
        require(
            db.per_tenant_connections > 0,
            "database.per_tenant_connections",
            "must be at least 1",
        );
        require(
            db.sqlite.connections > 0,
            "database.sqlite.connections",
            "must be at least 1",
        );
        if let Some(url) = &db.url {
            require(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "database.url",
                "must be a postgres:// URL (leave it unset for SQLite)",
            );
        }
        if let Some(token) = &self.operator.token {
            require(
                !token.trim().is_empty(),
                "operator.token",
                "is set but empty; set a secret or unset it to generate one",
            );
        }
        if let Err(problem) = self.passwords.check() {
            problems.push(problem);
        }
        problems.extend(self.federation_listener_problems());
        problems.extend(self.metrics_listener_problems());
        if let Err(problem) = self.media.url_preview.check() {
            problems.push(problem);
        }
        let limits = &self.rate_limits;
        for (name, bucket) in [
            ("upload_per_user", &limits.upload_per_user),
            ("login_per_ip", &limits.login_per_ip),
            ("login_per_user", &limits.login_per_user),
            ("register_per_ip", &limits.register_per_ip),
        ] {
            problems.extend(bucket.check(&format!("rate_limits.{name}")));
        }
        let mut require = |ok: bool, key: &str, why: &str| {
            if !ok {
                problems.push(format!("{key}: {why}"));
            }
        };
        require(
            self.limits.max_request_bytes > 0,
            "limits.max_request_bytes",
            "must be at least 1",
        );
        require(
            self.media.max_upload_bytes > 0,
            "media.max_upload_bytes",
            "must be at least 1",
        );
        require(
            self.media.max_thumbnail_pixels > 0,
            "media.max_thumbnail_pixels",
            "must be at least 1",
        );
        require(
            self.tenants.uia_session_secs > 0,
            "tenants.uia_session_secs",
            "must be at least 1",
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Config {
    /// What can't work about federation: a notary that is no server name, a certificate
    /// without its key, sharing the operator's listener, or TLS asked of the public listener,
    /// which speaks plain HTTP.
    fn federation_listener_problems(&self) -> Vec<String> {
        let federation = &self.federation;
        let mut problems = Vec::new();
        for notary in &federation.trusted_notaries {
            if ruma::ServerName::parse(notary).is_err() {
                problems.push(format!(
                    "federation.trusted_notaries: {notary:?} is not a server name"
                ));
            }
        }
        if federation.tls_certificate.is_some() != federation.tls_key.is_some() {
            problems.push(
                "federation.tls_certificate, federation.tls_key: set both (the platform's default certificate chain and its private key) or neither".to_owned(),
            );
        }
        // On the public listener, the operator API's place is `operator.listen`'s business.
        let own_listener = federation.listen.port() != 0 && !self.federation_on_public_listener();
        if own_listener && federation.listen == self.operator.listen {
            problems.push(
                "federation.listen: is operator.listen; the operator API must not be served to other servers".to_owned(),
            );
        }
        if self.federation_on_public_listener() && federation.tls {
            problems.push(
                "federation.tls: the public listener (server.listen, which federation.listen names) speaks plain HTTP; set federation.tls = false and terminate TLS in a proxy, or give federation.listen an address of its own".to_owned(),
            );
        }
        problems
    }
}

impl Config {
    /// The metrics listener may share no address with a listener that serves requests from
    /// outside: metrics name every tenant, and are for the operator's Prometheus alone.
    fn metrics_listener_problems(&self) -> Vec<String> {
        let Some(metrics) = self.metrics.listen else {
            return Vec::new();
        };
        if metrics.port() == 0 {
            return Vec::new();
        }
        [
            ("server.listen", self.server.listen),
            ("operator.listen", self.operator.listen),
            ("federation.listen", self.federation.listen),
        ]
        .into_iter()
        .filter(|(_, addr)| *addr == metrics)
        .map(|(key, _)| {
            format!("metrics.listen: is {key}; metrics are served on a listener of their own")
        })
        .collect()
    }
}

/// Prometheus metrics (`GET /metrics`, text format), on a listener of their own, off unless
/// `listen` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where Prometheus scrapes, e.g. `127.0.0.1:9100`; `None` serves no metrics.
    pub listen: Option<SocketAddr>,
    /// Whether series per tenant are served (one set per loaded tenant, labelled with its
    /// server name); off leaves only the platform's series, whatever the number of tenants.
    pub per_tenant: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            per_tenant: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[serde(default, deny_unknown_fields)]
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
#[serde(default, deny_unknown_fields)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// Operator API token; when unset one is generated into `<data_dir>/operator.token`.
    pub token: Option<String>,
    /// Where the operator API listens, apart from the Matrix APIs so that it stays off the
    /// public network unless asked for. The same address as `server.listen` (with a port
    /// other than 0) serves it on the public listener instead, as before it had its own.
    pub listen: SocketAddr,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            token: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8009)),
        }
    }
}

/// argon2id parameters (RFC 9106 names).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordConfig {
    /// What argon2 accepts, named by key: a bad parameter would otherwise fail every login.
    fn check(&self) -> Result<(), String> {
        use argon2::Error;
        let Err(error) =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
        else {
            return Ok(());
        };
        let (key, why) = match error {
            Error::MemoryTooLittle => (
                "passwords.memory_kib",
                "must be at least 8 × passwords.parallelism".to_owned(),
            ),
            Error::MemoryTooMuch => ("passwords.memory_kib", error.to_string()),
            Error::TimeTooSmall => ("passwords.iterations", "must be at least 1".to_owned()),
            Error::ThreadsTooFew => ("passwords.parallelism", "must be at least 1".to_owned()),
            Error::ThreadsTooMany => ("passwords.parallelism", error.to_string()),
            _ => ("passwords", error.to_string()),
        };
        Err(format!("{key}: {why}"))
    }
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
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub login_per_ip: Bucket,
    pub login_per_user: Bucket,
    pub register_per_ip: Bucket,
    /// Media uploads (and created media ids) of one user.
    pub upload_per_user: Bucket,
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
            upload_per_user: Bucket {
                per_second: 1.0,
                burst: 20,
            },
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: u32,
}

impl Bucket {
    /// A bucket that lets requests through now and then: `rate_limits.enabled = false` is the
    /// way to switch limits off, not a bucket that refuses everything or a NaN rate.
    fn check(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            problems.push(format!("{key}.per_second: must be a number above 0"));
        }
        if self.burst == 0 {
            problems.push(format!("{key}.burst: must be at least 1"));
        }
        problems
    }
}

/// Bounds on what one request or connection may take, so that slow or idle clients can't hold
/// the server's connections, memory or shutdown.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body for JSON endpoints, in bytes.
    pub max_request_bytes: usize,
    /// A request's headers must arrive within this many seconds of its first byte (0: no
    /// bound).
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this many seconds of its headers, however steadily
    /// it trickles in (0: no bound).
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight is closed after this many seconds without the
    /// first byte of a new one, also a new connection that sends nothing (0: no bound).
    pub idle_timeout_secs: u64,
    /// Connections one client address may hold open at once; 0 for no bound. Not applied with
    /// `server.behind_proxy`, where every connection comes from the proxy.
    pub max_connections_per_ip: usize,
    /// On shutdown, in-flight requests get this many seconds to finish before the server exits
    /// anyway (long-polling `/sync` requests are answered at once).
    pub shutdown_grace_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 60,
            idle_timeout_secs: 75,
            max_connections_per_ip: 512,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantsConfig {
    /// A loaded tenant unused this long is unloaded (its database closed).
    pub idle_unload_secs: u64,
    /// Tenants loaded at once at most; loading one more first unloads the least recently
    /// used. 0 derives it from the limit on open files (each loaded SQLite tenant holds a few).
    pub max_loaded: usize,
    /// How long a user-interactive auth session stays valid.
    pub uia_session_secs: u64,
    /// A tenant's requests building events or sync responses at once at most; the others of
    /// that tenant wait their turn, so one busy tenant can't take every core from the rest.
    /// 0: the number of CPUs.
    pub work_slots: usize,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            idle_unload_secs: 600,
            max_loaded: 0,
            uia_session_secs: 900,
            work_slots: 0,
        }
    }
}

/// What each loaded tenant prunes, and when (core's `maintenance`). Unread notifications are
/// never pruned: only what no count, no sync token within the retention and no client can ask
/// for any more.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between two pruning passes over the loaded tenants; 0 turns pruning off.
    pub interval_secs: u64,
    /// Notifications a user has read stay this long (for `GET /notifications`), then go.
    pub notifications_secs: u64,
    /// Device list changes stay this long. A client syncing with an older token is told that
    /// every user it shares a room with may have changed (it queries their keys again).
    pub device_lists_secs: u64,
}

/// How tenants reach other servers over federation (spec: Server-Server API).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Servers asked for other servers' signing keys (`/_matrix/key/v2/query`) before the
    /// servers themselves; none by default, so every key comes from its own server.
    pub trusted_notaries: Vec<String>,
    /// Whether outbound requests may go to loopback, private and link-local addresses. Off by
    /// default, so a remote server name can't point our requests into the operator's network;
    /// tests on loopback turn it on.
    pub allow_private_addresses: bool,
    /// PEM files of CA certificates trusted for outbound TLS besides the system's roots.
    pub ca_files: Vec<PathBuf>,
    /// Whether the system's root certificates are trusted for outbound TLS.
    pub system_roots: bool,
    /// Seconds an outbound request may take, connecting included.
    pub request_timeout_secs: u64,
    /// Where other servers reach us: a listener of its own beside the public and operator
    /// ones. The same address as `server.listen` (with a port other than 0) serves the
    /// Server-Server API on the public listener instead, with no TLS of its own.
    pub listen: SocketAddr,
    /// Whether the federation listener speaks TLS (the spec's port 8448 does); off behind a
    /// proxy that terminates TLS and forwards plain HTTP.
    pub tls: bool,
    /// PEM certificate chain presented when a client names no tenant (no SNI, or a name no
    /// tenant with a certificate of its own answers on); with `tls_key`.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    pub tls_key: Option<PathBuf>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            trusted_notaries: Vec::new(),
            allow_private_addresses: false,
            ca_files: Vec::new(),
            system_roots: true,
            request_timeout_secs: 30,
            listen: SocketAddr::from(([0, 0, 0, 0], 8448)),
            tls: true,
            tls_certificate: None,
            tls_key: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_the_check() {
        assert_eq!(Config::default().check(), Ok(()));
        assert!(!Config::default().operator_on_public_listener());
    }

    #[test]
    fn values_that_cannot_work_are_named() {
        let mut config = Config::default();
        config.passwords.parallelism = 0;
        config.database.max_connections = 0;
        config.rate_limits.login_per_ip.per_second = f64::NAN;
        config.rate_limits.register_per_ip.burst = 0;
        config.operator.token = Some("  ".into());
        let problems = config.check().expect_err("refused");
        for key in [
            "passwords.parallelism",
            "database.max_connections",
            "rate_limits.login_per_ip.per_second",
            "rate_limits.register_per_ip.burst",
            "operator.token",
        ] {
            assert!(problems.contains(key), "{key} not in {problems}");
        }
    }

    #[test]
    fn the_operator_api_shares_the_public_listener_only_on_one_real_port() {
        let mut config = Config::default();
        config.operator.listen = config.server.listen;
        assert!(config.operator_on_public_listener());
        config.server.listen.set_port(0);
        config.operator.listen.set_port(0);
        assert!(!config.operator_on_public_listener());
    }

    #[test]
    fn federation_shares_the_public_listener_only_on_one_real_port() {
        let mut config = Config::default();
        assert!(!config.federation_on_public_listener());
        config.federation.listen = config.server.listen;
        assert!(config.federation_on_public_listener());
        config.server.listen.set_port(0);
        config.federation.listen.set_port(0);
        assert!(!config.federation_on_public_listener());
    }

    #[test]
    fn federation_listener_problems_are_named() {
        let check = |edit: &dyn Fn(&mut Config)| {
            let mut config = Config::default();
            edit(&mut config);
            config.check()
        };
        let problems = check(&|c| c.federation.trusted_notaries = vec!["not a name".into()])
            .expect_err("notary");
        assert!(
            problems.contains("federation.trusted_notaries"),
            "{problems}"
        );
        let notary = check(&|c| c.federation.trusted_notaries = vec!["matrix.org".into()]);
        assert_eq!(notary, Ok(()));
        // A certificate needs its key, and the other way round.
        let problems = check(&|c| c.federation.tls_certificate = Some("/c.pem".into()))
            .expect_err("certificate alone");
        assert!(problems.contains("federation.tls_key"), "{problems}");
        let problems =
            check(&|c| c.federation.tls_key = Some("/k.pem".into())).expect_err("key alone");
        assert!(
            problems.contains("federation.tls_certificate"),
            "{problems}"
        );
        assert_eq!(
            check(&|c| {
                c.federation.tls_certificate = Some("/c.pem".into());
                c.federation.tls_key = Some("/k.pem".into());
            }),
            Ok(())
        );
        // The public listener speaks plain HTTP: sharing it means TLS ends in a proxy.
        let problems = check(&|c| c.federation.listen = c.server.listen).expect_err("shared, TLS");
        assert!(problems.contains("federation.tls"), "{problems}");
        assert_eq!(
            check(&|c| {
                c.federation.listen = c.server.listen;
                c.federation.tls = false;
            }),
            Ok(())
        );
        // Never the operator API to other servers.
        let problems =
            check(&|c| c.federation.listen = c.operator.listen).expect_err("operator's listener");
        assert!(problems.contains("federation.listen"), "{problems}");
        // Free ports on both are two listeners.
        assert_eq!(
            check(&|c| {
                c.federation.listen = "127.0.0.1:0".parse().expect("addr");
                c.operator.listen = "127.0.0.1:0".parse().expect("addr");
            }),
            Ok(())
        );
    }

    #[test]
    fn federation_listener_defaults() {
        let federation = FederationConfig::default();
        assert_eq!(federation.listen, SocketAddr::from(([0, 0, 0, 0], 8448)));
        assert!(federation.tls);
        assert_eq!(
            (federation.tls_certificate, federation.tls_key),
            (None, None)
        );
        let parsed: Config = serde_json::from_value(serde_json::json!({
            "federation": {"listen": "127.0.0.1:9448", "tls": false, "tls_certificate": "/c.pem", "tls_key": "/k.pem"}
        }))
        .expect("federation keys");
        assert_eq!(parsed.federation.listen.port(), 9448);
        assert!(!parsed.federation.tls);
        assert_eq!(parsed.federation.tls_key, Some(PathBuf::from("/k.pem")));
        let error = serde_json::from_value::<Config>(
            serde_json::json!({"federation": {"tls_cert": "/c.pem"}}),
        )
        .expect_err("unknown key");
        assert!(error.to_string().contains("tls_cert"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_value::<Config>(serde_json::json!({"rate_limit": {}}))
            .expect_err("unknown section");
        assert!(error.to_string().contains("rate_limit"), "{error}");
        let error = serde_json::from_value::<Config>(
            serde_json::json!({"rate_limits": {"login_per_ip": {"per_second": 1.0, "burst": 1, "brust": 2}}}),
        )
        .expect_err("unknown key in a bucket");
        assert!(error.to_string().contains("brust"), "{error}");
    }

    #[test]
    fn url_preview_ranges_that_mean_nothing_stop_the_start() {
        let mut config = Config::default();
        config.media.url_preview.allowed_ip_ranges = vec!["127.0.0.1/32".into(), "::1".into()];
        assert!(config.check().is_ok());
        config.media.url_preview.denied_ip_ranges = vec!["10.0.0.0/33".into()];
        let problem = config.check().expect_err("a range that is none");
        assert!(
            problem.contains("media.url_preview.denied_ip_ranges")
                && problem.contains("10.0.0.0/33"),
            "{problem}"
        );
    }
}

/// The content repository (spec: Client-Server API, "Content repository"): the platform's
/// bounds; a tenant's settings may lower the upload size and set storage quotas.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Largest upload, in bytes, unless a tenant's `media.max_upload_bytes` says less.
    pub max_upload_bytes: u64,
    /// Seconds an upload's body may take to arrive (JSON bodies have
    /// `limits.body_read_timeout_secs`; a large file on a slow line needs longer).
    pub upload_timeout_secs: u64,
    /// How long an id created with `POST /_matrix/media/v1/create` waits for its bytes.
    pub pending_upload_secs: u64,
    /// Ids waiting for their bytes one user may hold at once.
    pub max_pending_uploads: u64,
    /// Images with more pixels than this are not thumbnailed (decompression bombs).
    pub max_thumbnail_pixels: u64,
    /// Frames of an animated image thumbnailed at most.
    pub max_thumbnail_frames: u32,
    /// Largest remote media fetched over federation, in bytes.
    pub max_remote_bytes: u64,
    /// `preview_url`: off unless enabled here and in the tenant's settings.
    pub url_preview: crate::media::preview::PreviewConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 * 1024 * 1024,
            upload_timeout_secs: 600,
            pending_upload_secs: 24 * 3600,
            max_pending_uploads: 5,
            max_thumbnail_pixels: 32_000_000,
            max_thumbnail_frames: 200,
            max_remote_bytes: 50 * 1024 * 1024,
            url_preview: crate::media::preview::PreviewConfig::default(),
        }
    }
}
