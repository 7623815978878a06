//! Rooms joined with partial state (spec: `send_join` with `omit_members`, MSC3706): the join
//! returns once the room's state without its members is checked, and the members are fetched
//! in the background with `/state` at our join, checked as any received state is, and added to
//! the room's state. Until then the room's events also go to the servers the resident server
//! listed, and a received event is checked with the memberships its own auth events give where
//! the partial state has none.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ruma::api::federation::event::get_room_state;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::{OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, ServerName, UserId};
use tokio::sync::watch;

use super::joining;
use super::received::CheckedPdu;
use crate::rooms::rules_of;
use crate::rooms::state::RoomState;
use crate::store::{MembershipRecord, PartialStateCompletion, PartialStateRecord, StateEntry};
use crate::stream::Audience;
use crate::tenants::WeakTenant;
use crate::{Error, Result, Tenant};

/// The first wait before asking again when no server gave the room's state, doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(300);

/// What is left to fetch of a partial-state room.
pub(crate) struct PartialRoom {
    pub(crate) join_event_id: OwnedEventId,
    /// The state the join was checked against (see [`PartialStateRecord::state_group`]).
    pub(crate) state_group: i64,
    /// The servers to ask, and to send the room's events to meanwhile.
    pub(crate) servers: Vec<OwnedServerName>,
}

/// The tenant's partial-state rooms, as stored (read when the tenant loads).
pub(crate) struct PartialRooms {
    rooms: Mutex<HashMap<OwnedRoomId, Arc<PartialRoom>>>,
    /// Bumped whenever a room's state completes, for whoever waits on one.
    completed: watch::Sender<u64>,
}

impl PartialRooms {
    pub(crate) fn load(records: &[PartialStateRecord]) -> Result<Self> {
        let rooms = Self {
            rooms: Mutex::default(),
            completed: watch::channel(0).0,
        };
        for record in records {
            rooms.insert(record)?;
        }
        Ok(rooms)
    }

    pub(crate) fn insert(&self, record: &PartialStateRecord) -> Result<()> {
        let corrupt = |what: &str| Error::Internal(format!("stored partial state: {what}"));
        let room_id =
            OwnedRoomId::try_from(record.room_id.as_str()).map_err(|_| corrupt(&record.room_id))?;
        let join_event_id = OwnedEventId::try_from(record.join_event_id.as_str())
            .map_err(|_| corrupt(&record.join_event_id))?;
        let servers = record
            .servers
            .iter()
            .filter_map(|s| OwnedServerName::try_from(s.as_str()).ok())
            .collect();
        let room = PartialRoom {
            join_event_id,
            state_group: record.state_group,
            servers,
        };
        self.rooms.lock().insert(room_id, Arc::new(room));
        Ok(())
    }

    pub(crate) fn get(&self, room_id: &RoomId) -> Option<Arc<PartialRoom>> {
        self.rooms.lock().get(room_id).cloned()
    }

    pub(crate) fn contains(&self, room_id: &RoomId) -> bool {
        self.rooms.lock().contains_key(room_id)
    }

    /// The servers to send the room's events to besides its known members', while partial.
    pub(crate) fn servers(&self, room_id: &RoomId) -> Vec<OwnedServerName> {
        self.get(room_id)
            .map(|room| room.servers.clone())
            .unwrap_or_default()
    }

    /// Forgets the room's partial state (completed, or never stored) and wakes its waiters.
    pub(crate) fn remove(&self, room_id: &RoomId) {
        self.rooms.lock().remove(room_id);
        self.completed.send_modify(|n| *n += 1);
    }

    fn rooms(&self) -> Vec<OwnedRoomId> {
        self.rooms.lock().keys().cloned().collect()
    }

