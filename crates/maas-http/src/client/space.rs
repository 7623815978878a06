//! Spaces (spec: Client-Server API, "Spaces"; ruma `space`): the hierarchy of the rooms under a
//! space, a page at a time.

use maas_core::rooms::hierarchy::HierarchyQuery;
use ruma::api::client::space::{SpaceHierarchyRoomsChunk, get_hierarchy};

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_hierarchy::v1::Request, _, _>(router, get_hierarchy)
}

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
async fn get_hierarchy(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_hierarchy::v1::Request>,
) -> Result<RumaResponse<get_hierarchy::v1::Response>> {
    let query = HierarchyQuery {
        from: req.from,
        limit: req.limit.map(u64::from),
        max_depth: req.max_depth.map(u64::from),
        suggested_only: req.suggested_only,
    };
    let page = tenant
        .rooms()
        .hierarchy(&user.user_id, &req.room_id, query)
        .await?;
    let mut response = get_hierarchy::v1::Response::new();
    response.next_batch = page.next_batch;
    response.rooms = page
        .rooms
        .into_iter()
        .map(|room| SpaceHierarchyRoomsChunk::new(room.summary, room.children_state))
        .collect();
    Ok(response.into())
}
