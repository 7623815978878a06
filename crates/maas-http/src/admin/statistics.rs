//! Statistics (Synapse: "Statistics API" and "Users' media usage statistics"): the local media
//! each user uploaded, and the rooms taking the most database space. `synapse_admin_api` has
//! no types for these; the shapes are Synapse's. Synapse answers the room sizes on PostgreSQL
//! only; maas measures its events on both backends.

use axum::Json;
use axum::routing::get;
use maas_core::server_admin::{UserMediaOrder, UserMediaQuery};
use serde_json::{Value, json};

use super::auth::AdminUser;
use super::query::SynapseQuery;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::routes::AppRouter;

const STATISTICS: &str = "/_synapse/admin/v1/statistics";

/// Users listed per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 100;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(&format!("{STATISTICS}/users/media"), get(users_media))
        .route(&format!("{STATISTICS}/database/rooms"), get(largest_rooms))
}

/// A timestamp parameter: a non-negative integer, as Synapse's `parse_integer`.
fn timestamp(query: &SynapseQuery, name: &str) -> Result<Option<i64>> {
    query
        .optional_integer(name)?
        .map(|ts| {
            i64::try_from(ts).map_err(|_| {
                HttpError::invalid_param(format!("Query parameter {name} must be an integer"))
            })
        })
        .transpose()
}

/// `GET /_synapse/admin/v1/statistics/users/media`
async fn users_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let order = match query.one_of(
        "order_by",
        &["media_length", "media_count", "user_id", "displayname"],
        "user_id",
    )? {
        "media_length" => UserMediaOrder::MediaLength,
        "media_count" => UserMediaOrder::MediaCount,
        "displayname" => UserMediaOrder::Displayname,
        _ => UserMediaOrder::UserId,
    };
    let request = UserMediaQuery {
        offset: query.integer("from", 0)?,
        limit: query.integer("limit", DEFAULT_LIMIT)?,
        from_ts: timestamp(&query, "from_ts")?.unwrap_or(0),
        until_ts: timestamp(&query, "until_ts")?,
        search_term: query.string("search_term").map(str::to_owned),
        order,
        backwards: query.backwards(false)?,
    };
    let (page, total) = tenant.server_admin().users_media(&request).await?;
    let users: Vec<Value> = page
        .iter()
        .map(|u| {
            json!({
                "user_id": u.user_id,
                "displayname": u.displayname,
                "media_count": u.media_count,
                "media_length": u.media_length,
            })
        })
        .collect();
    let shown = users.len() as u64;
    let mut body = json!({ "users": users, "total": total });
    if request.offset.saturating_add(request.limit) < total {
        body["next_token"] = json!(request.offset + shown);
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v1/statistics/database/rooms`
async fn largest_rooms(ForTenant(tenant): ForTenant, _: AdminUser) -> Result<Json<Value>> {
    let rooms: Vec<Value> = tenant
        .server_admin()
        .largest_rooms()
        .await?
        .into_iter()
        .map(|(room_id, size)| json!({ "room_id": room_id, "estimated_size": size }))
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
}
