//! Rejecting an invite to a room of other servers (spec: Server-Server API, "Leaving Rooms
//! (Rejecting Invites)"): a resident server's `make_leave` gives a leave template, we sign it
//! and `send_leave` it. When no resident server answers, the invite is rejected here alone (an
//! out-of-band leave on top of the invite, never sent), so an unreachable inviter can't leave
//! an invite stuck on our user.

use std::sync::Arc;

use ruma::api::federation::membership::{create_leave_event, prepare_leave_event};
use ruma::events::StateEventType;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedServerName, RoomId, RoomVersionId, ServerName, UserId,
};
use serde_json::{Value, json};

use super::invite::keep_membership;
use super::joining;
use super::received::CheckedPdu;
use crate::rooms::pdu::{self, EventDraft, PduContext};
use crate::rooms::{is_supported_version, rules_of};
use crate::store::MembershipRecord;
use crate::{Error, Result, Tenant};

/// Rejects `user`'s invite (or withdraws their knock) in a room none of our users is in:
/// through the inviting server, or here alone if no resident server answers.
pub(crate) async fn reject(
    tenant: &Tenant,
    user: &UserId,
    room_id: &RoomId,
    pending: &MembershipRecord,
    reason: Option<&str>,
) -> Result<()> {
    let mut content = json!({ "membership": "leave" });
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        content["reason"] = json!(reason);
    }
    let inviter: Vec<OwnedServerName> = UserId::parse(&pending.sender)
        .map(|sender| vec![sender.server_name().to_owned()])
        .unwrap_or_default();
    for server in joining::candidates(tenant, room_id, &inviter) {
        match leave_through(tenant, &server, user, room_id, &content).await {
            Ok(leave) => return keep_membership(tenant, &leave, user, "leave", None).await,
            Err(e) => {
                tracing::info!(%room_id, %server, error = %e, "leaving through a server failed");
            }
        }
    }
    let leave = out_of_band(tenant, user, room_id, pending, content).await?;
    keep_membership(tenant, &leave, user, "leave", None).await
}

async fn leave_through(
    tenant: &Tenant,
    server: &ServerName,
    user: &UserId,
    room_id: &RoomId,
    content: &Value,
) -> Result<CheckedPdu> {
    let request = prepare_leave_event::v1::Request::new(room_id.to_owned(), user.to_owned());
    let template = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    let version = template.room_version.unwrap_or(RoomVersionId::V1);
    if !is_supported_version(&version) {
        return Err(Error::IncompatibleRoomVersion(version.to_string()));
    }
    let rules = rules_of(version.as_str())?;
    let leave = joining::sign(tenant, &rules, room_id, user, &template.event, content).await?;
    let raw = joining::received_form(&leave.pdu)?;
    let request =
        create_leave_event::v2::Request::new(room_id.to_owned(), leave.pdu.event_id.clone(), raw);
    tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    Ok(leave)
}

/// A leave made here alone, on top of the invite or knock it ends, in the room's version as
/// the stripped state names it.
async fn out_of_band(
    tenant: &Tenant,
    user: &UserId,
    room_id: &RoomId,
    pending: &MembershipRecord,
    content: Value,
) -> Result<CheckedPdu> {
    let id = ruma::EventId::parse(&pending.event_id)
        .map_err(|e| Error::Internal(format!("stored event id {}: {e}", pending.event_id)))?;
    let previous = tenant
        .state_cache()
        .pdu(tenant.store(), &id)
        .await?
        .ok_or_else(|| Error::Internal(format!("the pending membership {id} is not stored")))?;
    let rules = rules_of(&room_version_of(pending))?;
    let key = tenant.signing_key().await?;
    let previous: [Arc<pdu::Pdu>; 1] = [previous];
    let ctx = PduContext {
        rules: &rules,
        server_name: tenant.server_name(),
        key: &key,
        room_id: Some(room_id),
        sender: user,
        prev_events: &previous,
        auth_events: &previous,
        origin_server_ts: MilliSecondsSinceUnixEpoch::now(),
    };
    let draft = EventDraft::state(
        StateEventType::RoomMember.to_string().as_str(),
        user.as_str(),
        content,
    );
    let (pdu, canonical) = pdu::build(&ctx, draft)?;
    Ok(CheckedPdu { pdu, canonical })
}

/// The room version the stripped state's create event names; version 1 when it names none
/// (as a create event without one means).
fn room_version_of(pending: &MembershipRecord) -> String {
    let stripped: Vec<Value> = pending
        .stripped_state
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    stripped
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .and_then(|e| e["content"]["room_version"].as_str())
        .filter(|v| RoomVersionId::try_from(*v).is_ok_and(|v| is_supported_version(&v)))
        .unwrap_or("1")
        .to_owned()
}
