//! One event by id, whatever the room and whoever asks among the admins (Synapse: "Fetch Event
//! API"), in the raw (federation) format Synapse answers with.

use axum::Json;
use axum::routing::get;
use ruma::OwnedEventId;
use serde_json::{Value, json};

use super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

pub fn routes(router: AppRouter) -> AppRouter {
    router.route(
        "/_synapse/admin/v1/fetch_event/{event_id}",
        get(fetch_event),
    )
}

/// `GET /_synapse/admin/v1/fetch_event/{eventId}`: an id that is no event id names no event.
async fn fetch_event(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(event_id): Path<String>,
) -> Result<Json<Value>> {
    let Ok(event_id) = OwnedEventId::try_from(event_id) else {
        return Err(HttpError::from(maas_core::Error::NotFound(
            "Event not found".into(),
        )));
    };
    let event = tenant.server_admin().event(&event_id).await?;
    Ok(Json(json!({ "event": event })))
}
