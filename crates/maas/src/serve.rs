//! `maas serve`: the server process and its contract with tests and the CLI (see
//! crates/maas-http/API.md): configuration, the data directory's lock, operator token,
//! first-start tenant, `server.json`, the public, operator and federation listeners, logging,
//! and graceful shutdown on SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use maas_core::Platform;
use maas_core::config::Config;
use maas_core::federation::network::Network;
use maas_core::platform::certificates::CertificateFiles;
use maas_core::tenants::CreatedTenant;
use maas_http::FederationTls;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};
use crate::data_dir::{self, ServerInfo};
use crate::settings::{self, Overrides};

pub async fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: global.config.clone(),
        data_dir: global.data_dir.clone(),
        listen: args.listen,
        operator_listen: args.operator_listen,
    };
    let mut config = settings::load(&overrides)?;
    init_logging(args.log_format)?;
    // Configuration that can't work stops the start before the data dir or database is
    // touched (or found in use).
    if config.federation.tls {
        CertificateFiles::check_platform_default(&config.federation)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // Handlers go in before anything slow, so a signal during start-up is a clean shutdown
    // rather than the default action killing the process half-way.
    let shutdown = shutdown_signal()?;
    let dir = config.server.data_dir.clone();
    data_dir::create(&dir)?;
    // Before anything else is read or written: the directory (and the database) is this
    // server's alone until it exits, when the locks go with the process.
    let _dir_lock = data_dir::lock(&dir)?;
    let _database_lock = crate::storage::lock_database(&config).await?;
    config.operator.token = Some(operator_token(&config, &dir)?);
    let platform = start_platform(config.clone()).await?;
    crate::allocator::spawn_trimmer(Arc::downgrade(&platform));
    let result = serve_until_signal(&platform, &config, shutdown).await;
    data_dir::remove_server_info(&dir);
    platform.shutdown().await;
    tracing::info!("stopped");
    result
}

/// The configured token (`Config::check` refused an empty one, which would let
/// `Authorization: Bearer ` through), else the generated one in the data directory.
fn operator_token(config: &Config, dir: &std::path::Path) -> anyhow::Result<String> {
    match &config.operator.token {
        Some(token) => Ok(token.trim().to_owned()),
        None => data_dir::ensure_operator_token(dir),
    }
}

/// Logs go to stderr: stdout carries only the first-start credentials, for scripts to read.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    // ruma-state-res narrates every auth check at info; that is debugging detail for us.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,ruma_state_res=warn"));
    // Colours only for a person at a terminal, not in files or journald.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}

async fn start_platform(config: Config) -> anyhow::Result<Arc<Platform>> {
    let dir = config.server.data_dir.display().to_string();
    let backend = crate::storage::open_backend(&config).await?;
    let platform = Platform::start(config, backend)
        .await
        .with_context(|| format!("cannot start the platform on data dir {dir}"))?;
    // Co-hosted tenants federate through our own router, without sockets; the others over
    // HTTPS after server discovery.
    maas_http::InProcess::install(&platform);
    let network = Network::new(&platform.config().federation)
        .map_err(|e| anyhow::anyhow!("federation: {e}"))?;
    platform
        .federation()
        .transports()
        .set_network(Arc::new(network));
    // What was queued for other servers when the platform last stopped goes out now.
    if let Err(e) = platform.resume_federation().await {
        tracing::warn!(error = %e, "federation queues not resumed");
    }
    Ok(platform)
}

