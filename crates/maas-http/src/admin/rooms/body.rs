//! What the rooms endpoints share: request bodies that must be JSON objects (Synapse's
//! `parse_json_object_from_request`), their fields, and room ids in paths.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use maas_core::{Error, Platform};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value};

use crate::error::{HttpError, Result};
use crate::ruma::read_body;

/// A body that is a JSON object; anything else is refused as Synapse refuses it.
pub(super) struct JsonObject(pub Map<String, Value>);

/// As [`JsonObject`], with an empty body read as `{}` (Synapse's `allow_empty_body`).
pub(super) struct MaybeJsonObject(pub Map<String, Value>);

impl FromRequest<Arc<Platform>> for JsonObject {
    type Rejection = HttpError;

    async fn from_request(req: Request, platform: &Arc<Platform>) -> Result<Self> {
        read_object(req, platform, false).await.map(JsonObject)
    }
}

impl FromRequest<Arc<Platform>> for MaybeJsonObject {
    type Rejection = HttpError;

    async fn from_request(req: Request, platform: &Arc<Platform>) -> Result<Self> {
        read_object(req, platform, true).await.map(MaybeJsonObject)
    }
}

async fn read_object(
    req: Request,
    platform: &Platform,
    allow_empty: bool,
) -> Result<Map<String, Value>> {
    let limit = platform.config().limits.max_request_bytes;
    let bytes = read_body(req.into_body(), limit).await?;
    if bytes.is_empty() && allow_empty {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(HttpError::bad_json("Content must be a JSON object.")),
        Err(_) => Err(HttpError::not_json()),
    }
}

/// A boolean field: `default` when absent, `400 M_BAD_JSON` with `message` when not a
/// boolean.
pub(super) fn flag(
    body: &Map<String, Value>,
    key: &str,
    default: bool,
    message: &str,
) -> Result<bool> {
    match body.get(key) {
        None => Ok(default),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(HttpError::bad_json(message)),
    }
}

/// A string field; absent or `null` is none.
pub(super) fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(HttpError::bad_json(format!(
            "Param '{key}' must be a string"
        ))),
    }
}

/// A user id field; absent or `null` is none, anything else must be a valid user id.
pub(super) fn user_id(body: &Map<String, Value>, key: &str) -> Result<Option<OwnedUserId>> {
    let Some(raw) = text(body, key)? else {
        return Ok(None);
    };
    UserId::parse(&raw)
        .map(Some)
        .map_err(|e| HttpError::invalid_param(format!("Invalid user id {raw:?}: {e}")))
}

/// A room id where Synapse checks it first: `400` for one that is not.
pub(super) fn legal_room_id(raw: &str) -> Result<OwnedRoomId> {
    RoomId::parse(raw).map_err(|_| Error::Unknown(format!("{raw} is not a legal room ID")).into())
}

/// A room id where Synapse just looks the room up: one that is not is a room not found.
pub(super) fn known_room_id(raw: &str) -> Result<OwnedRoomId> {
    RoomId::parse(raw).map_err(|_| Error::NotFound("Room not found".into()).into())
}
