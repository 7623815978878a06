//! Joining, knocking on and leaving this tenant's rooms from another server (spec:
//! Server-Server API, "Joining Rooms", "Knocking upon a room", "Leaving Rooms (Rejecting
//! Invites)"): `make_join`, `make_knock` and `make_leave` hand the other server a membership
//! event built on the room's head, for it to sign; `send_join`, `send_knock` and `send_leave`
//! take the signed event through the event pipeline. `send_join` answers with the room's
//! state before the join and the auth chain of both, everything the joining server needs to
//! check the room for itself; `send_knock` with the room's stripped state.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use ruma::canonical_json::CanonicalJsonValue;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::{EventId, OwnedEventId, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::json;
use serde_json::value::RawValue as RawJsonValue;

use super::{events, received};
use crate::rooms::pdu::{EventDraft, Pdu};
use crate::rooms::pipeline::Received;
use crate::rooms::state::RoomState;
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
    /// The state leaves out the member events but the heroes' (`omit_members`).
    pub members_omitted: bool,
}

/// Members a room summary names at most (spec: Client-Server API, `m.heroes`).
const MAX_HEROES: usize = 5;

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
    let room_version = room_version_of(&resident_room(tenant, room_id).await?)?;
    // A server that names no versions speaks only version 1 (spec: `ver`).
    let speaks = versions.contains(&room_version)
        || (versions.is_empty() && room_version == RoomVersionId::V1);
    if !speaks {
        return Err(Error::IncompatibleRoomVersion(room_version.to_string()));
    }
    template(tenant, origin, room_id, user_id, "join").await
}

/// `GET /make_knock/{roomId}/{userId}`: a knock of `user_id`, a user of `origin`, built on the
/// room's head, if the room's version knows knocking, the knocking server speaks it
/// (`versions`) and the join rules allow the knock now.
pub async fn make_knock(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    user_id: &UserId,
    versions: &[RoomVersionId],
) -> Result<JoinTemplate> {
    let room_version = room_version_of(&resident_room(tenant, room_id).await?)?;
    let knocks = rules_of(room_version.as_str())?.authorization.knocking;
    if !knocks || !versions.contains(&room_version) {
        return Err(Error::IncompatibleRoomVersion(room_version.to_string()));
    }
    template(tenant, origin, room_id, user_id, "knock").await
}

/// `GET /make_leave/{roomId}/{userId}`: a leave event of `user_id`, a user of `origin` (who
/// rejects an invite, or leaves), built on the room's head, if it would be allowed now.
pub async fn make_leave(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<JoinTemplate> {
    template(tenant, origin, room_id, user_id, "leave").await
}

/// A `membership` event of `user_id` built on the room's head, unsigned, for `origin` to sign.
async fn template(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    user_id: &UserId,
    membership: &str,
) -> Result<JoinTemplate> {
    if user_id.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} can only make membership events of its own users"
        )));
    }
    let room_version = room_version_of(&resident_room(tenant, room_id).await?)?;
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
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
        json!({ "membership": membership }),
    );
    let built = build::event(tenant, &rules, room_id, &head, &state, user_id, draft).await?;
    drop(writer);
    check::local(&rules, &built.pdu, &state, &built.auth_pdus)?;
    let mut template = built.pdu.json.clone();
    // The other server hashes and signs the event itself; our signature would be of an event
    // it is about to change.
    for key in ["signatures", "hashes", "unsigned", "event_id", "origin"] {
        template.remove(key);
    }
    let event = serde_json::value::to_raw_value(&CanonicalJsonValue::Object(template))
        .map_err(|e| Error::Internal(format!("membership template: {e}")))?;
    Ok(JoinTemplate {
        room_version,
        event,
    })
}

fn room_version_of(stored: &str) -> Result<RoomVersionId> {
    RoomVersionId::try_from(stored)
        .map_err(|e| Error::Internal(format!("stored room version {stored}: {e}")))
}

/// `PUT /send_join/{roomId}/{eventId}` (v2): appends `origin`'s signed join event and
/// answers with the room's state before it and the auth chain; with `omit_members`, without
/// the member events but those of the room's heroes, and without the auth events the state
/// given carries already.
pub async fn send_join(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawJsonValue,
    omit_members: bool,
) -> Result<JoinedState> {
    let join = append_membership(tenant, origin, room_id, event_id, raw, "join").await?;
    joined_state(tenant, &join, omit_members).await
}

/// `PUT /send_leave/{roomId}/{eventId}` (v2): appends `origin`'s signed leave event; the room's
/// other servers hear of it through us.
pub async fn send_leave(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawJsonValue,
) -> Result<()> {
    append_membership(tenant, origin, room_id, event_id, raw, "leave").await?;
    Ok(())
}

/// A membership event built on events this server doesn't have: not one of our templates.
fn stale_template() -> Error {
    Error::BadJson("The event cites prev events this server doesn't have".into())
}

/// `PUT /send_knock/{roomId}/{eventId}`: appends `origin`'s signed knock (the room's other
/// servers hear of it through us) and answers with the room's stripped state, as PDUs.
pub async fn send_knock(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawJsonValue,
) -> Result<Vec<Box<RawJsonValue>>> {
    append_membership(tenant, origin, room_id, event_id, raw, "knock").await?;
    let stripped = tenant.rooms().stripped_state_of(room_id).await?;
    events::raws_of(&stripped)
}