    /// Returns once the room's state is whole here (at once for a room that is).
    pub(crate) async fn until_complete(&self, room_id: &RoomId) {
        let mut completed = self.completed.subscribe();
        while self.contains(room_id) {
            if completed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The servers to ask for the room's members and to send its events to meanwhile: the one
/// that answered the join first, then those it listed as in the room, never ourselves.
pub(crate) fn servers_to_ask(
    tenant: &Tenant,
    joined_through: &ServerName,
    servers_in_room: Option<&[String]>,
) -> Vec<OwnedServerName> {
    let mut seen = BTreeSet::new();
    std::iter::once(joined_through.to_owned())
        .chain(
            servers_in_room
                .unwrap_or_default()
                .iter()
                .filter_map(|s| OwnedServerName::try_from(s.as_str()).ok()),
        )
        .filter(|server| server != tenant.server_name())
        .filter(|server| seen.insert(server.clone()))
        .collect()
}

/// The state an event received for a partial-state room is checked against: `state` with the
/// memberships of the event's own auth events where `state` has none (the room's members are
/// not all known here yet, and the sending server vouched for those).
pub(crate) fn with_auth_memberships(state: &RoomState, by_auth_events: &RoomState) -> RoomState {
    let mut completed = state.clone();
    for (key, id) in by_auth_events {
        if key.0 == StateEventType::RoomMember && !completed.contains_key(key) {
            completed.insert(key.clone(), id.clone());
        }
    }
    completed
}

/// Resyncs every partial-state room of the tenant (after a restart).
pub(crate) fn resume(tenant: &Tenant) {
    for room_id in tenant.partial_rooms().rooms() {
        resync_in_background(tenant, &room_id);
    }
}

/// Fetches the room's whole state in a task of its own, retrying with backoff until a server
/// gives it; the task ends with the tenant.
pub(crate) fn resync_in_background(tenant: &Tenant, room_id: &RoomId) {
    tokio::spawn(resync(tenant.downgrade(), room_id.to_owned()));
}

async fn resync(tenant: WeakTenant, room_id: OwnedRoomId) {
    let mut wait = FIRST_RETRY;
    loop {
        let Some(tenant) = tenant.upgrade() else {
            return;
        };
        let Some(partial) = tenant.partial_rooms().get(&room_id) else {
            return;
        };
        match complete(&tenant, &room_id, &partial).await {
            Ok(added) => {
                tracing::info!(%room_id, members = added, "partial state completed");
                return;
            }
            Err(e) => tracing::info!(%room_id, error = %e, "partial state not completed yet"),
        }
        drop(tenant);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// Fetches the room's state at our join, checks it, and adds what the partial state lacks;
/// returns how many memberships that added.
async fn complete(tenant: &Tenant, room_id: &RoomId, partial: &PartialRoom) -> Result<usize> {
    let store = tenant.store();
    let Some(room) = store.room(room_id.as_str()).await? else {
        // The join was never stored.
        tenant.partial_rooms().remove(room_id);
        return Ok(0);
    };
    let rules = rules_of(&room.room_version)?;
    if !has_local_members(tenant, room_id).await? {
        // Left before the members came: the other servers won't give them any more, and a
        // join again starts from the room's state anew.
        let forgotten = PartialStateCompletion {
            room_id: room_id.to_string(),
            since_group: partial.state_group,
            ..PartialStateCompletion::default()
        };
        store.complete_partial_state(&forgotten).await?;
        tenant.partial_rooms().remove(room_id);
        return Ok(0);
    }
    let answer = state_at_join(tenant, room_id, partial).await?;
    let (events, state_ids) =
        joining::checked_events(tenant, &rules, room_id, &answer.auth_chain, &answer.pdus).await;
    let known = tenant
        .state_cache()
        .group(store, partial.state_group)
        .await?;
    let mut completion = omitted(room_id, partial, &known, &state_ids, &events);
    let added = completion.memberships.len();
    let writer = tenant.room_locks().lock(room_id).await;
    let (head, _) = tenant.room_heads().get(tenant, &writer).await?;
    // The room's snapshots are all stored before any is completed.
    tenant.stream().reached(head.last_stream).await;
    let audience = Audience::Room {
        room_id: room_id.to_string(),
        user: None,
    };
    let position = tenant.stream().position(audience).await?;
    completion.announce_stream = position.get();
    completion.announce = local_members(tenant, &head.joined)
        .map(ToString::to_string)
        .collect();
    for membership in &mut completion.memberships {
        membership.stream = position.get();
    }
    store.complete_partial_state(&completion).await?;
    // Cached states and the head's members were read without the omitted members.
    tenant.state_cache().forget_stored_groups();
    tenant.room_heads().forget(tenant, room_id);
    tenant.partial_rooms().remove(room_id);
    // Published once the room is whole: the tenant's users' next syncs send it again.
    drop(position);
    drop(writer);
    Ok(added)
}

async fn has_local_members(tenant: &Tenant, room_id: &RoomId) -> Result<bool> {
    let head = tenant.room_heads().snapshot(tenant, room_id).await?;
    Ok(local_members(tenant, &head.joined).next().is_some())
}

fn local_members<'a>(
    tenant: &'a Tenant,
    joined: &'a [OwnedUserId],
) -> impl Iterator<Item = &'a OwnedUserId> {
    joined
        .iter()
        .filter(|user| user.server_name() == tenant.server_name())
}

/// `GET /state/{roomId}` at our join, from the first server that answers.
async fn state_at_join(
    tenant: &Tenant,
    room_id: &RoomId,
    partial: &PartialRoom,
) -> Result<get_room_state::v1::Response> {
    let mut last = Error::NotFound("No server to ask for the room's state".into());
    for server in &partial.servers {
        let request =
            get_room_state::v1::Request::new(partial.join_event_id.clone(), room_id.to_owned());
        match tenant
            .federation()
            .send_signed(tenant, server, request)
            .await
        {
            Ok(answer) => return Ok(answer),
            Err(e) => {
                tracing::info!(%room_id, %server, error = %e, "state at the join not given");
                last = e;
            }
        }
    }
    Err(last)
}

/// What the room's state at our join has that the partial state lacks: entries, their events
/// and the memberships they set. Our own join is in the room's state after it already.
fn omitted(
    room_id: &RoomId,
    partial: &PartialRoom,
    known: &RoomState,
    state_ids: &[OwnedEventId],
    events: &HashMap<OwnedEventId, CheckedPdu>,
) -> PartialStateCompletion {
    let mut completion = PartialStateCompletion {
        room_id: room_id.to_string(),
        since_group: partial.state_group,
        outliers: events.values().map(CheckedPdu::outlier).collect(),
        ..PartialStateCompletion::default()
    };
    for id in state_ids {
        let Some(checked) = events.get(id) else {
            continue;
        };
        let pdu = &checked.pdu;
        let Some(state_key) = &pdu.state_key else {
            continue;
        };
        let key = (pdu.kind.to_string().into(), state_key.clone());
        if known.contains_key(&key) || pdu.event_id == partial.join_event_id {
            continue;
        }
        completion.entries.push(StateEntry {
            event_type: pdu.kind.to_string(),
            state_key: state_key.clone(),
            event_id: pdu.event_id.to_string(),
        });
        if pdu.kind == TimelineEventType::RoomMember
            && let Some(membership) = pdu.content_value()["membership"].as_str()
            && UserId::parse(state_key.as_str()).is_ok()
        {
            completion.memberships.push(MembershipRecord {
                room_id: room_id.to_string(),
                user_id: state_key.clone(),
                membership: membership.to_owned(),
                event_id: pdu.event_id.to_string(),
                stream: 0,
                sender: pdu.sender.to_string(),
                stripped_state: None,
            });
        }
    }
    completion
}

#[cfg(test)]
mod tests {
    use ruma::owned_event_id;

    use super::*;

    fn key(kind: StateEventType, state_key: &str) -> (StateEventType, String) {
        (kind, state_key.to_owned())
    }

    #[test]
    fn only_memberships_the_state_lacks_come_from_the_auth_events() {
        let mut state = RoomState::new();
        state.insert(
            key(StateEventType::RoomPowerLevels, ""),
            owned_event_id!("$levels"),
        );
        state.insert(
            key(StateEventType::RoomMember, "@known:a.test"),
            owned_event_id!("$known-left"),
        );
        let mut by_auth_events = RoomState::new();
        by_auth_events.insert(
            key(StateEventType::RoomPowerLevels, ""),
            owned_event_id!("$older-levels"),
        );
        by_auth_events.insert(
            key(StateEventType::RoomMember, "@known:a.test"),
            owned_event_id!("$known-joined"),
        );
        by_auth_events.insert(
            key(StateEventType::RoomMember, "@sender:a.test"),
            owned_event_id!("$sender-joined"),
        );

        let completed = with_auth_memberships(&state, &by_auth_events);
        let id = |kind, state_key| completed.get(&key(kind, state_key)).map(|id| id.as_str());
        assert_eq!(id(StateEventType::RoomPowerLevels, ""), Some("$levels"));
        assert_eq!(
            id(StateEventType::RoomMember, "@known:a.test"),
            Some("$known-left")
        );
        assert_eq!(
            id(StateEventType::RoomMember, "@sender:a.test"),
            Some("$sender-joined")
        );
        assert_eq!(completed.len(), 3);
    }
}
