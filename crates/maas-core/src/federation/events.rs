//! Events for other servers (spec: Server-Server API, "Retrieving events", "Backfilling and
//! retrieving missing events", "Retrieving event authorization information", "Timestamp to
//! event"): one event, the room's state at an event, an event's auth chain, history backwards
//! from some events, the events between two sets of events, and the event nearest a time. Only for a server in the room: one with a joined
//! member, or any server when the room's history is world-readable.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::{EventId, OwnedEventId, RoomId, ServerName};
use serde_json::value::RawValue as RawJsonValue;

use crate::rooms::pdu::{self, Pdu};
use crate::store::Direction;
use crate::{Error, Result, Tenant};

/// Events a backfill answers with at most.
const MAX_BACKFILL: usize = 100;
/// Events a `get_missing_events` answers with at most.
const MAX_MISSING: usize = 20;

/// A room's state at an event and the auth chain of that state.
pub struct StateAt {
    pub state: Vec<Arc<Pdu>>,
    pub auth_chain: Vec<Arc<Pdu>>,
}

/// `GET /event/{eventId}`.
pub async fn event(tenant: &Tenant, origin: &ServerName, event_id: &EventId) -> Result<Arc<Pdu>> {
    let pdu = known(tenant, event_id).await?;
    ensure_in_room(tenant, origin, &pdu.room_id).await?;
    Ok(pdu)
}

