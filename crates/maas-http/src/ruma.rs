//! Glue between axum and ruma: requests are parsed by ruma's own endpoint types and answered
//! with ruma's response types, so the wire format is the spec's by construction.

use std::marker::PhantomData;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::{IncomingRequest, OutgoingResponse};
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::body::BodyTimeout;
use crate::error::HttpError;

/// The largest body a request may carry, set per request by the routing layer.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request of the ruma endpoint type `T`.
pub struct Ruma<T>(pub T);

/// A request of the ruma endpoint type `T` whose body `F` corrects first, for the endpoints where
/// ruma 0.16 departs from the spec (see the implementations of [`BodyFix`]).
pub struct RumaWith<T, F>(pub T, pub PhantomData<F>);

/// A correction of a request body before ruma parses it: a default the spec gives and ruma
/// lacks, or a refusal of what ruma would panic on.
pub trait BodyFix {
    /// The body to hand ruma (a JSON object; only objects reach this), or the error the spec
    /// gives for it.
    fn fix(body: &mut Map<String, Value>) -> Result<(), HttpError>;
}

impl<T, S> FromRequest<S> for Ruma<T>
where
    T: IncomingRequest,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        parse(req, state, Ok).await.map(Ruma)
    }
}

impl<T, F, S> FromRequest<S> for RumaWith<T, F>
where
    T: IncomingRequest,
    F: BodyFix,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let request = parse(req, state, fix_object::<F>).await?;
        Ok(RumaWith(request, PhantomData))
    }
}

/// Reads and checks a request, then has ruma parse it; `fix` sees the body first.
async fn parse<T, S>(
    req: Request,
    state: &S,
    fix: impl FnOnce(Bytes) -> Result<Bytes, HttpError>,
) -> Result<T, HttpError>
where
    T: IncomingRequest,
    S: Send + Sync,
{
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| HttpError::invalid_param(e.body_text()))?;
    let path_args: Vec<String> = params.iter().map(|(_, v)| v.to_owned()).collect();
    let limit = parts
        .extensions
        .get::<BodyLimit>()
        .map_or(usize::MAX, |l| l.0);
    let mut bytes = read_body(body, limit).await?;
    // Endpoints whose body is all optional (`/join/{alias}`, `/knock`) are often called
    // without one; an absent body means an empty object.
    if bytes.is_empty() && parts.method != http::Method::GET {
        bytes = Bytes::from_static(b"{}");
    }
    if !bytes.is_empty() && serde_json::from_slice::<IgnoredAny>(&bytes).is_err() {
        return Err(HttpError::not_json());
    }
    let request = http::Request::from_parts(parts, fix(bytes)?);
    T::try_from_http_request(request, &path_args).map_err(rejection)
}

/// Applies `F` to a body that is a JSON object; anything else goes to ruma as it is, to be
/// refused there.
fn fix_object<F: BodyFix>(bytes: Bytes) -> Result<Bytes, HttpError> {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(bytes);
    };
    F::fix(&mut body)?;
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| HttpError::internal(format!("could not re-serialize a request body: {e}")))
}

/// Reads a whole body, refusing more than `limit` bytes with `M_TOO_LARGE`, and a body that
/// missed its deadline (`body::with_body_deadline`) with `408`.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, HttpError> {
    to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return HttpError::too_large();
            }
            if err.is::<BodyTimeout>() {
                return HttpError::new(
                    http::StatusCode::REQUEST_TIMEOUT,
                    "M_UNKNOWN",
                    "The request body did not arrive in time",
                );
            }
            source = err.source();
        }
        HttpError::bad_json(format!("Could not read the request body: {e}"))
    })
}

fn rejection(error: FromHttpRequestError) -> HttpError {
    match error {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            HttpError::bad_json(e.to_string())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e))
            if e.to_string().starts_with("missing field") =>
        {
            HttpError::missing_param(e.to_string())
        }
        FromHttpRequestError::Deserialization(e) => HttpError::invalid_param(e.to_string()),
        FromHttpRequestError::MethodMismatch { .. } => {
            HttpError::unrecognized(http::StatusCode::METHOD_NOT_ALLOWED)
        }
        other => HttpError::invalid_param(other.to_string()),
    }
}

/// A response of a ruma endpoint type.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(response) => response.map(|body| Body::from(body.freeze())),
            Err(e) => {
                tracing::error!(error = %e, "could not serialize a response");
                HttpError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "Could not serialize the response",
                )
                .into_response()
            }
        }
    }
}

impl<T> From<T> for RumaResponse<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}
