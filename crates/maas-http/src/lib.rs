//! The HTTP surfaces of maas: the Client-Server API and `.well-known` per tenant (resolved by
//! `Host`), and the operator API of the platform. Handlers are thin: parse with ruma, call
//! `maas-core`, serialise with ruma.

mod client;
mod context;
mod error;
mod operator;
mod ruma;
mod well_known;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use http::{HeaderName, Method, StatusCode, header};
use maas_core::Platform;
use tower_http::cors::{Any, CorsLayer};

pub use error::HttpError;

/// The whole application: every API surface, CORS, and Matrix-style errors for unknown paths.
pub fn router(platform: Arc<Platform>) -> Router {
    let tenant_routes = client::routes()
        .merge(well_known::routes())
        .layer(from_fn_with_state(
            platform.clone(),
            context::resolve_tenant,
        ));
    let operator_routes = operator::routes().layer(from_fn_with_state(
        platform.clone(),
        operator::require_operator,
    ));
    Router::new()
        .merge(operator_routes)
        .merge(tenant_routes)
        .fallback(unrecognized)
        .layer(map_response(json_method_not_allowed))
        .layer(cors())
        .with_state(platform)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(platform).into_make_service_with_connect_info::<SocketAddr>();
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

/// The CORS headers the spec asks of every Client-Server API response, for web clients and the
/// admin web app running on other origins.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
}

async fn unrecognized() -> HttpError {
    HttpError::unrecognized(StatusCode::NOT_FOUND)
}

/// axum answers a known path with the wrong method by an empty `405`; the spec wants
/// `M_UNRECOGNIZED` JSON.
async fn json_method_not_allowed(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json {
        return HttpError::unrecognized(StatusCode::METHOD_NOT_ALLOWED).into_response();
    }
    response
}
