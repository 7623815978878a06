//! Spaces (spec: Server-Server API, "Spaces"; ruma `space`): a space of the tenant and its
//! children, for other servers walking its tree.

use maas_core::federation::hierarchy;
use ruma::api::federation::space::{SpaceHierarchyParentSummary, get_hierarchy};

use super::authentication::Origin;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_hierarchy::v1::Request, _, _>(router, get_hierarchy)
}

/// `GET /_matrix/federation/v1/hierarchy/{roomId}`
async fn get_hierarchy(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_hierarchy::v1::Request>,
) -> Result<RumaResponse<get_hierarchy::v1::Response>> {
    let answer = hierarchy::answer(&tenant, &origin, &req.room_id, req.suggested_only).await?;
    let room = SpaceHierarchyParentSummary::new(answer.room.summary, answer.room.children_state);
    let mut response = get_hierarchy::v1::Response::new(room);
    response.children = answer.children;
    response.inaccessible_children = answer.inaccessible_children;
    Ok(response.into())
}
