//! Reading rooms as a client sees them: current state, single events, the timeline paginated
//! by stream position, members — each filtered by history visibility (spec: "History
//! visibility") — and the client event format.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, RoomId, UserId};
use serde_json::Value;

use super::event::{Event, events};
use super::pdu::Pdu;
use super::state::RoomState;
use super::{Direction, Rooms, rules_of};
use crate::filter::RoomEventFilter;
use crate::store::{EventRecord, MembershipRecord, StreamRange};
use crate::{Error, Result, Tenant};

/// How long a member list waits at most for a room's members being fetched.
const MEMBERS_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// The power levels of a room, as the auth rules read them.
pub(crate) struct PowerLevels {
    users: BTreeMap<String, i64>,
    users_default: i64,
    events: BTreeMap<String, i64>,
    events_default: i64,
    state_default: i64,
    creators: Vec<String>,
    pub redact: i64,
}

impl PowerLevels {
    pub fn for_user(&self, user: &UserId) -> i64 {
        if self.creators.iter().any(|c| c == user.as_str()) {
            return i64::MAX;
        }
        self.users
            .get(user.as_str())
            .copied()
            .unwrap_or(self.users_default)
    }

    /// Power needed to send an event of `kind` (a state event when `state`).
    pub fn for_event(&self, kind: &str, state: bool) -> i64 {
        let default = if state {
            self.state_default
        } else {
            self.events_default
        };
        self.events.get(kind).copied().unwrap_or(default)
    }
}

