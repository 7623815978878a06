//! What an admin reads about a user: rooms and memberships, pushers, account data, counts of
//! invites and joins, and the user behind a third-party id or an external identity.

use axum::Json;
use axum::routing::get;
use maas_core::Error;
use ruma::OwnedUserId;
use serde_json::{Map, Value, json};

use super::super::auth::AdminUser;
use super::super::query::SynapseQuery;
use super::{V1, existing};
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    let user = format!("{V1}/users/{{user_id}}");
    router
        .route(&format!("{user}/joined_rooms"), get(joined_rooms))
        .route(&format!("{user}/memberships"), get(memberships))
        .route(&format!("{user}/pushers"), get(pushers))
        .route(&format!("{user}/accountdata"), get(account_data))
        .route(&format!("{user}/sent_invite_count"), get(sent_invite_count))
        .route(
            &format!("{user}/cumulative_joined_room_count"),
            get(cumulative_joined_room_count),
        )
        .route(
            &format!("{V1}/threepid/{{medium}}/users/{{address}}"),
            get(user_by_threepid),
        )
        .route(
            &format!("{V1}/auth_providers/{{provider}}/users/{{external_id}}"),
            get(user_by_external_id),
        )
}

/// `GET /_synapse/admin/v1/users/{userId}/joined_rooms`: any user, local or not, as far as
/// the tenant knows their rooms (none for a user it doesn't know), as Synapse.
async fn joined_rooms(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let rooms = tenant.rooms().joined_rooms(&user_id).await?;
    Ok(Json(json!({ "total": rooms.len(), "joined_rooms": rooms })))
}

/// `GET /_synapse/admin/v1/users/{userId}/memberships`: every room's last membership of the
/// user, rooms left included.
async fn memberships(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let memberships = tenant.accounts().memberships_of(&user_id).await?;
    let map: Map<String, Value> = memberships
        .into_iter()
        .map(|(room_id, membership)| (room_id, Value::String(membership)))
        .collect();
    Ok(Json(json!({ "memberships": map })))
}

/// `GET /_synapse/admin/v1/users/{userId}/pushers`. maas has no pushers (its Client-Server
/// API sets none), so every user's list is empty: that is the state, not a stand-in.
async fn pushers(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    existing(
        &tenant,
        &user_id,
        "Can only look up local users",
        "User not found",
    )
    .await?;
    Ok(Json(json!({ "pushers": [], "total": 0 })))
}

/// `GET /_synapse/admin/v1/users/{userId}/accountdata`
async fn account_data(
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
    let mut global = Map::new();
    let mut rooms: Map<String, Value> = Map::new();
    for (room_id, data_type, content) in tenant.accounts().account_data_of(localpart).await? {
        match room_id {
            None => {
                global.insert(data_type, content);
            }
            Some(room_id) => {
                let room = rooms.entry(room_id).or_insert_with(|| json!({}));
                if let Value::Object(room) = room {
                    room.insert(data_type, content);
                }
            }
        }
    }
    Ok(Json(
        json!({ "account_data": { "global": global, "rooms": rooms } }),
    ))
}

/// `from_ts`, which both counts require.
fn from_ts(query: &SynapseQuery) -> Result<i64> {
    let from_ts = query.optional_integer("from_ts")?.ok_or_else(|| {
        HttpError::missing_param("Missing required integer query parameter from_ts")
    })?;
    Ok(i64::try_from(from_ts).unwrap_or(i64::MAX))
}

/// `GET /_synapse/admin/v1/users/{userId}/sent_invite_count?from_ts=`: invites the user sent
/// at or after `from_ts` (by the events' timestamps).
async fn sent_invite_count(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let from_ts = from_ts(&query)?;
    let count = tenant
        .accounts()
        .sent_invite_count(&user_id, from_ts)
        .await?;
    Ok(Json(json!({ "invite_count": count })))
}

/// `GET /_synapse/admin/v1/users/{userId}/cumulative_joined_room_count?from_ts=`: rooms the
/// user joined at or after `from_ts`, left since or not.
async fn cumulative_joined_room_count(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let from_ts = from_ts(&query)?;
    let count = tenant
        .accounts()
        .joined_room_count_since(&user_id, from_ts)
        .await?;
    Ok(Json(json!({ "cumulative_joined_room_count": count })))
}

fn user_found(user_id: Option<OwnedUserId>) -> Result<Json<Value>> {
    let user_id = user_id.ok_or_else(|| Error::NotFound("User not found".into()))?;
    Ok(Json(json!({ "user_id": user_id })))
}

/// `GET /_synapse/admin/v1/threepid/{medium}/users/{address}`
async fn user_by_threepid(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((medium, address)): Path<(String, String)>,
) -> Result<Json<Value>> {
    user_found(
        tenant
            .accounts()
            .user_by_threepid(&medium, &address)
            .await?,
    )
}

/// `GET /_synapse/admin/v1/auth_providers/{provider}/users/{externalId}`
async fn user_by_external_id(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((provider, external_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    user_found(
        tenant
            .accounts()
            .user_by_external_id(&provider, &external_id)
            .await?,
    )
}
