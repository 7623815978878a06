//! The operator API (`/_maas/operator/v1`): the hosting provider's control of the platform —
//! tenants, their users and registration tokens. Not tenant-scoped; its own bearer token.
//! What every operator endpoint shares lives here: the routes, the token check, JSON bodies.

mod media;
mod registration_tokens;
mod shared_secret;
mod tenants;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use maas_core::Platform;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{HttpError, Result};
use crate::routes::AppRouter;
use crate::ruma::read_body;

/// The operator API's paths start here.
const PREFIX: &str = "/_maas/operator/v1";

/// Where the tenants' paths start: `{TENANTS}/{server_name}/…`. Every name below it is a
/// server name, so no operator path of its own may sit beside them; a path such as
/// `{TENANTS}/import` would shadow the tenant named `import`.
const TENANTS: &str = "/_maas/operator/v1/tenants";

pub fn routes() -> AppRouter {
    let router = tenants::routes(Router::new());
    let router = users::routes(router);
    // Importing makes a tenant from an archive, whose server name is inside the archive:
    // an action of the platform, outside the tenants' paths.
    let router = router.route(&format!("{PREFIX}/import"), post(tenants::import_tenant));
    let router = media::routes(router);
    let router = shared_secret::routes(router);
    registration_tokens::routes(router)
}

/// Admits only requests bearing the operator token.
pub async fn require_operator(
    State(platform): State<Arc<Platform>>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(token) = header.and_then(crate::context::bearer_token) else {
        return HttpError::missing_token().into_response();
    };
    if !platform.is_operator_token(token.trim()) {
        return HttpError::unknown_token().into_response();
    }
    let span = tracing::info_span!("operator", method = %req.method(), path = %req.uri().path());
    let _entered = span.enter();
    tracing::info!("operator request");
    drop(_entered);
    next.run(req).await
}

/// A JSON body parsed with Matrix errors (`M_NOT_JSON`, `M_BAD_JSON`, `M_TOO_LARGE`).
struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<Platform>> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, platform: &Arc<Platform>) -> Result<Self> {
        let limit = platform.config().limits.max_request_bytes;
        let bytes = read_body(req.into_body(), limit).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| HttpError::not_json())?;
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| HttpError::bad_json(e.to_string()))
    }
}

/// A core result with the operator API's error labels.
fn op<T>(result: maas_core::Result<T>) -> Result<T> {
    result.map_err(|e| HttpError::from(e).for_operator())
}
