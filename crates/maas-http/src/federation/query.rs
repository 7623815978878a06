//! Queries (spec: Server-Server API, "Querying for information"; ruma `query`): profiles and
//! room aliases of the tenant, for other servers.

use ruma::api::federation::query::{get_profile_information, get_room_information};

use super::authentication::Origin;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_profile_information::v1::Request, _, _>(router, get_profile);
    route::<get_room_information::v1::Request, _, _>(router, get_room_alias)
}

/// `GET /_matrix/federation/v1/query/profile`
async fn get_profile(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_profile_information::v1::Request>,
) -> Result<RumaResponse<get_profile_information::v1::Response>> {
    let fields = tenant
        .queries()
        .profile(&origin, &req.user_id, req.field.as_ref())
        .await?;
    Ok(fields
        .into_iter()
        .collect::<get_profile_information::v1::Response>()
        .into())
}

/// `GET /_matrix/federation/v1/query/directory`
async fn get_room_alias(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_room_information::v1::Request>,
) -> Result<RumaResponse<get_room_information::v1::Response>> {
    let (room_id, servers) = tenant
        .queries()
        .room_alias(&origin, &req.room_alias)
        .await?;
    Ok(get_room_information::v1::Response::new(room_id, servers).into())
}
