//! The tenant's users as its admins see them (Synapse: "User Admin API"): accounts, devices,
//! sessions, what a user did and may do. `synapse_admin_api` types fit none of these exactly
//! (Synapse's fields and errors are richer), so the shapes are written here after Synapse's.

mod accounts;
mod activity;
mod devices;
mod keys;
mod redact;
mod states;
mod validity;

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use maas_core::accounts::AuthedUser;
use maas_core::{Error, Tenant};
use ruma::UserId;
use serde_json::{Map, Value};

use crate::context::Authed;
use crate::error::{HttpError, Result};
use crate::routes::AppRouter;
use crate::ruma::{BodyLimit, read_body};

const V1: &str = "/_synapse/admin/v1";
const V2: &str = "/_synapse/admin/v2";
const V3: &str = "/_synapse/admin/v3";

pub fn routes(router: AppRouter) -> AppRouter {
    let router = accounts::routes(router);
    let router = states::routes(router);
    let router = devices::routes(router);
    let router = redact::routes(router);
    let router = validity::routes(router);
    let router = keys::routes(router);
    activity::routes(router)
}

/// The admin behind the request, for endpoints that need to know which one (`AdminUser`
/// only checks that there is one): `401` without a valid token, `403 M_FORBIDDEN` for a user
/// who is not an admin.
struct Admin(AuthedUser);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Authed(user) = Authed::from_request_parts(parts, state).await?;
        if !user.admin {
            return Err(HttpError::forbidden("You are not a server admin"));
        }
        Ok(Admin(user))
    }
}

/// A JSON object body where Synapse allows none (`allow_empty_body=True`): an empty body is
/// `{}`; anything else is read as `JsonObject` reads it.
struct OptionalJsonObject(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = HttpError;

    async fn from_request(req: Request, _: &S) -> Result<Self> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = read_body(req.into_body(), limit).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonObject(Map::new()));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            HttpError::new(
                http::StatusCode::BAD_REQUEST,
                "M_NOT_JSON",
                "Content not JSON.",
            )
        })?;
        match value {
            Value::Object(object) => Ok(OptionalJsonObject(object)),
            _ => Err(HttpError::bad_json("Content must be a JSON object.")),
        }
    }
}

/// The localpart of `user_id` when it is a user of this tenant; `400 M_UNKNOWN` with the
/// endpoint's Synapse wording otherwise.
fn local<'a>(tenant: &Tenant, user_id: &'a UserId, message: &str) -> Result<&'a str> {
    if user_id.server_name() != tenant.server_name() {
        return Err(Error::Unknown(message.to_owned()).into());
    }
    Ok(user_id.localpart())
}

/// `local`, and the tenant must have the user: `404 M_NOT_FOUND` with `not_found` otherwise.
async fn existing<'a>(
    tenant: &Tenant,
    user_id: &'a UserId,
    not_local: &str,
    not_found: &str,
) -> Result<&'a str> {
    let localpart = local(tenant, user_id, not_local)?;
    tenant
        .accounts()
        .existing_user(localpart, not_found)
        .await?;
    Ok(localpart)
}

/// An optional boolean body field: absent is `None`; anything but `true` or `false` (`null`
/// too) is refused with `message`, as Synapse's `isinstance(…, bool)` checks refuse it.
fn optional_bool(body: &Map<String, Value>, field: &str, message: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(super::json::bad_request(message)),
    }
}

/// Python's truthiness of a JSON value, for the fields Synapse reads with `bool(…)`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How Python's `repr` prints a JSON value, for Synapse's messages that quote one.
fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}
