//! Routing in one place: every API surface's router behind the middleware that decides whom a
//! request is for (the tenant by `Host` or by `X-Matrix` destination, or the operator by token),
//! and what all surfaces share: CORS, and Matrix-style errors for unknown paths and methods.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use http::{HeaderName, Method, StatusCode, header};
use maas_core::Platform;
use ruma::api::IncomingRequest;
use ruma::api::path_builder::PathBuilder;
use tower_http::cors::{Any, CorsLayer};

use crate::error::HttpError;
use crate::{admin, client, context, federation, operator, well_known};

pub(crate) type AppRouter = Router<Arc<Platform>>;

/// The public listener's application: every Matrix API surface, CORS, and Matrix-style errors
/// for unknown paths. The operator API is on its own listener ([`operator_router`]) unless
/// the configuration puts it on this one.
pub fn router(platform: Arc<Platform>) -> Router {
    let by_host = client::routes()
        .merge(well_known::routes())
        .merge(admin::routes())
        .layer(from_fn_with_state(
            platform.clone(),
            context::tenant_by_host,
        ));
    let federation = federation::routes().layer(from_fn_with_state(
        platform.clone(),
        federation::tenant_by_destination,
    ));
    let mut app = Router::new();
    if platform.config().operator_on_public_listener() {
        app = app.merge(operator_routes(&platform));
    }
    app.merge(by_host)
        .merge(federation)
        .fallback(unrecognized)
        .layer(map_response(json_method_not_allowed))
        .layer(cors())
        .with_state(platform)
}

/// The operator listener's application: the operator API and nothing else, on every host.
/// No CORS: it serves the CLI and automation, not web pages.
pub fn operator_router(platform: Arc<Platform>) -> Router {
    operator_routes(&platform)
        .fallback(unrecognized)
        .layer(map_response(json_method_not_allowed))
        .with_state(platform)
}

fn operator_routes(platform: &Arc<Platform>) -> AppRouter {
    operator::routes().layer(from_fn_with_state(
        platform.clone(),
        operator::require_operator,
    ))
}

/// Registers `handler` for the ruma endpoint `R` on all of its paths.
pub(crate) fn route<R, H, T>(router: AppRouter, handler: H) -> AppRouter
where
    R: IncomingRequest,
    H: Handler<T, Arc<Platform>>,
    T: 'static,
{
    let filter = method_filter(&R::METHOD);
    R::PATH_BUILDER.all_paths().fold(router, |router, path| {
        router.route(path, on(filter, handler.clone()))
    })
}

pub(crate) fn method_filter(method: &http::Method) -> MethodFilter {
    match *method {
        http::Method::POST => MethodFilter::POST,
        http::Method::PUT => MethodFilter::PUT,
        http::Method::DELETE => MethodFilter::DELETE,
        http::Method::PATCH => MethodFilter::PATCH,
        _ => MethodFilter::GET,
    }
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
