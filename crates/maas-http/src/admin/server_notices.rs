//! Notices from the server to a user (Synapse: "Server Notices API"): `POST` sends one, `PUT`
//! with a transaction id sends it once however often it is retried. `synapse_admin_api` has no
//! types for these; the shapes and errors are Synapse's.

use axum::Json;
use axum::routing::{post, put};
use maas_core::server_notices::Notice;
use ruma::{OwnedTransactionId, OwnedUserId};
use serde_json::{Map, Value, json};

use super::auth::AdminUser;
use super::json::{JsonObject, require};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

const SEND: &str = "/_synapse/admin/v1/send_server_notice";

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(SEND, post(send_server_notice))
        .route(&format!("{SEND}/{{txn_id}}"), put(send_server_notice_txn))
}

/// The target and the notice of a request body, checked as Synapse does.
fn parse(body: Map<String, Value>) -> Result<(OwnedUserId, Notice)> {
    require(&body, &["user_id", "content"])?;
    let event_type = match body.get("type") {
        None => "m.room.message".to_owned(),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(HttpError::bad_json("'type' must be a string")),
    };
    let state_key = match body.get("state_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err(HttpError::bad_json("'state_key' must be a string")),
    };
    let Some(Value::Object(content)) = body.get("content") else {
        return Err(HttpError::bad_json("'content' must be a JSON object"));
    };
    let user_id = body
        .get("user_id")
        .and_then(Value::as_str)
        .and_then(|id| OwnedUserId::try_from(id).ok())
        .ok_or_else(|| HttpError::invalid_param("Invalid user ID"))?;
    let notice = Notice {
        event_type,
        state_key,
        content: content.clone(),
    };
    Ok((user_id, notice))
}

/// `POST /_synapse/admin/v1/send_server_notice`
async fn send_server_notice(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let (user_id, notice) = parse(body)?;
    let event_id = tenant.server_notices().send(&user_id, notice, None).await?;
    Ok(Json(json!({ "event_id": event_id })))
}

/// `PUT /_synapse/admin/v1/send_server_notice/{txnId}`
async fn send_server_notice_txn(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Authed(admin): Authed,
    Path(txn_id): Path<OwnedTransactionId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let (user_id, notice) = parse(body)?;
    let event_id = tenant
        .server_notices()
        .send(&user_id, notice, Some((&admin, &txn_id)))
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}
