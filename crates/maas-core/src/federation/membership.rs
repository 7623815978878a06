//! Joining this tenant's rooms from another server (spec: Server-Server API, "Joining Rooms"):
//! `make_join` hands the joining server a join event built on the room's head, for it to sign;
//! `send_join` takes the signed event through the event pipeline and answers with the room's
//! state before it and the auth chain of both, everything the joining server needs to check
//! the room for itself.

use std::collections::BTreeSet;

use ruma::canonical_json::CanonicalJsonValue;
use ruma::events::TimelineEventType;
use ruma::{EventId, OwnedEventId, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::json;
use serde_json::value::RawValue as RawJsonValue;

use super::{events, received};
use crate::rooms::pdu::{EventDraft, Pdu};
use crate::rooms::pipeline::Received;
use crate::rooms::{build, check, rules_of};
use crate::{Error, Result, Tenant};

/// `make_join`'s answer: the room's version and the unsigned join event.
pub struct JoinTemplate {
    pub room_version: RoomVersionId,
    pub event: Box<RawJsonValue>,
}

/// `send_join`'s answer: the state before the join and the auth chain, as PDUs.
pub struct JoinedState {
    pub state: Vec<Box<RawJsonValue>>,
    pub auth_chain: Vec<Box<RawJsonValue>>,
    pub servers_in_room: Vec<String>,
}

/// `GET /make_join/{roomId}/{userId}`: a join event of `user_id`, a user of `origin`, built on
/// the room's head, if the room's version is one the joining server supports (`versions`)
/// and the join would be allowed now.
pub async fn make_join(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    user_id: &UserId,
    versions: &[RoomVersionId],
) -> Result<JoinTemplate> {
    if user_id.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} can only make joins for its own users"
        )));
    }
    let room = resident_room(tenant, room_id).await?;
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
    let room_version = RoomVersionId::try_from(room.as_str())
        .map_err(|e| Error::Internal(format!("stored room version {room}: {e}")))?;
    // A server that names no versions speaks only version 1 (spec: `ver`).
    let speaks = versions.contains(&room_version)
        || (versions.is_empty() && room_version == RoomVersionId::V1);
    if !speaks {
        return Err(Error::IncompatibleRoomVersion(room_version.to_string()));
    }
    let rules = rules_of(room_version.as_str())?;
    let writer = tenant.room_locks().lock(room_id).await;
    let (head, _) = tenant.room_heads().get(tenant, &writer).await?;
    let state = tenant
        .state_cache()
        .group(tenant.store(), head.state_group)
        .await?;
    let draft = EventDraft::state(
        TimelineEventType::RoomMember.to_string().as_str(),
        user_id.as_str(),
        json!({"membership": "join"}),
    );
    let built = build::event(tenant, &rules, room_id, &head, &state, user_id, draft).await?;
    drop(writer);
    check::local(&rules, &built.pdu, &state, &built.auth_pdus)?;
    let mut template = built.pdu.json.clone();
    // The joining server hashes and signs the event itself; our signature would be of an
    // event it is about to change.
    for key in ["signatures", "hashes", "unsigned", "event_id", "origin"] {
        template.remove(key);
    }
    let event = serde_json::value::to_raw_value(&CanonicalJsonValue::Object(template))
        .map_err(|e| Error::Internal(format!("join template: {e}")))?;
    Ok(JoinTemplate {
        room_version,
        event,
    })
}

/// `PUT /send_join/{roomId}/{eventId}` (v2): appends `origin`'s signed join event and
/// answers with the room's state before it and the auth chain.
pub async fn send_join(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawJsonValue,
) -> Result<JoinedState> {
    let room = resident_room(tenant, room_id).await?;
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
    let rules = rules_of(&room)?;
    let checked = received::check(tenant, &rules, room_id, raw).await?;
    ensure_join_of(origin, event_id, &checked.pdu)?;
    let join = checked.pdu.clone();
    // The resident server tells the room's other servers of the join (spec: "Joining Rooms").
    tenant.sender().relay(join.event_id.as_str());
    let appended = tenant.rooms().append_received(checked).await;
    // Not appended (refused, or known before): nothing to relay.
    tenant.sender().take_relay(join.event_id.as_str());
    match appended? {
        Received::Stored | Received::AlreadyKnown => {}
        Received::SoftFailed(why) => return Err(Error::Forbidden(why)),
    }
    joined_state(tenant, &join).await
}

/// The version of a room this tenant is in (one of its users is joined), or `M_NOT_FOUND`.
async fn resident_room(tenant: &Tenant, room_id: &RoomId) -> Result<String> {
    let not_found =
        || Error::NotFound(format!("{} is not in room {room_id}", tenant.server_name()));
    let room = tenant
        .store()
        .room(room_id.as_str())
        .await?
        .ok_or_else(not_found)?;
    let head = tenant.room_heads().snapshot(tenant, room_id).await?;
    let resident = head
        .joined
        .iter()
        .any(|user| user.server_name() == tenant.server_name());
    if !resident {
        return Err(not_found());
    }
    Ok(room.room_version)
}

/// A join event for `send_join`: the id the path names, a join of its own sender, who is a
/// user of the server sending it.
fn ensure_join_of(origin: &ServerName, event_id: &EventId, join: &Pdu) -> Result<()> {
    if join.event_id != event_id {
        return Err(Error::BadJson(format!(
            "The event's id is {}, not {event_id}",
            join.event_id
        )));
    }
    let is_join = join.kind == TimelineEventType::RoomMember
        && join.state_key.as_deref() == Some(join.sender.as_str())
        && join.content_value()["membership"] == "join";
    if !is_join {
        return Err(Error::BadJson(
            "send_join takes a join event of its sender".into(),
        ));
    }
    if join.sender.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} can only send joins of its own users"
        )));
    }
    Ok(())
}

/// The state before `join` and the auth chain of `join` and of that state.
async fn joined_state(tenant: &Tenant, join: &Pdu) -> Result<JoinedState> {
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let record = store
        .event(join.event_id.as_str())
        .await?
        .ok_or_else(|| Error::Internal("the join just stored is missing".into()))?;
    let state = cache.group(store, record.state_before).await?;
    let mut state_pdus = Vec::with_capacity(state.len());
    let mut servers = BTreeSet::new();
    for id in state.values() {
        if let Some(pdu) = cache.pdu(store, id).await? {
            if pdu.kind == TimelineEventType::RoomMember
                && pdu.content_value()["membership"] == "join"
                && let Some(member) = pdu.state_key.as_deref()
                && let Ok(member) = UserId::parse(member)
            {
                servers.insert(member.server_name().to_string());
            }
            state_pdus.push(pdu);
        }
    }
    let mut roots: Vec<OwnedEventId> = join.auth_events.clone();
    for pdu in &state_pdus {
        roots.extend(pdu.auth_events.iter().cloned());
    }
    let chain = events::auth_chain(tenant, roots).await?;
    Ok(JoinedState {
        state: events::raws_of(&state_pdus)?,
        auth_chain: events::raws_of(&chain)?,
        servers_in_room: servers.into_iter().collect(),
    })
}
