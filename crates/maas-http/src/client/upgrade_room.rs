//! Room upgrades (spec: "Room Upgrades"; ruma `room::upgrade_room`): replacing a room by a new
//! one of another room version, tombstoning the old.

use ruma::api::client::room::upgrade_room;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<upgrade_room::v3::Request, _, _>(router, upgrade_room)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
async fn upgrade_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<upgrade_room::v3::Request>,
) -> Result<RumaResponse<upgrade_room::v3::Response>> {
    let new_room = tenant
        .rooms()
        .upgrade(&user, &req.room_id, &req.new_version)
        .await?;
    Ok(upgrade_room::v3::Response::new(new_room).into())
}
