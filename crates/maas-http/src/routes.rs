//! Routing in one place: every API surface's router behind the middleware that decides whom a
//! request is for (the tenant by `Host` or by `X-Matrix` destination, or the operator by token),
//! and what all surfaces share: CORS, and Matrix-style errors for unknown paths and methods.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::handler::Handler;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use http::{HeaderName, Method, StatusCode, header};
use maas_core::Platform;
use ruma::api::IncomingRequest;
use ruma::api::path_builder::PathBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{self, CorsLayer};

use crate::error::HttpError;
use crate::{admin, client, context, federation, media, metrics, operator, well_known};

pub(crate) type AppRouter = Router<Arc<Platform>>;

/// The public listener's application: every Matrix API surface, CORS, and Matrix-style errors
/// for unknown paths. The operator API is on its own listener ([`operator_router`]) unless
/// the configuration puts it on this one.
pub fn router(platform: Arc<Platform>) -> Router {
    let by_host = client::routes()
        .merge(well_known::routes())
        .merge(admin::routes())
        .merge(media::routes())
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
        .layer(map_response(matrix_errors))
        .layer(catch_panics())
        .layer(cors())
        .layer(from_fn_with_state(platform.clone(), metrics::record))
        .with_state(platform)
}

/// The operator listener's application: the operator API and nothing else, on every host.
/// No CORS: it serves the CLI and automation, not web pages.
pub fn operator_router(platform: Arc<Platform>) -> Router {
    operator_routes(&platform)
        .fallback(unrecognized)
        .layer(map_response(matrix_errors))
        .layer(catch_panics())
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
        .allow_origin(cors::Any)
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

/// Every error is Matrix JSON: whatever error response is not JSON by now (axum answers a known
/// path with the wrong method by an empty `405`, and its own extractors' rejections are
/// `text/plain`) becomes `{"errcode", "error"}`, with the errcode its status implies and the text
/// as message. Handlers use Matrix-error extractors (`extract`, `ruma`); this is the net under
/// them, and says so in the log when it catches one.
async fn matrix_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = read_text(body).await;
    if status != StatusCode::METHOD_NOT_ALLOWED {
        tracing::warn!(status = status.as_u16(), error = %text, "a non-JSON error was made Matrix JSON");
    }
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut json = HttpError::new(status, errcode_for(status), message).into_response();
    // The original's other headers (`Allow`, `Retry-After`, …) stay.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    json.headers_mut().extend(parts.headers);
    json
}

/// The start of an error body, as text: error texts are short, and only a message is wanted.
async fn read_text(body: Body) -> String {
    const MAX_ERROR_TEXT: usize = 4096;
    let bytes = to_bytes(body, MAX_ERROR_TEXT).await.unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// The errcode of an error that came without one, by its status.
fn errcode_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "M_UNRECOGNIZED",
        // What remains of axum's 400s are path and query parameters that don't parse.
        StatusCode::BAD_REQUEST => "M_INVALID_PARAM",
        StatusCode::PAYLOAD_TOO_LARGE => "M_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "M_NOT_JSON",
        StatusCode::UNPROCESSABLE_ENTITY => "M_BAD_JSON",
        StatusCode::TOO_MANY_REQUESTS => "M_LIMIT_EXCEEDED",
        _ => "M_UNKNOWN",
    }
}

/// A panic while a request is handled becomes a logged `500 M_UNKNOWN` rather than a connection
/// dropped without an answer.
pub(crate) fn catch_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send>) -> Response> {
    CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send>) -> Response)
}

fn panic_response(panic: Box<dyn Any + Send>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(panic = %message, "a request handler panicked");
    HttpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "M_UNKNOWN",
        "Internal server error",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: Router, path: &str) -> (StatusCode, String, serde_json::Value) {
        let request = http::Request::get(path)
            .body(Body::empty())
            .expect("a request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let json = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, content_type, json)
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_m_unknown() {
        async fn boom() -> &'static str {
            panic!("a handler bug");
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(catch_panics());
        let (status, content_type, json) = call(app.clone(), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert_eq!(json["errcode"], "M_UNKNOWN", "{json}");
        // The service carries on.
        let (status, ..) = call(app, "/fine").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn axum_rejections_become_matrix_json() {
        #[derive(serde::Deserialize)]
        struct Page {
            #[allow(dead_code)]
            limit: u32,
        }
        async fn page(_: axum::extract::Query<Page>) -> &'static str {
            "page"
        }
        let app = Router::new()
            .route("/page", get(page))
            .layer(map_response(matrix_errors));
        let (status, content_type, json) = call(app.clone(), "/page?limit=many").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert_eq!(json["errcode"], "M_INVALID_PARAM", "{json}");
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains("limit")),
            "{json}"
        );
        let (status, _, json) = call(app, "/page?limit=1").await;
        assert_eq!((status, json), (StatusCode::OK, serde_json::Value::Null));
    }
}
