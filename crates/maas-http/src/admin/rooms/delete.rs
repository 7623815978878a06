//! Deleting a room (Synapse: "Delete Room API", versions 1 and 2) and purging a room's
//! history ("Purge History API"), and the status of both.

use axum::Json;
use maas_core::Error;
use maas_core::rooms::tasks::{
    AdminTask, PURGE_HISTORY, PURGE_ROOM, PurgePoint, SHUTDOWN_AND_PURGE_ROOM,
};
use maas_core::rooms::{RoomDeletion, ShutdownOutcome};
use ruma::OwnedEventId;
use serde_json::{Map, Value, json};

use super::super::auth::AdminUser;
use super::body::{JsonObject, MaybeJsonObject, flag, legal_room_id, text, user_id};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::Path;

/// What both versions of the deletion read from the body, checked as Synapse checks it.
fn deletion(body: &Map<String, Value>) -> Result<RoomDeletion> {
    Ok(RoomDeletion {
        block: flag(
            body,
            "block",
            false,
            "Param 'block' must be a boolean, if given",
        )?,
        purge: flag(
            body,
            "purge",
            true,
            "Param 'purge' must be a boolean, if given",
        )?,
        force_purge: flag(
            body,
            "force_purge",
            false,
            "Param 'force_purge' must be a boolean, if given",
        )?,
        new_room_user_id: user_id(body, "new_room_user_id")?,
        room_name: text(body, "room_name")?,
        message: text(body, "message")?,
    })
}

fn outcome_json(outcome: &ShutdownOutcome) -> Value {
    json!({
        "kicked_users": outcome.kicked_users,
        "failed_to_kick_users": outcome.failed_to_kick_users,
        "local_aliases": outcome.local_aliases,
        "new_room_id": outcome.new_room_id,
    })
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}`: answers once the room is deleted.
pub(super) async fn delete_room(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(room_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let deletion = deletion(&body)?;
    let room_id = legal_room_id(&room_id)?;
    let outcome = tenant
        .rooms()
        .admin()
        .delete_now(&admin.user_id, &room_id, deletion)
        .await?;
    Ok(Json(outcome_json(&outcome)))
}

/// `DELETE /_synapse/admin/v2/rooms/{roomId}`: starts the deletion; answers its id.
pub(super) async fn delete_room_v2(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(room_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let deletion = deletion(&body)?;
    let room_id = legal_room_id(&room_id)?;
    let delete_id = tenant
        .rooms()
        .admin()
        .start_deletion(&admin.user_id, &room_id, deletion)
        .await?;
    Ok(Json(json!({ "delete_id": delete_id })))
}

/// A deletion task as its status shows it (with the error, as Synapse's documentation says,
/// once it failed).
fn deletion_status(task: &AdminTask) -> Value {
    let mut status = json!({
        "delete_id": task.id,
        "room_id": task.resource_id,
        "status": task.status,
        "shutdown_room": task.result,
    });
    if let Some(error) = &task.error {
        status["error"] = json!(error);
    }
    status
}

/// `GET /_synapse/admin/v2/rooms/{roomId}/delete_status`
pub(super) async fn delete_status_by_room(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = legal_room_id(&room_id)?;
    let tasks = tenant.rooms().admin().deletions_of(&room_id).await?;
    if tasks.is_empty() {
        let message = format!("No delete task for room_id '{room_id}' found");
        return Err(Error::NotFound(message).into());
    }
    let results: Vec<Value> = tasks.iter().map(deletion_status).collect();
    Ok(Json(json!({ "results": results })))
}

/// `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`
pub(super) async fn delete_status_by_id(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(delete_id): Path<String>,
) -> Result<Json<Value>> {
    let task = tenant.rooms().admin().task(&delete_id).await?;
    let task = task.filter(|t| t.action == PURGE_ROOM || t.action == SHUTDOWN_AND_PURGE_ROOM);
    let Some(task) = task else {
        return Err(Error::NotFound(format!("delete id '{delete_id}' not found")).into());
    };
    Ok(Json(deletion_status(&task)))
}

/// `POST /_synapse/admin/v1/purge_history/{roomId}`
pub(super) async fn purge_history(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
    MaybeJsonObject(body): MaybeJsonObject,
) -> Result<Json<Value>> {
    start_purge(&tenant, &room_id, None, &body).await
}

/// `POST /_synapse/admin/v1/purge_history/{roomId}/{eventId}`
pub(super) async fn purge_history_up_to(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((room_id, event_id)): Path<(String, String)>,
    MaybeJsonObject(body): MaybeJsonObject,
) -> Result<Json<Value>> {
    start_purge(&tenant, &room_id, Some(event_id), &body).await
}

async fn start_purge(
    tenant: &maas_core::Tenant,
    room_id: &str,
    event_id: Option<String>,
    body: &Map<String, Value>,
) -> Result<Json<Value>> {
    let delete_local_events = body.get("delete_local_events").is_some_and(truthy);
    let event_id = match event_id {
        Some(id) => Some(id),
        None => match body.get("purge_up_to_event_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(HttpError::bad_json("purge_up_to_event_id must be a string"));
            }
        },
    };
    let point = match (event_id, body.get("purge_up_to_ts")) {
        (Some(id), _) => {
            let not_found = || Error::NotFound(format!("Could not find event {id}"));
            PurgePoint::Event(OwnedEventId::try_from(id.as_str()).map_err(|_| not_found())?)
        }
        (None, Some(Value::Number(ts))) if ts.is_i64() => {
            PurgePoint::Timestamp(ts.as_i64().unwrap_or_default())
        }
        (None, Some(_)) => return Err(HttpError::bad_json("purge_up_to_ts must be an int")),
        (None, None) => {
            return Err(HttpError::bad_json(
                "must specify purge_up_to_event_id or purge_up_to_ts",
            ));
        }
    };
    let purge_id = tenant
        .rooms()
        .admin()
        .start_history_purge(room_id, point, delete_local_events)
        .await?;
    Ok(Json(json!({ "purge_id": purge_id })))
}

/// Python's truth of a JSON value, which Synapse applies to `delete_local_events`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `GET /_synapse/admin/v1/purge_history_status/{purgeId}`: `active` until it ended.
pub(super) async fn purge_history_status(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(purge_id): Path<String>,
) -> Result<Json<Value>> {
    let task = tenant.rooms().admin().task(&purge_id).await?;
    let Some(task) = task.filter(|t| t.action == PURGE_HISTORY) else {
        return Err(Error::NotFound(format!("purge id '{purge_id}' not found")).into());
    };
    let status = match task.status.as_str() {
        "complete" | "failed" => task.status.as_str(),
        _ => "active",
    };
    let mut body = json!({ "status": status });
    if let Some(error) = &task.error {
        body["error"] = json!(error);
    }
    Ok(Json(body))
}
