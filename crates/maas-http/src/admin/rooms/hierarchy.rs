//! A space's rooms as an admin sees them (Synapse: "Admin Space Hierarchy Endpoint"): the
//! client API's hierarchy without its membership checks, of the rooms this tenant is in.

use axum::Json;
use maas_core::rooms::hierarchy::HierarchyQuery;
use ruma::RoomId;
use ruma::api::client::space::SpaceHierarchyRoomsChunk;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};

#[derive(Deserialize)]
pub(super) struct HierarchyParams {
    from: Option<String>,
    limit: Option<i64>,
    max_depth: Option<i64>,
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/hierarchy`
pub(super) async fn room_hierarchy(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
    Query(params): Query<HierarchyParams>,
) -> Result<Json<Value>> {
    if params.limit.is_some_and(|l| l <= 0) {
        return Err(HttpError::bad_json("'limit' must be a positive integer"));
    }
    if params.max_depth.is_some_and(|d| d < 0) {
        return Err(HttpError::bad_json(
            "'max_depth' must be a non-negative integer",
        ));
    }
    // Synapse walks from any id it is given; one that is no room id names no room here.
    let Ok(room_id) = RoomId::parse(&room_id) else {
        return Ok(Json(json!({ "rooms": [] })));
    };
    let query = HierarchyQuery {
        from: params.from,
        limit: params.limit.and_then(|l| u64::try_from(l).ok()),
        max_depth: params.max_depth.and_then(|d| u64::try_from(d).ok()),
        suggested_only: false,
    };
    let page = tenant.rooms().admin_hierarchy(&room_id, query).await?;
    let rooms = page
        .rooms
        .into_iter()
        .map(|room| {
            let chunk = SpaceHierarchyRoomsChunk::new(room.summary, room.children_state);
            let mut chunk =
                serde_json::to_value(chunk).map_err(|e| HttpError::internal(e.to_string()))?;
            // ruma leaves out the spec's default; Synapse always names the rule.
            if let Some(chunk) = chunk.as_object_mut() {
                chunk.entry("join_rule").or_insert_with(|| json!("public"));
            }
            Ok(chunk)
        })
        .collect::<Result<Vec<Value>>>()?;
    let mut body = Map::new();
    body.insert("rooms".into(), Value::Array(rooms));
    if let Some(next_batch) = page.next_batch {
        body.insert("next_batch".into(), Value::String(next_batch));
    }
    Ok(Json(Value::Object(body)))
}
