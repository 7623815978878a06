//! The media a room's events name (Synapse: "List all media in a room", of the "Media Admin
//! API"): `mxc://` URIs of the tenant's own media and of other servers'.

use axum::Json;
use axum::routing::get;
use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::Result;
use crate::extract::Path;
use crate::routes::AppRouter;

pub fn routes(router: AppRouter) -> AppRouter {
    router.route(
        "/_synapse/admin/v1/room/{room_id}/media",
        get(list_room_media),
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
