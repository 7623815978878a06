//! What an admin restricts or allows one user: suspension, shadow-bans, the user's own message
//! rate, and Synapse's per-user experimental features.

use axum::Json;
use axum::routing::{get, post, put};
use maas_core::accounts::{AccountStates, RateLimitOverride};
use ruma::OwnedUserId;
use serde_json::{Map, Value, json};

use super::super::auth::AdminUser;
use super::super::json::{JsonObject, as_int, bad_request};
use super::{OptionalJsonObject, V1, existing, local, python_repr};
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

/// The per-user features Synapse lists. maas implements none of them, so none can be
/// switched on for anyone.
const EXPERIMENTAL_FEATURES: [&str; 3] = ["msc3881", "msc3575", "msc4222"];

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router
        .route(&format!("{V1}/suspend/{{user_id}}"), put(suspend_user))
        .route(
            &format!("{V1}/users/{{user_id}}/shadow_ban"),
            post(shadow_ban).delete(unshadow_ban),
        )
        .route(
            &format!("{V1}/users/{{user_id}}/override_ratelimit"),
            get(ratelimit_override)
                .post(set_ratelimit_override)
                .delete(delete_ratelimit_override),
        )
        .route(
            &format!("{V1}/experimental_features/{{user_id}}"),
            get(experimental_features).put(set_experimental_features),
        )
}

/// `PUT /_synapse/admin/v1/suspend/{userId}` with `{"suspend": bool}`: a suspended user may
/// read, leave rooms and redact their own events, nothing else (`403 M_USER_SUSPENDED`).
async fn suspend_user(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Can only suspend local users",
        "User not found",
    )
    .await?;
    // Synapse's model refuses a missing field apart from one of another type.
    let suspend = match body.get("suspend") {
        Some(Value::Bool(suspend)) => *suspend,
        None => return Err(HttpError::missing_param("suspend: Field required")),
        Some(_) => {
            return Err(HttpError::invalid_param(
                "suspend: Input should be a valid boolean",
            ));
        }
    };
    let states = AccountStates {
        suspended: Some(suspend),
        ..AccountStates::default()
    };
    tenant
        .accounts()
        .set_account_states(localpart, states)
        .await?;
    tracing::info!(%user_id, suspend, "user suspension changed by an admin");
    Ok(Json(
        json!({ format!("user_{user_id}_suspended"): suspend }),
    ))
}

async fn set_shadow_ban(
    tenant: &maas_core::Tenant,
    user_id: &OwnedUserId,
    ban: bool,
) -> Result<()> {
    let localpart = existing(
        tenant,
        user_id,
        "Only local users can be shadow-banned",
        "User not found",
    )
    .await?;
    let states = AccountStates {
        shadow_banned: Some(ban),
        ..AccountStates::default()
    };
    tenant
        .accounts()
        .set_account_states(localpart, states)
        .await?;
    tracing::info!(%user_id, ban, "user shadow-ban changed by an admin");
    Ok(())
}

/// `POST /_synapse/admin/v1/users/{userId}/shadow_ban`: the user's messages, state events
/// and invites look accepted and reach nobody.
async fn shadow_ban(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    set_shadow_ban(&tenant, &user_id, true).await?;
    Ok(Json(json!({})))
}

/// `DELETE /_synapse/admin/v1/users/{userId}/shadow_ban`
async fn unshadow_ban(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    set_shadow_ban(&tenant, &user_id, false).await?;
    Ok(Json(json!({})))
}

fn override_json(limit: &RateLimitOverride) -> Value {
    json!({
        "messages_per_second": limit.messages_per_second,
        "burst_count": limit.burst_count,
    })
}

/// `GET /_synapse/admin/v1/users/{userId}/override_ratelimit`: `{}` without an override.
async fn ratelimit_override(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Can only look up local users",
        "User not found",
    )
    .await?;
    let limit = tenant.accounts().ratelimit_override(localpart).await?;
    Ok(Json(limit.as_ref().map_or(json!({}), override_json)))
}

/// One of the override's counts: a non-negative integer, `0` when absent.
fn count(body: &Map<String, Value>, field: &str) -> Result<u64> {
    let Some(value) = body.get(field) else {
        return Ok(0);
    };
    as_int(value)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            HttpError::invalid_param(format!(
                "{} parameter must be a positive int",
                python_repr(value)
            ))
        })
}

/// `POST /_synapse/admin/v1/users/{userId}/override_ratelimit`: the user's own message rate
/// (both `0`: no limit of their own). The tenant's own quota still bounds all its users.
async fn set_ratelimit_override(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Only local users can be ratelimited",
        "User not found",
    )
    .await?;
    let limit = RateLimitOverride {
        messages_per_second: count(&body, "messages_per_second")?,
        burst_count: count(&body, "burst_count")?,
    };
    let accounts = tenant.accounts();
    accounts
        .set_ratelimit_override(localpart, Some(limit))
        .await?;
    tracing::info!(%user_id, "user rate limit overridden by an admin");
    Ok(Json(override_json(&limit)))
}

/// `DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit`
async fn delete_ratelimit_override(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Only local users can be ratelimited",
        "User not found",
    )
    .await?;
    tenant
        .accounts()
        .set_ratelimit_override(localpart, None)
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/experimental_features/{userId}`: Synapse's features, each off.
async fn experimental_features(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    local(
        &tenant,
        &user_id,
        "User must be local to check what experimental features are enabled.",
    )?;
    let features: Map<String, Value> = EXPERIMENTAL_FEATURES
        .iter()
        .map(|f| ((*f).to_owned(), Value::Bool(false)))
        .collect();
    Ok(Json(json!({ "features": features })))
}

/// `PUT /_synapse/admin/v1/experimental_features/{userId}`: names are checked as Synapse
/// checks them; switching one off is accepted (they are all off), switching one on is refused,
/// since maas has none of them to switch on.
async fn set_experimental_features(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    local(
        &tenant,
        &user_id,
        "User must be local to enable experimental features.",
    )?;
    let features = match body.get("features") {
        Some(Value::Object(features)) if !features.is_empty() => features,
        Some(Value::Object(_)) | None | Some(Value::Null) => {
            return Err(bad_request("You must provide features to set."));
        }
        Some(_) => return Err(bad_request("'features' must be an object")),
    };
    for name in features.keys() {
        if !EXPERIMENTAL_FEATURES.contains(&name.as_str()) {
            return Err(bad_request(format!(
                "'{name}' is not recognised as a valid experimental feature."
            )));
        }
    }
    if let Some((name, _)) = features.iter().find(|(_, on)| super::truthy(on)) {
        return Err(bad_request(format!(
            "'{name}' is not available on this server"
        )));
    }
    Ok(Json(json!({})))
}
