//! Space hierarchies between servers (spec: Server-Server API, "Spaces", `GET
//! /hierarchy/{roomId}`): a tenant tells other servers of a space it is in and of the children
//! it is in too, and asks other servers about the rooms of a tree it isn't in.

use std::time::Duration;

use ruma::api::federation::space::get_hierarchy;
use ruma::room::RoomSummary;
use ruma::{OwnedRoomId, RoomId, ServerName};

use crate::rooms::hierarchy::{SpaceRoom, known_room, server_may_see};
use crate::{Error, Result, Tenant};

/// Children told of in one answer at most, as Synapse does: a space's answer stays small, and
/// the asking server asks again for the children it walks into.
const MAX_CHILDREN: usize = 50;
/// How long a client's walk waits for another server.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// A space and its children, as another server may see them.
#[derive(Debug)]
pub struct SpaceAnswer {
    pub room: SpaceRoom,
    /// Children this tenant is in that `origin` could peek into or join.
    pub children: Vec<RoomSummary>,
    /// Children this tenant is in that `origin` could not.
    pub inaccessible_children: Vec<OwnedRoomId>,
}

/// `GET /_matrix/federation/v1/hierarchy/{roomId}`: the room and its children for `origin`;
/// `404` when this tenant isn't in the room or `origin` could neither peek into nor join it,
/// `403` when the room's server ACL shuts `origin` out.
pub async fn answer(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<SpaceAnswer> {
    let not_found = || Error::NotFound(format!("Unknown room {room_id}"));
    let room = known_room(tenant, room_id, suggested_only)
        .await?
        .ok_or_else(not_found)?;
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
    if !server_may_see(tenant, origin, &room).await? {
        return Err(not_found());
    }
    let mut answer = SpaceAnswer {
        room: room.space_room(),
        children: Vec::new(),
        inaccessible_children: Vec::new(),
    };
    for child in room.children.iter().take(MAX_CHILDREN) {
        // Rooms this tenant isn't in are left out: their own servers tell of them.
        let Some(known) = known_room(tenant, &child.room_id, suggested_only).await? else {
            continue;
        };
        let allowed = super::acl::ensure_allowed(tenant, &child.room_id, origin)
            .await
            .is_ok();
        if allowed && server_may_see(tenant, origin, &known).await? {
            answer.children.push(known.summary);
        } else {
            answer.inaccessible_children.push(child.room_id.clone());
        }
    }
    Ok(answer)
}

/// Asks `server` for a room's hierarchy for one of our users' walks; an answer about another
/// room than the one asked is the server failing.
pub(crate) async fn ask(
    tenant: &Tenant,
    server: &ServerName,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<get_hierarchy::v1::Response> {
    let mut request = get_hierarchy::v1::Request::new(room_id.to_owned());
    request.suggested_only = suggested_only;
    let send = tenant.federation().send_signed(tenant, server, request);
    let answer = tokio::time::timeout(REMOTE_TIMEOUT, send)
        .await
        .map_err(|_| Error::RemoteUnavailable(format!("{server} did not answer in time")))??;
    if answer.room.summary.room_id != room_id {
        return Err(Error::RemoteUnavailable(format!(
            "{server} answered for {} when asked for {room_id}",
            answer.room.summary.room_id
        )));
    }
    Ok(answer)
}
