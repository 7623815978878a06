//! Server access control lists (spec: Client-Server API, "Server Access Control Lists"): a
//! room's `m.room.server_acl` state names the servers that may take part; PDUs, joins and
//! reads of the room from any other server are refused.

use ruma::events::StateEventType;
use ruma::events::room::server_acl::RoomServerAclEventContent;
use ruma::{RoomId, ServerName};

use crate::{Error, Result, Tenant};

/// Refuses `origin` when the room's current server ACL doesn't allow it. A room without an
/// ACL, or whose ACL doesn't parse, allows everyone (as the spec says of a missing one).
pub(crate) async fn ensure_allowed(
    tenant: &Tenant,
    room_id: &RoomId,
    origin: &ServerName,
) -> Result<()> {
    let Some(acl) = server_acl(tenant, room_id).await? else {
        return Ok(());
    };
    if acl.is_allowed(origin) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{origin} is not allowed in {room_id} by its server ACL"
    )))
}

async fn server_acl(
    tenant: &Tenant,
    room_id: &RoomId,
) -> Result<Option<RoomServerAclEventContent>> {
    let head = tenant.room_heads().snapshot(tenant, room_id).await?;
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let state = cache.group(store, head.state_group).await?;
    let key = (StateEventType::RoomServerAcl, String::new());
    let Some(id) = state.get(&key) else {
        return Ok(None);
    };
    let Some(pdu) = cache.pdu(store, id).await? else {
        return Ok(None);
    };
    Ok(pdu.content_as::<RoomServerAclEventContent>())
}
