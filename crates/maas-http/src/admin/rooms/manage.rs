//! An admin's changes to a room: blocking it, joining a local user to it, and making a user
//! its admin.

use axum::Json;
use maas_core::Error;
use ruma::{OwnedServerName, ServerName};
use serde_json::{Value, json};

use super::super::auth::AdminUser;
use super::body::{JsonObject, MaybeJsonObject, legal_room_id, user_id};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};

/// `GET /_synapse/admin/v1/rooms/{roomId}/block`
pub(super) async fn block_status(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = legal_room_id(&room_id)?;
    let body = match tenant.rooms().admin().blocked_by(&room_id).await? {
        Some(user_id) => json!({ "block": true, "user_id": user_id }),
        None => json!({ "block": false }),
    };
    Ok(Json(body))
}

/// `PUT /_synapse/admin/v1/rooms/{roomId}/block`
pub(super) async fn set_block(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(room_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let room_id = legal_room_id(&room_id)?;
    let block = match body.get("block") {
        None => return Err(HttpError::missing_param("Missing params: ['block']")),
        Some(Value::Bool(block)) => *block,
        Some(_) => return Err(HttpError::bad_json("Param 'block' must be a boolean.")),
    };
    let rooms = tenant.rooms();
    let admin_rooms = rooms.admin();
    if block {
        admin_rooms.block(&room_id, &admin.user_id).await?;
    } else {
        admin_rooms.unblock(&room_id).await?;
    }
    Ok(Json(json!({ "block": block })))
}

/// `POST /_synapse/admin/v1/join/{roomIdOrAlias}`, with `server_name` query parameters for a
/// room of other servers.
pub(super) async fn join_room(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(room): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    if !body.contains_key("user_id") {
        return Err(HttpError::missing_param("Missing params: ['user_id']"));
    }
    let Some(user) = user_id(&body, "user_id")? else {
        return Err(HttpError::invalid_param("user_id must be a user id"));
    };
    let mut servers: Vec<OwnedServerName> = Vec::new();
    for (key, value) in &query {
        if key == "server_name" {
            let server = ServerName::parse(value)
                .map_err(|e| HttpError::invalid_param(format!("Invalid server_name: {e}")))?;
            servers.push(server);
        }
    }
    let rooms = tenant.rooms();
    let admin_rooms = rooms.admin();
    let (room_id, servers) = admin_rooms.resolve(&room, servers).await?;
    admin_rooms
        .join_user(&admin.user_id, &room_id, &servers, &user)
        .await?;
    tracing::info!(%room_id, %user, admin = %admin.user_id, "user joined to a room by an admin");
    Ok(Json(json!({ "room_id": room_id })))
}

/// `POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin`
pub(super) async fn make_room_admin(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(room): Path<String>,
    MaybeJsonObject(body): MaybeJsonObject,
) -> Result<Json<Value>> {
    let user = user_id(&body, "user_id")?.unwrap_or_else(|| admin.user_id.clone());
    let rooms = tenant.rooms();
    let admin_rooms = rooms.admin();
    let (room_id, _) = admin_rooms.resolve(&room, Vec::new()).await?;
    match admin_rooms.make_room_admin(&room_id, &user).await {
        Ok(()) => {}
        Err(Error::NotFound(m)) if m == "Room not found" => {
            return Err(Error::Unknown("Server not in room".into()).into());
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(%room_id, %user, admin = %admin.user_id, "room admin made by an admin");
    Ok(Json(json!({})))
}
