//! Registration tokens managed by the tenant's admins (Synapse: "Registration Tokens API"):
//! listed (by validity), created (given or generated), read, changed and deleted. The same
//! tokens as the operator API's; `synapse_admin_api` has no types for these, so the shapes and
//! errors are Synapse's.

use axum::Json;
use axum::routing::{get, post};
use maas_core::Tenant;
use maas_core::registration_tokens::{NewToken, TokenChange, TokenInfo};
use serde_json::{Map, Value, json};

use super::auth::AdminUser;
use super::json::{JsonObject, as_int};
use super::query::SynapseQuery;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

const TOKENS: &str = "/_synapse/admin/v1/registration_tokens";

/// The length of a generated token unless the request says otherwise.
const DEFAULT_LENGTH: i64 = 16;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(TOKENS, get(list_tokens))
        // A token may be called `new`: the other methods on this path are about it, as the
        // path of one token is matched after `new` in Synapse.
        .route(
            &format!("{TOKENS}/new"),
            post(new_token)
                .get(get_token_named_new)
                .put(update_token_named_new)
                .delete(delete_token_named_new),
        )
        .route(
            &format!("{TOKENS}/{{token}}"),
            get(get_token).put(update_token).delete(delete_token),
        )
}

fn token_json(info: &TokenInfo) -> Value {
    json!({
        "token": info.token,
        "uses_allowed": info.uses_allowed,
        "pending": info.pending,
        "completed": info.completed,
        "expiry_time": info.expiry_time,
    })
}

fn no_such_token(token: &str) -> HttpError {
    maas_core::Error::NotFound(format!("No such registration token: {token}")).into()
}

/// `uses_allowed` of a body: `null` or a non-negative integer.
fn uses_allowed(value: &Value) -> Result<Option<u64>> {
    if value.is_null() {
        return Ok(None);
    }
    as_int(value)
        .and_then(|n| u64::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            HttpError::invalid_param("uses_allowed must be a non-negative integer or null")
        })
}

/// `expiry_time` of a body: `null` or an integer (core refuses one in the past).
fn expiry_time(value: &Value) -> Result<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    as_int(value)
        .map(Some)
        .ok_or_else(|| HttpError::invalid_param("expiry_time must be an integer or null"))
}

/// `GET /_synapse/admin/v1/registration_tokens`
async fn list_tokens(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let valid = query.boolean("valid")?;
    let infos = tenant.registration_tokens().list_valid(valid).await?;
    let tokens: Vec<Value> = infos.iter().map(token_json).collect();
    Ok(Json(json!({ "registration_tokens": tokens })))
}

/// What `POST …/new` names the token by: `token` when given, else a generated one of `length`.
fn new_token_name(body: &Map<String, Value>) -> Result<NewToken> {
    if let Some(token) = body.get("token") {
        return match token {
            Value::String(token) => Ok(NewToken::Given(token.clone())),
            _ => Err(HttpError::invalid_param("token must be a string")),
        };
    }
    let length = match body.get("length") {
        None => DEFAULT_LENGTH,
        Some(value) => {
            as_int(value).ok_or_else(|| HttpError::invalid_param("length must be an integer"))?
        }
    };
    // Out of range (negative too) is refused by core, in Synapse's words.
    Ok(NewToken::Generated(usize::try_from(length).unwrap_or(0)))
}

/// `POST /_synapse/admin/v1/registration_tokens/new`
async fn new_token(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let name = new_token_name(&body)?;
    let uses_allowed = body.get("uses_allowed").map_or(Ok(None), uses_allowed)?;
    let expiry_time = body.get("expiry_time").map_or(Ok(None), expiry_time)?;
    let info = tenant
        .registration_tokens()
        .issue(name, uses_allowed, expiry_time)
        .await?;
    Ok(Json(token_json(&info)))
}

async fn read_token(tenant: &Tenant, token: &str) -> Result<Json<Value>> {
    match tenant.registration_tokens().get(token).await? {
        Some(info) => Ok(Json(token_json(&info))),
        None => Err(no_such_token(token)),
    }
}

async fn change_token(
    tenant: &Tenant,
    token: &str,
    body: &Map<String, Value>,
) -> Result<Json<Value>> {
    let change = TokenChange {
        uses_allowed: body.get("uses_allowed").map(uses_allowed).transpose()?,
        expiry_time: body.get("expiry_time").map(expiry_time).transpose()?,
    };
    match tenant.registration_tokens().update(token, &change).await? {
        Some(info) => Ok(Json(token_json(&info))),
        None => Err(no_such_token(token)),
    }
}

async fn remove_token(tenant: &Tenant, token: &str) -> Result<Json<Value>> {
    if !tenant.registration_tokens().delete(token).await? {
        return Err(no_such_token(token));
    }
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/registration_tokens/{token}`
async fn get_token(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(token): Path<String>,
) -> Result<Json<Value>> {
    read_token(&tenant, &token).await
}

/// `PUT /_synapse/admin/v1/registration_tokens/{token}`
async fn update_token(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(token): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    change_token(&tenant, &token, &body).await
}

/// `DELETE /_synapse/admin/v1/registration_tokens/{token}`
async fn delete_token(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(token): Path<String>,
) -> Result<Json<Value>> {
    remove_token(&tenant, &token).await
}

/// `GET /_synapse/admin/v1/registration_tokens/new`: the token called `new`.
async fn get_token_named_new(ForTenant(tenant): ForTenant, _: AdminUser) -> Result<Json<Value>> {
    read_token(&tenant, "new").await
}

/// `PUT /_synapse/admin/v1/registration_tokens/new`: the token called `new`.
async fn update_token_named_new(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    change_token(&tenant, "new", &body).await
}

/// `DELETE /_synapse/admin/v1/registration_tokens/new`: the token called `new`.
async fn delete_token_named_new(ForTenant(tenant): ForTenant, _: AdminUser) -> Result<Json<Value>> {
    remove_token(&tenant, "new").await
}
