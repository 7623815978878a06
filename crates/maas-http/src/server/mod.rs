//! The listener: accepts connections, bounds how many one client address holds, serves each
//! with its timers (`connection`), over TLS when asked (`tls`), and shuts down within a
//! deadline. axum's `serve` has no timeouts, no per-address bound and no deadline on shutdown,
//! so this is our own accept loop on hyper, as axum's is.

mod connection;
mod per_ip;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use maas_core::Platform;
use maas_core::config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::connection::{Timeouts, serve_connection};
use self::per_ip::PerIp;
pub use self::tls::FederationTls;

/// What the listener takes from the configuration (`limits`).
struct Settings {
    timeouts: Timeouts,
    /// `None`: no bound (configured 0, or behind a proxy, where every connection is the
    /// proxy's).
    per_ip: Option<PerIp>,
    shutdown_grace: Duration,
    /// `None`: plain HTTP.
    tls: Option<FederationTls>,
}

impl Settings {
    fn of(config: &Config, tls: Option<FederationTls>) -> Self {
        let limits = &config.limits;
        let bounded = limits.max_connections_per_ip > 0 && !config.server.behind_proxy;
        Self {
            timeouts: Timeouts {
                header_read: Duration::from_secs(limits.header_read_timeout_secs),
                idle: Duration::from_secs(limits.idle_timeout_secs),
            },
            per_ip: bounded.then(|| PerIp::new(limits.max_connections_per_ip)),
            shutdown_grace: Duration::from_secs(limits.shutdown_grace_secs),
            tls,
        }
    }
}

/// Serves until `shutdown` completes. Then it stops accepting, answers long-polling requests
/// at once (`Platform::begin_shutdown`), lets the other requests in flight finish for up to
/// `limits.shutdown_grace_secs`, and returns, closing whatever connections are still open.
pub async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(listener, platform, app, None, shutdown).await
}

/// Like [`serve`], each connection's TLS handshake first (bounded like a request's head).
pub async fn serve_tls(
    listener: TcpListener,
    platform: Arc<Platform>,
    app: axum::Router,
    tls: FederationTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(listener, platform, app, Some(tls), shutdown).await
}

async fn run(
    listener: TcpListener,
    platform: Arc<Platform>,
    app: axum::Router,
    tls: Option<FederationTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = Settings::of(platform.config(), tls);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = admit(stream, peer, &settings, &app, &stopping);
                    connections.spawn(task);
                }
                Err(error) => pause_after(&error).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    platform.begin_shutdown();
    stop.send_replace(true);
    drain(connections, settings.shutdown_grace).await;
    Ok(())
}

/// The public router as the federation listener serves it: without the operator API, which
/// the public router carries when `operator.listen` is `server.listen`, but other servers
/// have no business reaching.
pub fn without_operator_api(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::from_fn(refuse_operator_paths))
}

async fn refuse_operator_paths(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path().starts_with("/_maas/") {
        return crate::error::HttpError::unrecognized(http::StatusCode::NOT_FOUND).into_response();
    }
    next.run(request).await
}

/// The task that serves a new connection, or refuses it when its address holds its bound.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    settings: &Settings,
    app: &axum::Router,
    stopping: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let slot = settings.per_ip.as_ref().map(|p| p.admit(peer.ip()));
    let (app, timeouts, stopping) = (app.clone(), settings.timeouts, stopping.clone());
    let tls = settings.tls.clone();
    async move {
        let refused = matches!(slot, Some(None));
        if refused {
            tracing::info!(%peer, "too many connections from this address; refused");
        }
        // Responses go out as soon as they are written, not when the client acknowledges the
        // previous segment (Nagle's algorithm against delayed ACKs costs up to 40 ms).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        match tls {
            None if refused => per_ip::refuse(stream).await,
            None => serve_connection(stream, peer, app, timeouts, stopping).await,
            Some(tls) if refused => tls.refuse(stream, peer).await,
            Some(tls) => {
                let bound = timeouts.handshake();
                if let Some(stream) = tls.handshake(stream, peer, bound).await {
                    serve_connection(stream, peer, app, timeouts, stopping).await;
                }
            }
        }
        drop(slot);
    }
}

/// After a failed accept: a connection that went away before it was accepted is nothing to
/// wait for; anything else (out of file descriptors, most often) is given a moment to pass
/// rather than retried in a busy loop.
async fn pause_after(error: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        error.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Waits up to `grace` for the connections to finish, then closes those still open (their
/// requests are dropped).
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_ok() {
        return;
    }
    tracing::warn!(
        open = connections.len(),
        grace_secs = grace.as_secs(),
        "closing the connections still open after the shutdown grace period"
    );
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
