//! A user's devices as an admin manages them (Synapse's `devices.py`), and their sessions
//! (`whois`, also the Client-Server API's `GET /admin/whois/{userId}`).

use axum::Json;
use axum::http::StatusCode;
use axum::routing::{get, post};
use maas_core::accounts::Device;
use maas_core::{Error, Tenant};
use ruma::OwnedUserId;
use serde_json::{Value, json};

use super::super::auth::AdminUser;
use super::super::json::{JsonObject, bad_request, require};
use super::{OptionalJsonObject, V1, V2, existing, local};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let whois_paths = [
        format!("{V1}/whois/{{user_id}}"),
        "/_matrix/client/v3/admin/whois/{user_id}".to_owned(),
        "/_matrix/client/r0/admin/whois/{user_id}".to_owned(),
    ];
    let router = whois_paths
        .iter()
        .fold(router, |router, path| router.route(path, get(whois)));
    router
        .route(
            &format!("{V2}/users/{{user_id}}/devices"),
            get(list_devices).post(create_device),
        )
        .route(
            &format!("{V2}/users/{{user_id}}/devices/{{device_id}}"),
            get(device).put(update_device).delete(delete_device),
        )
        .route(
            &format!("{V2}/users/{{user_id}}/delete_devices"),
            post(delete_devices),
        )
}

/// A device as Synapse's admin API shows it. maas records no user agents, and has no
/// dehydrated devices.
fn device_json(user_id: &OwnedUserId, device: &Device) -> Value {
    json!({
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
        "last_seen_user_agent": null,
        "user_id": user_id,
        "dehydrated": false,
    })
}

/// The user's localpart, with Synapse's errors of the device endpoints.
async fn device_owner<'a>(tenant: &Tenant, user_id: &'a OwnedUserId) -> Result<&'a str> {
    existing(
        tenant,
        user_id,
        "Can only lookup local users",
        "Unknown user",
    )
    .await
}

/// `GET /_synapse/admin/v2/users/{userId}/devices`
async fn list_devices(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let localpart = device_owner(&tenant, &user_id).await?;
    let devices = tenant.accounts().devices_of(localpart).await?;
    let listed: Vec<Value> = devices.iter().map(|d| device_json(&user_id, d)).collect();
    Ok(Json(json!({ "devices": listed, "total": listed.len() })))
}

/// `POST /_synapse/admin/v2/users/{userId}/devices`: creates the device unless it exists;
/// `201` either way, as Synapse.
async fn create_device(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Value>)> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Can only create devices for local users",
        "Unknown user",
    )
    .await?;
    let device_id = match body.get("device_id") {
        None | Some(Value::Null) => return Err(bad_request("Missing device_id")),
        Some(Value::String(id)) if id.is_empty() => return Err(bad_request("Missing device_id")),
        Some(Value::String(id)) => id,
        Some(_) => return Err(bad_request("device_id must be a string")),
    };
    tenant
        .accounts()
        .create_device_of(localpart, device_id)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// `GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}`
async fn device(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((user_id, device_id)): Path<(OwnedUserId, String)>,
) -> Result<Json<Value>> {
    let localpart = device_owner(&tenant, &user_id).await?;
    let Some(device) = tenant.accounts().device_of(localpart, &device_id).await? else {
        return Err(Error::NotFound("No device found".into()).into());
    };
    Ok(Json(device_json(&user_id, &device)))
}

/// `PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}`: without `display_name` the
/// name stays.
async fn update_device(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((user_id, device_id)): Path<(OwnedUserId, String)>,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Json<Value>> {
    let localpart = device_owner(&tenant, &user_id).await?;
    let display_name = match body.get("display_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => {
            return Err(HttpError::invalid_param("display_name must be a string"));
        }
    };
    tenant
        .accounts()
        .rename_device_of(localpart, &device_id, display_name)
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}`: the device and its access
/// tokens; a device the user doesn't have is no error.
async fn delete_device(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((user_id, device_id)): Path<(OwnedUserId, String)>,
) -> Result<Json<Value>> {
    let localpart = device_owner(&tenant, &user_id).await?;
    tenant
        .accounts()
        .delete_devices_of(localpart, &[device_id])
        .await?;
    Ok(Json(json!({})))
}

/// `POST /_synapse/admin/v2/users/{userId}/delete_devices` with `{"devices": [ids]}`
async fn delete_devices(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let localpart = device_owner(&tenant, &user_id).await?;
    require(&body, &["devices"])?;
    let ids = body
        .get("devices")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        })
        .ok_or_else(|| HttpError::invalid_param("devices must be a list of device ids"))?;
    tenant.accounts().delete_devices_of(localpart, &ids).await?;
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/whois/{userId}` (and the Client-Server API's): a user may ask about
/// themselves, an admin about anyone. Every device seen from an address is one connection,
/// under Synapse's single `""` device and session; maas keeps no user agents.
async fn whois(
    ForTenant(tenant): ForTenant,
    Authed(requester): Authed,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    if requester.user_id != user_id && !requester.admin {
        return Err(HttpError::forbidden("You are not a server admin"));
    }
    let localpart = local(&tenant, &user_id, "Can only whois a local user")?;
    let devices = tenant.accounts().devices_of(localpart).await?;
    let connections: Vec<Value> = devices
        .iter()
        .filter_map(|d| {
            let ip = d.last_seen_ip.as_deref()?;
            Some(json!({
                "ip": ip,
                "last_seen": d.last_seen_ts,
                "user_agent": null,
            }))
        })
        .collect();
    Ok(Json(json!({
        "user_id": user_id,
        "devices": { "": { "sessions": [{ "connections": connections }] } },
    })))
}