/// `GET /state/{roomId}` and `GET /state_ids/{roomId}`: the state before `event_id`, and the
/// auth chain of its events.
pub async fn state_at(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<StateAt> {
    ensure_in_room(tenant, origin, room_id).await?;
    if tenant.partial_rooms().contains(room_id) {
        return Err(Error::NotFound(format!(
            "The state of {room_id} is not all known here yet"
        )));
    }
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let record = store
        .event(event_id.as_str())
        .await?
        .filter(|r| r.room_id == room_id.as_str())
        .ok_or_else(|| not_found(event_id))?;
    let group = cache.group(store, record.state_before).await?;
    let mut state = Vec::with_capacity(group.len());
    for id in group.values() {
        state.push(known(tenant, id).await?);
    }
    let roots = state
        .iter()
        .flat_map(|p| p.auth_events.iter().cloned())
        .collect();
    let auth_chain = auth_chain(tenant, roots).await?;
    Ok(StateAt { state, auth_chain })
}

/// `GET /event_auth/{roomId}/{eventId}`: every event `event_id` rests on by its auth events.
pub async fn event_auth(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<Vec<Arc<Pdu>>> {
    ensure_in_room(tenant, origin, room_id).await?;
    let pdu = known(tenant, event_id).await?;
    if pdu.room_id != room_id {
        return Err(not_found(event_id));
    }
    auth_chain(tenant, pdu.auth_events.clone()).await
}

/// `GET /backfill/{roomId}`: up to `limit` events going back from `from` (included), newest
/// first.
pub async fn backfill(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    from: &[OwnedEventId],
    limit: usize,
) -> Result<Vec<Arc<Pdu>>> {
    ensure_in_room(tenant, origin, room_id).await?;
    let limit = limit.min(MAX_BACKFILL);
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut frontier: Vec<Arc<Pdu>> = Vec::new();
    for id in from {
        if let Ok(pdu) = known(tenant, id).await
            && pdu.room_id == room_id
            && seen.insert(id.clone())
        {
            frontier.push(pdu);
        }
    }
    let mut found = Vec::new();
    // Deepest first, so the events nearest `from` come before older ones.
    while found.len() < limit {
        frontier.sort_by_key(|p| p.depth);
        let Some(pdu) = frontier.pop() else { break };
        for prev in &pdu.prev_events {
            if seen.insert(prev.clone())
                && let Ok(prev) = known(tenant, prev).await
            {
                frontier.push(prev);
            }
        }
        found.push(pdu);
    }
    Ok(found)
}

/// `GET /timestamp_to_event/{roomId}`: the event of the room sent closest to `ts` in
/// `direction` (its id and timestamp), `M_NOT_FOUND` when there is none.
pub async fn timestamp_to_event(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    ts: i64,
    direction: Direction,
) -> Result<(OwnedEventId, i64)> {
    ensure_in_room(tenant, origin, room_id).await?;
    let event = tenant
        .store()
        .event_by_timestamp(room_id.as_str(), ts, direction)
        .await?
        .ok_or_else(|| Error::NotFound("No event found at that time".into()))?;
    let id = OwnedEventId::try_from(event.event_id.as_str())
        .map_err(|e| Error::Internal(format!("stored event id {}: {e}", event.event_id)))?;
    Ok((id, event.origin_server_ts))
}

/// `POST /get_missing_events/{roomId}`: events before `latest` that `earliest` doesn't reach,
/// at least `min_depth` deep, oldest first, at most `limit`.
pub async fn missing_events(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    earliest: &[OwnedEventId],
    latest: &[OwnedEventId],
    limit: usize,
    min_depth: u64,
) -> Result<Vec<Arc<Pdu>>> {
    ensure_in_room(tenant, origin, room_id).await?;
    let limit = limit.min(MAX_MISSING);
    let mut seen: HashSet<OwnedEventId> = earliest.iter().chain(latest).cloned().collect();
    let mut queue: Vec<OwnedEventId> = Vec::new();
    for id in latest {
        if let Ok(pdu) = known(tenant, id).await
            && pdu.room_id == room_id
        {
            queue.extend(pdu.prev_events.iter().cloned());
        }
    }
    let mut found = Vec::new();
    while let Some(id) = queue.pop() {
        if found.len() >= limit {
            break;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        let Ok(pdu) = known(tenant, &id).await else {
            continue;
        };
        if pdu.room_id != room_id || pdu.depth < min_depth {
            continue;
        }
        queue.extend(pdu.prev_events.iter().cloned());
        found.push(pdu);
    }
    found.sort_by_key(|p| p.depth);
    Ok(found)
}

/// Every event reachable from `roots` through `auth_events`.
pub(crate) async fn auth_chain(tenant: &Tenant, roots: Vec<OwnedEventId>) -> Result<Vec<Arc<Pdu>>> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut queue = roots;
    let mut chain = Vec::new();
    while let Some(id) = queue.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Ok(pdu) = known(tenant, &id).await {
            queue.extend(pdu.auth_events.iter().cloned());
            chain.push(pdu);
        }
    }
    Ok(chain)
}

/// A PDU as it goes over federation: the stored, signed form.
pub fn raw_of(pdu: &Pdu) -> Result<Box<RawJsonValue>> {
    RawJsonValue::from_string(pdu::canonical_json(&pdu.json))
        .map_err(|e| Error::Internal(format!("stored PDU {}: {e}", pdu.event_id)))
}

/// PDUs as they go over federation.
pub fn raws_of(pdus: &[Arc<Pdu>]) -> Result<Vec<Box<RawJsonValue>>> {
    pdus.iter().map(|p| raw_of(p)).collect()
}

/// Refuses `origin` unless the room's server ACL allows it and one of its users is joined to
/// the room or the room's history is world-readable. An unknown room is `M_NOT_FOUND`.
pub(crate) async fn ensure_in_room(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
) -> Result<()> {
    let store = tenant.store();
    if store.room(room_id.as_str()).await?.is_none() {
        return Err(Error::NotFound(format!("Unknown room {room_id}")));
    }
    super::acl::ensure_allowed(tenant, room_id, origin).await?;
    let head = tenant.room_heads().snapshot(tenant, room_id).await?;
    let servers: BTreeSet<&ServerName> = head.joined.iter().map(|u| u.server_name()).collect();
    if servers.contains(origin) {
        return Ok(());
    }
    let cache = tenant.state_cache();
    let state = cache.group(store, head.state_group).await?;
    let key = (StateEventType::RoomHistoryVisibility, String::new());
    if let Some(id) = state.get(&key)
        && let Some(pdu) = cache.pdu(store, id).await?
        && pdu.content_value()["history_visibility"] == "world_readable"
    {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{origin} is not in room {room_id}"
    )))
}

async fn known(tenant: &Tenant, id: &EventId) -> Result<Arc<Pdu>> {
    tenant
        .state_cache()
        .pdu(tenant.store(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &EventId) -> Error {
    Error::NotFound(format!("Unknown event {id}"))
}
