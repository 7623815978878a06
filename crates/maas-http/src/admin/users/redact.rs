//! Redacting a user's events in bulk, as a background task whose status an admin polls
//! (Synapse: "Redact events of a user", "Check the status of a redaction process").

use axum::Json;
use axum::routing::{get, post};
use maas_core::rooms::redact_user::{RedactionOutcome, UserRedaction};
use ruma::OwnedUserId;
use serde_json::{Map, Value, json};

use super::super::json::{JsonObject, as_int, bad_request};
use super::{Admin, V1};
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router
        .route(&format!("{V1}/user/{{user_id}}/redact"), post(redact_user))
        .route(
            &format!("{V1}/user/redact_status/{{redact_id}}"),
            get(redact_status),
        )
}

/// `POST /_synapse/admin/v1/user/{userId}/redact`
async fn redact_user(
    ForTenant(tenant): ForTenant,
    Admin(admin): Admin,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    let redaction = redaction_of(&body)?;
    let redact_id = tenant
        .rooms()
        .admin()
        .start_user_redaction(&admin.user_id, &user_id, redaction)
        .await?;
    Ok(Json(json!({ "redact_id": redact_id })))
}

/// `GET /_synapse/admin/v1/user/redact_status/{redactId}`
async fn redact_status(
    ForTenant(tenant): ForTenant,
    _: Admin,
    Path(redact_id): Path<String>,
) -> Result<Json<Value>> {
    let task = tenant.rooms().admin().user_redaction(&redact_id).await?;
    let Some(task) = task else {
        return Err(HttpError::new(
            http::StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            format!("redact id '{redact_id}' not found"),
        ));
    };
    let body = match task.status.as_str() {
        "complete" => {
            let outcome: RedactionOutcome = task
                .result
                .and_then(|r| serde_json::from_value(r).ok())
                .unwrap_or_default();
            json!({ "status": "complete", "failed_redactions": outcome.failed_redactions })
        }
        "active" | "scheduled" => json!({ "status": task.status }),
        _ => {
            let error = task.error.filter(|e| !e.is_empty()).unwrap_or_else(|| {
                "Unknown error, please check the logs for more information.".into()
            });
            json!({ "status": "failed", "error": error })
        }
    };
    Ok(Json(body))
}

/// The body as Synapse's model reads it: `rooms` a list of strings (required), `reason` a
/// string, `limit` and the times integers, `use_admin` a boolean; `null` is absent.
fn redaction_of(body: &Map<String, Value>) -> Result<UserRedaction> {
    let rooms = match body.get("rooms") {
        None => return Err(HttpError::missing_param("rooms: Field required")),
        Some(Value::Array(rooms)) => rooms,
        Some(_) => {
            return Err(HttpError::invalid_param(
                "rooms: Input should be a valid list",
            ));
        }
    };
    let mut room_ids = Vec::with_capacity(rooms.len());
    for (i, room) in rooms.iter().enumerate() {
        let Value::String(room) = room else {
            return Err(HttpError::invalid_param(format!(
                "rooms.{i}: Input should be a valid string"
            )));
        };
        room_ids.push(room.clone());
    }
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => {
            return Err(HttpError::invalid_param(
                "reason: Input should be a valid string",
            ));
        }
    };
    let use_admin = match body.get("use_admin") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(HttpError::invalid_param(
                "use_admin: Input should be a valid boolean",
            ));
        }
    };
    let limit = int_field(body, "limit")?;
    if limit.is_some_and(|l| l < 0) {
        return Err(bad_request(
            "If limit is provided it must be a non-negative integer greater than 0.",
        ));
    }
    Ok(UserRedaction {
        rooms: room_ids,
        reason,
        // 0 is Python-false: Synapse lets it through, to its default.
        limit: limit
            .map(|l| u32::try_from(l).unwrap_or(u32::MAX))
            .filter(|l| *l > 0),
        use_admin,
        after_ts: int_field(body, "after_ts")?,
        before_ts: int_field(body, "before_ts")?,
    })
}

/// An optional `StrictInt` field.
fn int_field(body: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_int(value).map(Some).ok_or_else(|| {
            HttpError::invalid_param(format!("{field}: Input should be a valid integer"))
        }),
    }
}