/// Binds first, so a taken port fails before the first-start tenant (and its once-only
/// password) is created; announces the server only when it is ready to answer.
async fn serve_until_signal(
    platform: &Arc<Platform>,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let public = bind(config.server.listen, "server.listen").await?;
    let addr = public.local_addr()?;
    let operator = if config.operator_on_public_listener() {
        None
    } else {
        let listener = bind(config.operator.listen, "operator.listen").await?;
        let addr = listener.local_addr()?;
        Some((listener, addr))
    };
    let federation = if config.federation_on_public_listener() {
        None
    } else {
        Some(FederationListener::bind(platform, config).await?)
    };
    let metrics = match config.metrics.listen {
        Some(addr) => Some(bind(addr, "metrics.listen").await?),
        None => None,
    };
    let metrics_url = match &metrics {
        Some(listener) => Some(data_dir::local_url(listener.local_addr()?)),
        None => None,
    };
    if let Some(created) = platform.bootstrap_default_tenant().await? {
        announce_default_tenant(&created)?;
    }
    let url = data_dir::local_url(addr);
    let operator_url = operator
        .as_ref()
        .map_or_else(|| url.clone(), |(_, addr)| data_dir::local_url(*addr));
    let federation_url = federation
        .as_ref()
        .map_or_else(|| url.clone(), FederationListener::url);
    let info = ServerInfo {
        url,
        operator_url: Some(operator_url),
        federation_url: Some(federation_url.clone()),
        metrics_url,
        pid: std::process::id(),
    };
    data_dir::write_server_info(&config.server.data_dir, &info)?;
    tracing::info!(%addr, url = %info.url, operator_url = %info.operator_url(), %federation_url, data_dir = %config.server.data_dir.display(), "listening");
    if federation.as_ref().is_some_and(|f| f.tls.is_some()) {
        warn_without_certificates(platform, config);
    }
    // Every listener stops at the same signal.
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which is a reason to stop as well.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let public = maas_http::serve(public, Arc::clone(platform), stopped(stopping.clone()));
    let operator = {
        let (platform, stopped) = (Arc::clone(platform), stopped(stopping.clone()));
        async move {
            match operator {
                None => Ok(()),
                Some((listener, _)) => maas_http::serve_operator(listener, platform, stopped).await,
            }
        }
    };
    let metrics = {
        let (platform, stopped) = (Arc::clone(platform), stopped(stopping.clone()));
        async move {
            match metrics {
                None => Ok(()),
                Some(listener) => maas_http::serve_metrics(listener, platform, stopped).await,
            }
        }
    };
    let federation = {
        let (platform, stopped) = (Arc::clone(platform), stopped(stopping));
        async move {
            match federation {
                None => Ok(()),
                Some(f) => maas_http::serve_federation(f.listener, platform, f.tls, stopped).await,
            }
        }
    };
    tokio::try_join!(public, operator, federation, metrics)
        .map(|_| ())
        .context("server failed")
}

/// The listener other servers reach (`federation.listen`), and its TLS unless
/// `federation.tls = false`.
struct FederationListener {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<FederationTls>,
}

impl FederationListener {
    /// TLS first: a default certificate that doesn't load stops the start, naming the key and
    /// the file, before anything is bound.
    async fn bind(platform: &Arc<Platform>, config: &Config) -> anyhow::Result<Self> {
        let tls = if config.federation.tls {
            Some(FederationTls::new(platform).map_err(|e| anyhow::anyhow!("{e}"))?)
        } else {
            None
        };
        let listener = bind(config.federation.listen, "federation.listen").await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            tls,
        })
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        data_dir::local_url_with(scheme, self.addr)
    }
}

/// With TLS but no certificate anywhere, every handshake fails until the operator gives the
/// platform or a tenant one; the listener still runs, so that a certificate set later works
/// without a restart, and this says so once.
fn warn_without_certificates(platform: &Platform, config: &Config) {
    let federation = &config.federation;
    let any_tenant = platform
        .tenants()
        .iter()
        .any(|t| t.settings.tls_certificate.is_some());
    if federation.tls_certificate.is_none() && !any_tenant {
        tracing::warn!(
            listen = %federation.listen,
            "the federation listener has no TLS certificate: set federation.tls_certificate and federation.tls_key, or give tenants theirs (maas tenant set --tls-certificate), or set federation.tls = false behind a TLS-terminating proxy; until then its TLS handshakes fail"
        );
    }
}

/// Binds `addr`, the value of the configuration key `key`, naming both when that fails.
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key})"))
}

/// Prints the first-start credentials to stdout: the only place the password ever appears.
fn announce_default_tenant(created: &CreatedTenant) -> anyhow::Result<()> {
    let text = default_tenant_lines(created);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    tracing::info!(server_name = %created.record.server_name, admin = %created.admin_user_id, "created the first tenant");
    Ok(())
}

fn default_tenant_lines(created: &CreatedTenant) -> String {
    let record = &created.record;
    // The policy's serde name is the operator API's spelling ("open", "closed", "token").
    let registration = serde_json::to_value(record.settings.registration)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", record.settings.registration).to_lowercase());
    format!(
        "Created tenant {} (hosts: {}), {registration} registration\nAdmin user: {}\nAdmin password: {}\n",
        record.server_name,
        record.hosts.join(", "),
        created.admin_user_id,
        created.admin_password
    )
}

/// Resolves at the first SIGINT or SIGTERM. A second signal while requests drain stops the
/// process at once (exit 130), as an operator pressing Ctrl-C twice expects.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    // Registered now, not when the future is first polled, so no signal is left to the
    // default handler (which would kill the process uncleanly).
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down; finishing in-flight requests");
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::warn!("second signal: exiting without waiting for requests");
            std::process::exit(130);
        });
    })
}
