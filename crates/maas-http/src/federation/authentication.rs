//! Request authentication (spec: Server-Server API, "Request Authentication"): every request
//! to `/_matrix/federation/…` but `version` must carry its origin's `X-Matrix` signature for
//! the tenant it is for. Core checks it; this layer hands it the whole request and the
//! handlers the verified origin.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use maas_core::Tenant;
use maas_core::federation::authentication::authenticate;
use ruma::OwnedServerName;

use crate::error::HttpError;
use crate::ruma::{BodyLimit, read_body};

/// The server a federation request came from, once its signature verified.
#[derive(Clone)]
pub struct Origin(pub OwnedServerName);

/// Verifies the request's `X-Matrix` signature (the body is part of what is signed, so it is
/// read here and handed on); `401 M_UNAUTHORIZED` when it doesn't verify.
pub async fn require_signature(req: Request, next: Next) -> Response {
    let Some(tenant) = req.extensions().get::<Tenant>().cloned() else {
        return HttpError::unknown_host().into_response();
    };
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(usize::MAX, |l| l.0);
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let signed = http::Request::from_parts(parts, bytes);
    let origin = match authenticate(&tenant, &signed).await {
        Ok(origin) => origin,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let (mut parts, bytes) = signed.into_parts();
    parts.extensions.insert(Origin(origin));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        parts.extensions.get::<Origin>().cloned().ok_or_else(|| {
            HttpError::internal("a signed endpoint was routed without signature checks")
        })
    }
}
