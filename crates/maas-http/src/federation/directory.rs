//! The tenant's public room directory for other servers (spec: Server-Server API, "Public
//! Room Directory"; ruma `directory`): `publicRooms`, GET and POST, paged as for clients.

use ruma::api::federation::directory::{get_public_rooms, get_public_rooms_filtered};

use super::authentication::Origin;
use crate::client::directory::public_page;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_public_rooms::v1::Request, _, _>(router, public_rooms);
    route::<get_public_rooms_filtered::v1::Request, _, _>(router, public_rooms_filtered)
}

/// `GET /_matrix/federation/v1/publicRooms`
async fn public_rooms(
    ForTenant(tenant): ForTenant,
    Origin(_origin): Origin,
    Ruma(req): Ruma<get_public_rooms::v1::Request>,
) -> Result<RumaResponse<get_public_rooms::v1::Response>> {
    let found = public_page(&tenant, req.limit, req.since.as_deref(), None).await?;
    let mut response = get_public_rooms::v1::Response::new();
    response.chunk = found.chunk;
    response.next_batch = found.next_batch;
    response.prev_batch = found.prev_batch;
    response.total_room_count_estimate = found.total;
    Ok(response.into())
}

/// `POST /_matrix/federation/v1/publicRooms`
async fn public_rooms_filtered(
    ForTenant(tenant): ForTenant,
    Origin(_origin): Origin,
    Ruma(req): Ruma<get_public_rooms_filtered::v1::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v1::Response>> {
    // As for clients: third-party networks and room types are not filtered on.
    let term = req.filter.generic_search_term.as_deref();
    let found = public_page(&tenant, req.limit, req.since.as_deref(), term).await?;
    let mut response = get_public_rooms_filtered::v1::Response::new();
    response.chunk = found.chunk;
    response.next_batch = found.next_batch;
    response.prev_batch = found.prev_batch;
    response.total_room_count_estimate = found.total;
    Ok(response.into())
}
