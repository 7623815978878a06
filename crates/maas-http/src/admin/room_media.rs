//! The media a room's events name (Synapse: "List all media in a room" and "Quarantining media
//! in a room", of the "Media Admin API"): `mxc://` URIs of the tenant's own media and of other
//! servers', and their quarantine.

use axum::Json;
use axum::routing::{get, post};
use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::Result;
use crate::extract::Path;
use crate::routes::AppRouter;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(
            "/_synapse/admin/v1/room/{room_id}/media",
            get(list_room_media),
        )
        .route(
            "/_synapse/admin/v1/room/{room_id}/media/quarantine",
            post(quarantine_room_media),
        )
        .route(
            "/_synapse/admin/v1/quarantine_media/{room_id}",
            post(quarantine_room_media_legacy),
        )
}

/// `GET /_synapse/admin/v1/room/{roomId}/media`: a room the tenant doesn't know has none, as
/// one whose id doesn't parse (Synapse looks either up and finds no events).
async fn list_room_media(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let Ok(room_id) = OwnedRoomId::try_from(room_id) else {
        return Ok(Json(json!({ "local": [], "remote": [] })));
    };
    let media = tenant.server_admin().room_media(&room_id).await?;
    Ok(Json(
        json!({ "local": media.local, "remote": media.remote }),
    ))
}

/// `POST /_synapse/admin/v1/room/{roomId}/media/quarantine`: the media its events name, local
/// (unless protected) and cached remote, in the admin's name. A room the tenant doesn't know,
/// or an id that doesn't parse, has none (Synapse finds no events either).
async fn quarantine_room_media(
    ForTenant(tenant): ForTenant,
    AdminUser(admin): AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let Ok(room_id) = OwnedRoomId::try_from(room_id) else {
        return Ok(Json(json!({ "num_quarantined": 0 })));
    };
    let count = tenant
        .media()
        .quarantine_room(&room_id, &admin.user_id)
        .await?;
    tracing::info!(%room_id, count, "room media quarantined by an admin");
    Ok(Json(json!({ "num_quarantined": count })))
}

/// `POST /_synapse/admin/v1/quarantine_media/{roomId}`: Synapse's older path of the same.
async fn quarantine_room_media_legacy(
    tenant: ForTenant,
    admin: AdminUser,
    room_id: Path<String>,
) -> Result<Json<Value>> {
    quarantine_room_media(tenant, admin, room_id).await
}
