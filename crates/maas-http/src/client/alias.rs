//! Room aliases (spec: "Room aliases"; ruma `alias` and `room::aliases`): the tenant's local
//! aliases, resolved, created and deleted, and those of one room.

use ruma::OwnedRoomAliasId;
use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::room::aliases;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_alias::v3::Request, _, _>(router, get_alias);
    let router = route::<create_alias::v3::Request, _, _>(router, create_alias);
    let router = route::<delete_alias::v3::Request, _, _>(router, delete_alias);
    route::<aliases::v3::Request, _, _>(router, aliases)
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`
async fn get_alias(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_alias::v3::Request>,
) -> Result<RumaResponse<get_alias::v3::Response>> {
    let (room_id, servers) = tenant.rooms().alias(&req.room_alias).await?;
    Ok(get_alias::v3::Response::new(room_id, servers).into())
}

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`
async fn create_alias(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_alias::v3::Request>,
) -> Result<RumaResponse<create_alias::v3::Response>> {
    tenant
        .rooms()
        .set_alias(&user, &req.room_alias, &req.room_id)
        .await?;
    Ok(create_alias::v3::Response::new().into())
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
async fn delete_alias(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_alias::v3::Request>,
) -> Result<RumaResponse<delete_alias::v3::Response>> {
    tenant.rooms().delete_alias(&user, &req.room_alias).await?;
    Ok(delete_alias::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`
async fn aliases(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<aliases::v3::Request>,
) -> Result<RumaResponse<aliases::v3::Response>> {
    let aliases = tenant.rooms().aliases(&user, &req.room_id).await?;
    let aliases = aliases
        .iter()
        .filter_map(|alias| OwnedRoomAliasId::try_from(alias.as_str()).ok())
        .collect();
    Ok(aliases::v3::Response::new(aliases).into())
}
