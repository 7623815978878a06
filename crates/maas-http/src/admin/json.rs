//! Request bodies as Synapse's admin servlets read them (`parse_json_object_from_request`): a
//! JSON object whose fields each endpoint checks itself, with Synapse's wording, because
//! Synapse tells a field of the wrong type apart from a missing one, and Python's types from
//! JSON's (`1.0` is no integer, `true` is no integer).

use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::error::HttpError;
use crate::ruma::{BodyLimit, read_body};

/// A request body that is a JSON object: `400 M_NOT_JSON` ("Content not JSON.") when it is
/// not JSON at all (an empty body included), `400 M_BAD_JSON` when it is JSON of another kind.
pub(crate) struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = HttpError;

    async fn from_request(req: Request, _: &S) -> Result<Self, HttpError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = read_body(req.into_body(), limit).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            HttpError::new(
                http::StatusCode::BAD_REQUEST,
                "M_NOT_JSON",
                "Content not JSON.",
            )
        })?;
        match value {
            Value::Object(object) => Ok(JsonObject(object)),
            _ => Err(HttpError::bad_json("Content must be a JSON object.")),
        }
    }
}

/// A JSON integer, as Python's `type(value) is int` sees it: not a float, not a boolean.
pub(crate) fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Synapse's `assert_params_in_dict`: `400 M_MISSING_PARAM` naming every absent field, as a
/// Python list prints.
pub(crate) fn require(body: &Map<String, Value>, fields: &[&str]) -> Result<(), HttpError> {
    let absent: Vec<String> = fields
        .iter()
        .filter(|f| !body.contains_key(**f))
        .map(|f| format!("'{f}'"))
        .collect();
    if absent.is_empty() {
        return Ok(());
    }
    Err(HttpError::missing_param(format!(
        "Missing params: [{}]",
        absent.join(", ")
    )))
}

/// `400 M_UNKNOWN` with `message`: Synapse's `SynapseError(400, message)` without an errcode.
pub(crate) fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError::new(http::StatusCode::BAD_REQUEST, "M_UNKNOWN", message)
}