fn int_field(content: &Value, key: &str, default: i64) -> i64 {
    match content.get(key) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

pub(crate) async fn power_levels(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    state: &RoomState,
) -> Result<PowerLevels> {
    let store = tenant.store();
    let cache = tenant.state_cache();
    let create = match state.get(&(StateEventType::RoomCreate, String::new())) {
        Some(id) => cache.pdu(store, id).await?,
        None => None,
    };
    let mut creators = Vec::new();
    if let Some(create) = &create
        && rules.authorization.explicitly_privilege_room_creators
    {
        creators.push(create.sender.to_string());
        if let Some(Value::Array(more)) = create.content_value().get("additional_creators") {
            creators.extend(more.iter().filter_map(|c| c.as_str().map(str::to_owned)));
        }
    }
    let levels = match state.get(&(StateEventType::RoomPowerLevels, String::new())) {
        Some(id) => cache.pdu(store, id).await?,
        None => None,
    };
    let Some(levels) = levels else {
        // Without a power levels event the creator has 100 and everyone else 0.
        let mut users = BTreeMap::new();
        if let Some(create) = &create {
            users.insert(create.sender.to_string(), 100);
        }
        return Ok(PowerLevels {
            users,
            users_default: 0,
            events: BTreeMap::new(),
            events_default: 0,
            state_default: 0,
            creators,
            redact: 50,
        });
    };
    let content = levels.content_value();
    let users = content
        .get("users")
        .and_then(Value::as_object)
        .map(|u| {
            u.keys()
                .map(|k| (k.clone(), int_field(&content["users"], k, 0)))
                .collect()
        })
        .unwrap_or_default();
    let events = content
        .get("events")
        .and_then(Value::as_object)
        .map(|e| {
            e.keys()
                .map(|k| (k.clone(), int_field(&content["events"], k, 0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(PowerLevels {
        users,
        users_default: int_field(&content, "users_default", 0),
        events,
        events_default: int_field(&content, "events_default", 0),
        state_default: int_field(&content, "state_default", 50),
        creators,
        redact: int_field(&content, "redact", 50),
    })
}

/// Who reads a room: one of the tenant's users, as the room's history visibility lets them,
/// or a tenant admin through the admin API, who sees every event of the room.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reader<'u> {
    User(&'u UserId),
    Admin,
}

/// How a user may see a room's history.
#[derive(Clone, Debug)]
pub(crate) struct Visibility {
    /// The user's current membership record, if any.
    pub(crate) membership: Option<MembershipRecord>,
}

/// Which page of the timeline to read: stream positions `from` (exclusive for forward,
/// inclusive for backward) towards `to`, at most `limit` events.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub direction: Direction,
    pub limit: u32,
}

/// A page of the timeline and the tokens around it.
#[derive(Debug)]
pub struct Messages {
    pub chunk: Vec<Event>,
    pub start: i64,
    pub end: Option<i64>,
    /// With `lazy_load_members`, the member events of the chunk's senders.
    pub state: Vec<Event>,
}

/// A page of stored events, before it is handed up.
pub(crate) struct TimelinePage {
    pub(crate) chunk: Vec<EventRecord>,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

impl Rooms<'_> {
    /// The user's membership, if they are or were in the room; `403` otherwise.
    pub(crate) async fn history_access(
        &self,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<Visibility> {
        let membership = self
            .tenant
            .store()
            .membership(room_id.as_str(), user.as_str())
            .await?;
        match &membership {
            Some(m)
                if m.membership == "join" || m.membership == "leave" || m.membership == "ban" =>
            {
                Ok(Visibility { membership })
            }
            _ => Err(Error::Forbidden(format!("You are not in {room_id}"))),
        }
    }

    /// The highest stream position the user may see in this room: everything while joined,
    /// up to their leave once they left.
    fn visible_up_to(visibility: &Visibility, current: i64) -> i64 {
        match &visibility.membership {
            Some(m) if m.membership == "join" => current,
            Some(m) => m.stream,
            None => 0,
        }
    }

    /// Whether `user` may see `event` under the room's history visibility at that event.
    pub(crate) async fn can_see(
        &self,
        user: &UserId,
        event: &EventRecord,
        up_to: i64,
    ) -> Result<bool> {
        if event.stream > up_to {
            return Ok(false);
        }
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let state = cache.group(store, event.state_before).await?;
        let visibility = match state.get(&(StateEventType::RoomHistoryVisibility, String::new())) {
            Some(id) => cache.pdu(store, id).await?.and_then(|p| {
                p.content_value()
                    .get("history_visibility")
                    .and_then(|v| v.as_str().map(str::to_owned))
            }),
            None => None,
        }
        .unwrap_or_else(|| "shared".to_owned());
        if visibility == "world_readable" || visibility == "shared" {
            return Ok(true);
        }
        if event.event_type == "m.room.member" && event.state_key.as_deref() == Some(user.as_str())
        {
            return Ok(true);
        }
        let membership = match state.get(&(StateEventType::RoomMember, user.to_string())) {
            Some(id) => cache.pdu(store, id).await?.and_then(|p| {
                p.content_value()
                    .get("membership")
                    .and_then(|m| m.as_str().map(str::to_owned))
            }),
            None => None,
        };
        Ok(match membership.as_deref() {
            Some("join") => true,
            Some("invite") => visibility == "invited",
            _ => false,
        })
    }

    /// Whether `reader` may see `event`: a user as [`Rooms::can_see`] says, an admin any event
    /// up to `up_to`.
    pub(crate) async fn can_read(
        &self,
        reader: Reader<'_>,
        event: &EventRecord,
        up_to: i64,
    ) -> Result<bool> {
        match reader {
            Reader::User(user) => self.can_see(user, event, up_to).await,
            Reader::Admin => Ok(event.stream <= up_to),
        }
    }

    /// `GET /rooms/{roomId}/state`: the current state, or the state when the user left.
    pub async fn state(&self, user: &UserId, room_id: &RoomId) -> Result<Vec<Event>> {
        let state = self.visible_state(user, room_id).await?;
        let ids: Vec<String> = state.values().map(|id| id.to_string()).collect();
        Ok(events(self.tenant.store().events(&ids).await?))
    }

    async fn visible_state(&self, user: &UserId, room_id: &RoomId) -> Result<Arc<RoomState>> {
        let visibility = self.history_access(user, room_id).await?;
        let store = self.tenant.store();
        let group = match &visibility.membership {
            Some(m) if m.membership != "join" => {
                let leave = store.event(&m.event_id).await?;
                leave.map(|e| e.state_after)
            }
            _ => None,
        };
        let group = match group {
            Some(group) => group,
            None => self.room(room_id).await?.state_group,
        };
        self.tenant.state_cache().group(store, group).await
    }

    /// `GET /rooms/{roomId}/state/{eventType}/{stateKey}`.
    pub async fn state_event(
        &self,
        user: &UserId,
        room_id: &RoomId,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Event> {
        let state = self.visible_state(user, room_id).await?;
        let not_found = || Error::NotFound("Event not found".into());
        let id = state
            .get(&(kind.clone(), state_key.to_owned()))
            .ok_or_else(not_found)?;
        self.tenant
            .store()
            .event(id.as_str())
            .await?
            .map(Event)
            .ok_or_else(not_found)
    }

    /// `GET /rooms/{roomId}/event/{eventId}`.
    pub async fn event(&self, user: &UserId, room_id: &RoomId, id: &EventId) -> Result<Event> {
        self.visible_event(user, room_id, id).await.map(Event)
    }

    /// The stored event, when `user` may see it.
    pub(crate) async fn visible_event(
        &self,
        user: &UserId,
        room_id: &RoomId,
        id: &EventId,
    ) -> Result<EventRecord> {
        let visibility = self.history_access(user, room_id).await?;
        let not_found = || Error::NotFound("Event not found".into());
        let event = self
            .tenant
            .store()
            .event(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        let up_to = Self::visible_up_to(&visibility, self.tenant.stream().current());
        if event.room_id != room_id.as_str() || !self.can_see(user, &event, up_to).await? {
            return Err(not_found());
        }
        Ok(event)
    }

    /// `GET /rooms/{roomId}/messages`: a page of the events `filter` accepts from stream
    /// position `from`, with the senders' member events when it lazy-loads members.
    pub async fn messages(
        &self,
        user: &UserId,
        room_id: &RoomId,
        page: Page,
        filter: &RoomEventFilter,
    ) -> Result<Messages> {
        let accept = |e: &EventRecord| filter.accepts(&e.event_type, &e.sender);
        let TimelinePage { chunk, start, end } = self.timeline(user, room_id, page, accept).await?;
        let state = match filter.lazy_load_members {
            true => {
                let state = self.visible_state(user, room_id).await?;
                let senders = chunk.iter().map(|e| e.sender.as_str()).collect();
                let ids = lazy_loaded(&state, Some(&senders));
                events(self.tenant.store().events(&ids).await?)
            }
            false => Vec::new(),
        };
        Ok(Messages {
            chunk: events(chunk),
            start,
            end,
            state,
        })
    }

    /// A page of the timeline as `user` may see it, of the events `accept` takes.
    pub(crate) async fn timeline(
        &self,
        user: &UserId,
        room_id: &RoomId,
        page: Page,
        accept: impl FnMut(&EventRecord) -> bool,
    ) -> Result<TimelinePage> {
        self.timeline_as(Reader::User(user), room_id, page, accept)
            .await
    }

    /// A page of the timeline as `reader` may see it, of the events `accept` takes.
    pub(crate) async fn timeline_as(
        &self,
        reader: Reader<'_>,
        room_id: &RoomId,
        page: Page,
        mut accept: impl FnMut(&EventRecord) -> bool,
    ) -> Result<TimelinePage> {
        let Page {
            from,
            to,
            direction,
            limit,
        } = page;
        let up_to = match reader {
            Reader::User(user) => {
                let visibility = self.history_access(user, room_id).await?;
                Self::visible_up_to(&visibility, self.tenant.stream().current())
            }
            Reader::Admin => {
                self.room(room_id).await?;
                self.tenant.stream().current()
            }
        };
        let start = match (from, direction) {
            (Some(from), _) => from,
            (None, Direction::Backward) => up_to,
            (None, Direction::Forward) => 0,
        };
        let range = match direction {
            // Backfilled history lies below position 0.
            Direction::Backward => StreamRange {
                after: to.unwrap_or(i64::MIN),
                up_to: start.min(up_to),
            },
            Direction::Forward => StreamRange {
                after: start,
                up_to: to.unwrap_or(up_to).min(up_to),
            },
        };
        let store = self.tenant.store();
        let mut chunk = Vec::new();
        let mut cursor = range;
        let mut end = None;
        let mut at_edge = false;
        let mut backfilled = false;
        loop {
            // Invisible or filtered events are skipped; keep paging until the page is full.
            while chunk.len() < limit as usize && cursor.after < cursor.up_to {
                let batch = store
                    .room_events(room_id.as_str(), cursor, direction, limit)
                    .await?;
                let Some(last) = batch.last() else {
                    at_edge = true;
                    break;
                };
                let last_stream = last.stream;
                let exhausted = batch.len() < limit as usize;
                for event in batch {
                    end = Some(match direction {
                        Direction::Backward => event.stream - 1,
                        Direction::Forward => event.stream,
                    });
                    if self.can_read(reader, &event, up_to).await? && accept(&event) {
                        chunk.push(event);
                        if chunk.len() == limit as usize {
                            break;
                        }
                    }
                }
                match direction {
                    Direction::Backward => cursor.up_to = last_stream - 1,
                    Direction::Forward => cursor.after = last_stream,
                }
                if exhausted {
                    at_edge = true;
                    break;
                }
            }
            // Past the room's earliest event here: its older history may be on other servers.
            let wants_more = direction == Direction::Backward
                && at_edge
                && to.is_none()
                && chunk.len() < limit as usize;
            if wants_more && !backfilled {
                backfilled = true;
                if crate::federation::backfilling::backfill(self.tenant, room_id, limit).await? > 0
                {
                    at_edge = false;
                    continue;
                }
            }
            break;
        }
        at_edge |= cursor.after >= cursor.up_to;
        // `end` is omitted only when the start of (or the newest event in) the room was reached.
        let end = if at_edge && chunk.len() < limit as usize {
            None
        } else {
            end
        };
        Ok(TimelinePage { chunk, start, end })
    }

    /// Waits, a bounded time, for the members of a room joined with partial state: a client
    /// listing members to encrypt for must not get only those known so far, unless the
    /// servers asked for them stay silent.
    async fn members_known(&self, room_id: &RoomId) {
        let partial = self.tenant.partial_rooms();
        let _ = tokio::time::timeout(MEMBERS_WAIT, partial.until_complete(room_id)).await;
    }

    /// `GET /rooms/{roomId}/members`: current (or when the user left), or at stream position
    /// `at` when given.
    pub async fn members(
        &self,
        user: &UserId,
        room_id: &RoomId,
        at: Option<i64>,
    ) -> Result<Vec<Event>> {
        self.members_known(room_id).await;
        let state = match at {
            None => self.visible_state(user, room_id).await?,
            Some(at) => {
                let access = self.history_access(user, room_id).await?;
                let up_to = Self::visible_up_to(&access, self.tenant.stream().current());
                let store = self.tenant.store();
                let event = store.last_event_at(room_id.as_str(), at.min(up_to)).await?;
                let event =
                    event.ok_or_else(|| Error::NotFound("No members at that point".into()))?;
                self.tenant
                    .state_cache()
                    .group(store, event.state_after)
                    .await?
            }
        };
        let ids: Vec<String> = state
            .iter()
            .filter(|((kind, _), _)| *kind == StateEventType::RoomMember)
            .map(|(_, id)| id.to_string())
            .collect();
        Ok(events(self.tenant.store().events(&ids).await?))
    }

    /// `GET /rooms/{roomId}/joined_members`: needs the user to be joined.
    pub async fn joined_members(&self, user: &UserId, room_id: &RoomId) -> Result<Vec<Pdu>> {
        self.room_for_member(user, room_id).await?;
        self.members_known(room_id).await;
        let store = self.tenant.store();
        let members = store.room_members(room_id.as_str(), Some("join")).await?;
        let ids: Vec<String> = members.into_iter().map(|m| m.event_id).collect();
        store
            .events(&ids)
            .await?
            .iter()
            .map(|e| Pdu::from_stored(&e.event_id, &e.room_id, &e.pdu))
            .collect()
    }

    /// `GET /joined_rooms`.
    pub async fn joined_rooms(&self, user: &UserId) -> Result<Vec<String>> {
        let memberships = self
            .tenant
            .store()
            .memberships_of_user(user.as_str())
            .await?;
        Ok(memberships
            .into_iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id)
            .collect())
    }

    /// The room version of a room the user is joined to.
    pub async fn version(&self, room_id: &RoomId) -> Result<RoomVersionRules> {
        rules_of(&self.room(room_id).await?.room_version)
    }
}

/// Ids of the state events of `state` a lazy-loading client gets (spec: "Lazy-loading room
/// members"): the member events of `senders` only, or the whole state without them.
pub(crate) fn lazy_loaded(state: &RoomState, senders: Option<&BTreeSet<&str>>) -> Vec<String> {
    state
        .iter()
        .filter(|((kind, key), _)| match senders {
            Some(senders) => *kind == StateEventType::RoomMember && senders.contains(key.as_str()),
            None => true,
        })
        .map(|(_, id)| id.to_string())
        .collect()
}

/// Event ids of a state map, for callers outside this module.
pub fn state_ids(state: &RoomState) -> Vec<OwnedEventId> {
    state.values().cloned().collect()
}