/// `origin`'s signed `membership` event of its own user, for a room this tenant is in, through
/// the event pipeline. The resident server tells the room's other servers of it (spec:
/// "Joining Rooms"): it is relayed when appended.
async fn append_membership(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawJsonValue,
    membership: &str,
) -> Result<Pdu> {
    let room = resident_room(tenant, room_id).await?;
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
    let rules = rules_of(&room)?;
    let checked = received::check(tenant, &rules, room_id, raw).await?;
    ensure_membership_of(origin, event_id, &checked.pdu, membership)?;
    let event = checked.pdu.clone();
    tenant.sender().relay(event.event_id.as_str());
    let appended = tenant.rooms().append_received(checked).await;
    // Not appended (refused, or known before): nothing to relay.
    tenant.sender().take_relay(event.event_id.as_str());
    match appended? {
        Received::Stored | Received::AlreadyKnown => Ok(event),
        Received::SoftFailed(why) => Err(Error::Forbidden(why)),
        Received::MissingPrevEvents(_) => Err(stale_template()),
    }
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
    // Its members not all known here yet, the room can't be answered for.
    if !resident || tenant.partial_rooms().contains(room_id) {
        return Err(not_found());
    }
    Ok(room.room_version)
}

/// A membership event for `send_join` or `send_leave`: the id the path names, the sender's
/// own `membership`, the sender a user of the server sending it.
fn ensure_membership_of(
    origin: &ServerName,
    event_id: &EventId,
    event: &Pdu,
    membership: &str,
) -> Result<()> {
    if event.event_id != event_id {
        return Err(Error::BadJson(format!(
            "The event's id is {}, not {event_id}",
            event.event_id
        )));
    }
    let is_own = event.kind == TimelineEventType::RoomMember
        && event.state_key.as_deref() == Some(event.sender.as_str())
        && event.content_value()["membership"] == membership;
    if !is_own {
        return Err(Error::BadJson(format!(
            "send_{membership} takes a {membership} event of its sender"
        )));
    }
    if event.sender.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} can only send membership events of its own users"
        )));
    }
    Ok(())
}

/// The state before `join` and the auth chain of `join` and of that state; with
/// `omit_members`, only the heroes' member events and the auth events not in that state. The
/// member events left out are never read: a room of many members is answered at the cost of
/// its other state.
async fn joined_state(tenant: &Tenant, join: &Pdu, omit_members: bool) -> Result<JoinedState> {
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let record = store
        .event(join.event_id.as_str())
        .await?
        .ok_or_else(|| Error::Internal("the join just stored is missing".into()))?;
    let state = cache.group(store, record.state_before).await?;
    let given: Vec<&OwnedEventId> = if omit_members {
        without_members(&state)
    } else {
        state.values().collect()
    };
    let mut state_pdus = Vec::with_capacity(given.len());
    for id in given {
        if let Some(pdu) = cache.pdu(store, id).await? {
            state_pdus.push(pdu);
        }
    }
    let state_pdus = match omit_members {
        true => with_heroes(tenant, &state, state_pdus, &join.sender).await?,
        false => state_pdus,
    };
    let mut roots: Vec<OwnedEventId> = join.auth_events.clone();
    for pdu in &state_pdus {
        roots.extend(pdu.auth_events.iter().cloned());
    }
    let mut chain = events::auth_chain(tenant, roots).await?;
    if omit_members {
        let given: HashSet<&EventId> = state_pdus.iter().map(|p| &*p.event_id).collect();
        chain.retain(|pdu| !given.contains(&*pdu.event_id));
    }
    Ok(JoinedState {
        state: events::raws_of(&state_pdus)?,
        auth_chain: events::raws_of(&chain)?,
        servers_in_room: servers_in_room(tenant, join).await?,
        members_omitted: omit_members,
    })
}

/// The servers with a joined member before `join`: every joined member's but the joiner's own.
async fn servers_in_room(tenant: &Tenant, join: &Pdu) -> Result<Vec<String>> {
    let members = tenant
        .store()
        .room_members(join.room_id.as_str(), Some("join"))
        .await?;
    let servers: BTreeSet<String> = members
        .iter()
        .filter(|m| m.user_id != join.sender.as_str())
        .filter_map(|m| UserId::parse(&m.user_id).ok())
        .map(|user| user.server_name().to_string())
        .collect();
    Ok(servers.into_iter().collect())
}

/// The ids of `state` but its member events (spec: `send_join`, `omit_members`).
fn without_members(state: &RoomState) -> Vec<&OwnedEventId> {
    state
        .iter()
        .filter(|((kind, _), _)| *kind != StateEventType::RoomMember)
        .map(|(_, id)| id)
        .collect()
}

/// `given` and, when the room has neither a name nor a canonical alias, the member events of
/// its heroes (spec: `send_join`, `omit_members`): its first joined or invited members other
/// than the joiner, by user id.
async fn with_heroes(
    tenant: &Tenant,
    state: &RoomState,
    mut given: Vec<Arc<Pdu>>,
    joiner: &UserId,
) -> Result<Vec<Arc<Pdu>>> {
    let named = [StateEventType::RoomName, StateEventType::RoomCanonicalAlias]
        .into_iter()
        .any(|kind| state.contains_key(&(kind, String::new())));
    if named {
        return Ok(given);
    }
    let mut members: Vec<(&String, &OwnedEventId)> = state
        .iter()
        .filter(|((kind, key), _)| *kind == StateEventType::RoomMember && key != joiner.as_str())
        .map(|((_, key), id)| (key, id))
        .collect();
    members.sort();
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let mut heroes = 0;
    for (_, id) in members {
        if heroes == MAX_HEROES {
            break;
        }
        if let Some(pdu) = cache.pdu(store, id).await?
            && matches!(
                pdu.content_value()["membership"].as_str(),
                Some("join" | "invite")
            )
        {
            given.push(pdu);
            heroes += 1;
        }
    }
    Ok(given)
}
