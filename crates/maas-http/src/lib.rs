//! The HTTP surfaces of maas, one folder per API surface: the Client-Server API, `.well-known`,
//! the Server-Server API, the Synapse-compatible admin API and the operator API, all assembled
//! in `routes`. Handlers are thin: parse with ruma, call `maas-core`, serialise with ruma.

mod admin;
mod body;
mod client;
mod context;
mod error;
mod extract;
mod federation;
mod media;
mod metrics;
mod operator;
mod routes;
mod ruma;
mod server;
mod well_known;

use std::future::Future;
use std::sync::Arc;

use maas_core::Platform;
use tokio::net::TcpListener;

pub use error::HttpError;
pub use federation::InProcess;
pub use routes::{operator_router, router};
pub use server::FederationTls;

/// How this server names itself to other servers and to tenant admins.
const IMPLEMENTATION_NAME: &str = "maas";
const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves the public listener (the Matrix APIs) until `shutdown` completes, then answers
/// long-polls at once and gives the other requests in flight `limits.shutdown_grace_secs`.
pub async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(Arc::clone(&platform));
    server::serve(listener, platform, app, shutdown).await
}

/// Serves the federation listener like [`serve`]: the public router (the federation surface
/// finds its tenant by the `X-Matrix` destination, else `Host`), over TLS with a certificate
/// chosen by SNI, or in plain HTTP (`tls` `None`) behind a proxy that terminates TLS.
pub async fn serve_federation(
    listener: TcpListener,
    platform: Arc<Platform>,
    tls: Option<FederationTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = server::without_operator_api(router(Arc::clone(&platform)));
    match tls {
        Some(tls) => server::serve_tls(listener, platform, app, tls, shutdown).await,
        None => server::serve(listener, platform, app, shutdown).await,
    }
}

/// Serves the metrics listener (`GET /metrics` alone) like [`serve`].
pub async fn serve_metrics(
    listener: TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = metrics::metrics_router(Arc::clone(&platform));
    server::serve(listener, platform, app, shutdown).await
}

/// Serves the operator listener (the operator API alone) like [`serve`].
pub async fn serve_operator(
    listener: TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = operator_router(Arc::clone(&platform));
    server::serve(listener, platform, app, shutdown).await
}
