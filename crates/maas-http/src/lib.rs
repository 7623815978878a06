//! The HTTP surfaces of maas, one folder per API surface: the Client-Server API, `.well-known`,
//! the Server-Server API, the Synapse-compatible admin API and the operator API, all assembled
//! in `routes`. Handlers are thin: parse with ruma, call `maas-core`, serialise with ruma.

mod admin;
mod client;
mod context;
mod error;
mod federation;
mod operator;
mod routes;
mod ruma;
mod well_known;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use maas_core::Platform;

pub use error::HttpError;
pub use routes::{operator_router, router};

/// How this server names itself to other servers and to tenant admins.
const IMPLEMENTATION_NAME: &str = "maas";
const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves the public listener (the Matrix APIs) until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(listener, router(platform), shutdown).await
}

/// Serves the operator listener (the operator API alone) like [`serve`].
pub async fn serve_operator(
    listener: tokio::net::TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(listener, operator_router(platform), shutdown).await
}

/// What both listeners share: how connections are accepted and shut down.
async fn serve_app(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    // Responses go out as soon as they are written, not when the client acknowledges the
    // previous segment (Nagle's algorithm against delayed ACKs costs up to 40 ms).
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
