//! The tenant's rooms as its admins see them (Synapse: "Rooms Admin API", "Edit Room
//! Membership API", "Block Room API"): every room with its summary, members, state and
//! timeline read past history visibility, and an admin's changes to rooms: blocking one,
//! joining a user to one, making a user a room's admin.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use ruma::events::StateEventType;
use ruma::{EventId, OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, UserId};
use serde_json::{Value, json};

use super::event::events;
use super::read::{Reader, lazy_loaded};
use super::state::RoomState;
use super::{Context, Direction, EventDraft, Messages, Page, Rooms, rules_of};
use crate::filter::RoomEventFilter;
use crate::store::{BlockedRoomRecord, EventRecord, RoomRecord};
use crate::{Error, Result, Tenant, now_ms};

/// What Synapse answers, word for word, when a blocked room is joined or invited to.
const BLOCKED: &str = "This room has been blocked on this server";

/// A room as the admin API lists it (Synapse: `room_stats_state` and `room_stats_current`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomSummary {
    pub room_id: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    /// `url` of `m.room.avatar`.
    pub avatar: Option<String>,
    pub canonical_alias: Option<String>,
    pub joined_members: u64,
    pub joined_local_members: u64,
    pub version: String,
    pub creator: String,
    /// The algorithm of `m.room.encryption`.
    pub encryption: Option<String>,
    /// `m.federate` of the create event (true unless it says false).
    pub federatable: bool,
    /// Listed in the room directory.
    pub public: bool,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    /// Entries of the room's current state.
    pub state_events: u64,
    /// `type` of the create event (`m.space`).
    pub room_type: Option<String>,
    /// Whether the room has an `m.room.tombstone`, and the successor it names.
    pub tombstoned: bool,
    pub replacement_room: Option<String>,
}

/// A room with what only its details show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomDetails {
    pub summary: RoomSummary,
    /// Devices of the room's joined local members.
    pub joined_local_devices: u64,
    /// Whether every local user with a membership in the room forgot it.
    pub forgotten: bool,
}

/// What the room list is sorted by (Synapse: `RoomSortOrder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoomOrder {
    #[default]
    Name,
    CanonicalAlias,
    JoinedMembers,
    JoinedLocalMembers,
    Version,
    Creator,
    Encryption,
    Federatable,
    Public,
    JoinRules,
    GuestAccess,
    HistoryVisibility,
    StateEvents,
}

/// Which rooms to list, and in which order.
#[derive(Clone, Debug, Default)]
pub struct RoomListQuery {
    pub order: RoomOrder,
    /// `dir=b`: the order reversed.
    pub backwards: bool,
    /// Part of the name, of the canonical alias's local part, or the whole room id.
    pub search_term: Option<String>,
    /// Only rooms in the directory (`true`) or only the others (`false`).
    pub public_rooms: Option<bool>,
    /// Only rooms without joined members (`true`) or only the others (`false`).
    pub empty_rooms: Option<bool>,
}

/// One of a room's forward extremities (Synapse: "Forward Extremities Admin API").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extremity {
    pub event_id: String,
    /// The state after the event.
    pub state_group: i64,
    pub depth: i64,
    /// maas keeps no receive time: the event's `origin_server_ts`.
    pub received_ts: i64,
}

/// The admin API's view of the tenant's rooms.
pub struct RoomAdmin<'a> {
    pub(super) tenant: &'a Tenant,
}

impl<'a> Rooms<'a> {
    /// What tenant admins may see and do with every room.
    pub fn admin(&self) -> RoomAdmin<'a> {
        RoomAdmin {
            tenant: self.tenant,
        }
    }
}

impl RoomAdmin<'_> {
    /// `GET /_synapse/admin/v1/rooms`: every room `query` selects, in its order.
    pub async fn list(&self, query: &RoomListQuery) -> Result<Vec<RoomSummary>> {
        let mut rooms = Vec::new();
        for room in self.tenant.store().all_rooms().await? {
            let summary = self.summary_of(&room).await?;
            if selected(&summary, query) {
                rooms.push(summary);
            }
        }
        rooms.sort_by(|a, b| compare(a, b, query.order, query.backwards));
        Ok(rooms)
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}`.
    pub async fn details(&self, room_id: &RoomId) -> Result<RoomDetails> {
        let room = self.room(room_id).await?;
        let summary = self.summary_of(&room).await?;
        let store = self.tenant.store();
        let mut joined_local_devices = 0;
        let mut forgotten = true;
        for member in store.room_members(room_id.as_str(), None).await? {
            let Some(localpart) = self.local_part(&member.user_id) else {
                continue;
            };
            if member.membership == "join" {
                joined_local_devices += store.devices(&localpart).await?.len() as u64;
            }
            forgotten &= store
                .is_forgotten(room_id.as_str(), &member.user_id)
                .await?;
        }
        Ok(RoomDetails {
            summary,
            joined_local_devices,
            forgotten,
        })
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/members`: the joined members, local or not.
    pub async fn members(&self, room_id: &RoomId) -> Result<Vec<String>> {
        self.room(room_id).await?;
        let mut members: Vec<String> = self
            .tenant
            .store()
            .room_members(room_id.as_str(), Some("join"))
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        members.sort();
        Ok(members)
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/state`: the current state, of one event type
    /// when `kind` says.
    pub async fn state(&self, room_id: &RoomId, kind: Option<&str>) -> Result<Vec<super::Event>> {
        let state = self.current_state(room_id).await?;
        let ids: Vec<String> = state
            .iter()
            .filter(|((k, _), _)| kind.is_none_or(|kind| k.to_string() == kind))
            .map(|(_, id)| id.to_string())
            .collect();
        let mut found = self.tenant.store().events(&ids).await?;
        found.sort_by(|a, b| (a.stream, &a.event_id).cmp(&(b.stream, &b.event_id)));
        Ok(events(found))
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/messages`: as the client API's `/messages`, past
    /// the room's history visibility.
    pub async fn messages(
        &self,
        room_id: &RoomId,
        page: Page,
        filter: &RoomEventFilter,
    ) -> Result<Messages> {
        let accept = |e: &EventRecord| filter.accepts(&e.event_type, &e.sender);
        let page = self
            .tenant
            .rooms()
            .timeline_as(Reader::Admin, room_id, page, accept)
            .await?;
        let state = if filter.lazy_load_members {
            let state = self.current_state(room_id).await?;
            let senders: BTreeSet<&str> = page.chunk.iter().map(|e| e.sender.as_str()).collect();
            let ids = lazy_loaded(&state, Some(&senders));
            events(self.tenant.store().events(&ids).await?)
        } else {
            Vec::new()
        };
        Ok(Messages {
            chunk: events(page.chunk),
            start: page.start,
            end: page.end,
            state,
        })
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}`: as the client API's, past
    /// the room's history visibility.
    pub async fn context(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        limit: u32,
        filter: &RoomEventFilter,
    ) -> Result<Context> {
        let not_found = || Error::NotFound("Event not found.".into());
        let event = self
            .tenant
            .store()
            .event(event_id.as_str())
            .await?
            .filter(|e| e.room_id == room_id.as_str() && e.stream != 0)
            .ok_or_else(not_found)?;
        self.tenant
            .rooms()
            .context_around(Reader::Admin, room_id, event, limit, filter)
            .await
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event`: the event closest to `ts`
    /// in `direction`, with its timestamp.
    pub async fn event_at(
        &self,
        room_id: &RoomId,
        ts: i64,
        direction: Direction,
    ) -> Result<(String, i64)> {
        let event = self
            .tenant
            .store()
            .event_by_timestamp(room_id.as_str(), ts, direction)
            .await?;
        let dir = match direction {
            Direction::Forward => "f",
            Direction::Backward => "b",
        };
        event
            .map(|e| (e.event_id, e.origin_server_ts))
            .ok_or_else(|| {
                Error::NotFound(format!("Unable to find event from {ts} in direction {dir}"))
            })
    }

    /// `GET /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities`; a room unknown here
    /// has none, as in Synapse.
    pub async fn forward_extremities(&self, room_id: &RoomId) -> Result<Vec<Extremity>> {
        let store = self.tenant.store();
        let ids = store.forward_extremities(room_id.as_str()).await?;
        let mut found: Vec<Extremity> = store
            .events(&ids)
            .await?
            .into_iter()
            .map(|e| Extremity {
                event_id: e.event_id,
                state_group: e.state_after,
                depth: e.depth,
                received_ts: e.origin_server_ts,
            })
            .collect();
        found.sort_by(|a, b| (a.depth, &a.event_id).cmp(&(b.depth, &b.event_id)));
        Ok(found)
    }

    /// `DELETE /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities`: keeps only the
    /// newest one (as Synapse); the room's current state stays what it was. Returns how many
    /// went.
    pub async fn delete_forward_extremities(&self, room_id: &RoomId) -> Result<u64> {
        let tenant = self.tenant;
        let writer = tenant.room_locks().lock(room_id).await;
        if let Some(last) = tenant.room_heads().last_stream(tenant, &writer) {
            tenant.stream().reached(last).await;
        }
        let store = tenant.store();
        let ids = store.forward_extremities(room_id.as_str()).await?;
        if ids.len() < 2 {
            return Ok(0);
        }
        let newest = store
            .events(&ids)
            .await?
            .into_iter()
            .max_by_key(|e| e.stream)
            .map(|e| e.event_id);
        let Some(keep) = newest else {
            return Ok(0);
        };
        let deleted = store
            .delete_forward_extremities(room_id.as_str(), &keep)
            .await?;
        // The next event builds on what the store has now.
        tenant.room_heads().forget(tenant, room_id);
        drop(writer);
        tracing::info!(%room_id, deleted, "forward extremities deleted by an admin");
        Ok(deleted)
    }

    /// A room id as it is, or the room a local or remote alias points to (with the servers
    /// that know it); Synapse's `ResolveRoomIdMixin`.
    pub async fn resolve(
        &self,
        identifier: &str,
        servers: Vec<OwnedServerName>,
    ) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        if let Ok(room_id) = RoomId::parse(identifier) {
            return Ok((room_id, servers));
        }
        if let Ok(alias) = RoomAliasId::parse(identifier) {
            return self.tenant.rooms().alias(&alias).await;
        }
        Err(Error::Unknown(format!(
            "{identifier} was not legal room ID or room alias"
        )))
    }

    /// `POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin`: gives `user` the power
    /// of the room's most powerful joined local user, who sends the new power levels (and
    /// invites `user` to a room that is not public when they are not in it).
    pub async fn make_room_admin(&self, room_id: &RoomId, user: &UserId) -> Result<()> {
        let store = self.tenant.store();
        let Some(room) = store.room(room_id.as_str()).await? else {
            return Err(Error::Unknown("Server not in room".into()));
        };
        let state = self
            .tenant
            .state_cache()
            .group(store, room.state_group)
            .await?;
        let create = self
            .content_and_sender(&state, StateEventType::RoomCreate)
            .await?;
        let Some((create, creator)) = create else {
            return Err(Error::Unknown("Server not in room".into()));
        };
        let levels = self
            .content_of(&state, StateEventType::RoomPowerLevels)
            .await?;
        let rules = rules_of(&room.room_version)?;
        let (admin, mut content) = match levels {
            Some(levels) => {
                let mut candidates = self.local_users_by_power(&levels);
                if rules.authorization.explicitly_privilege_room_creators {
                    candidates.extend(self.local_creators(&create, &creator));
                }
                (self.joined_of(room_id, candidates).await?, levels)
            }
            None => {
                let local = self.local_part(&creator).is_some();
                (local.then(|| creator.clone()), json!({}))
            }
        };
        let Some(admin) = admin.and_then(|a| UserId::parse(a).ok()) else {
            return Err(Error::Unknown("No local admin user in room".into()));
        };
        let users = content
            .as_object_mut()
            .map(|c| c.entry("users").or_insert_with(|| json!({})));
        let Some(Value::Object(users)) = users else {
            return Err(Error::Unknown("No local admin user in room".into()));
        };
        let power = users.get(admin.as_str()).cloned().unwrap_or(json!(100));
        users.insert(user.to_string(), power);
        let draft = EventDraft::state("m.room.power_levels", "", content);
        let rooms = self.tenant.rooms();
        match rooms.send(&admin, room_id, draft, None).await {
            Err(Error::Forbidden(_)) => {
                return Err(Error::Unknown(
                    "No local admin user in room with power to update power levels.".into(),
                ));
            }
            other => other?,
        };
        if self.is_in_or_public(&state, user).await? {
            return Ok(());
        }
        rooms.invite(&admin, room_id, user, None, false).await
    }

    /// `POST /_synapse/admin/v1/join/{roomIdOrAlias}`: `requester` invites `user` to a room
    /// that is not public (so must be able to), then `user` joins it; through `servers` for a
    /// room of other servers.
    pub async fn join_user(
        &self,
        requester: &UserId,
        room_id: &RoomId,
        servers: &[OwnedServerName],
        user: &UserId,
    ) -> Result<()> {
        if self.local_part(user.as_str()).is_none() {
            return Err(Error::Unknown(
                "This endpoint can only be used with local users".into(),
            ));
        }
        if self.tenant.store().user(user.localpart()).await?.is_none() {
            return Err(Error::NotFound("User not found".into()));
        }
        let rooms = self.tenant.rooms();
        if let Some(room) = self.tenant.store().room(room_id.as_str()).await? {
            let state = self
                .tenant
                .state_cache()
                .group(self.tenant.store(), room.state_group)
                .await?;
            let rule = self
                .content_of(&state, StateEventType::RoomJoinRules)
                .await?
                .and_then(|c| {
                    c.get("join_rule")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            if rule.is_some_and(|r| r != "public") {
                rooms.invite(requester, room_id, user, None, false).await?;
            }
        }
        rooms.join(user, room_id, servers, None).await?;
        Ok(())
    }

    /// `PUT /_synapse/admin/v1/rooms/{roomId}/block`: blocks a room, known here or not.
    pub async fn block(&self, room_id: &RoomId, by: &UserId) -> Result<()> {
        let record = BlockedRoomRecord {
            room_id: room_id.to_string(),
            user_id: by.to_string(),
            blocked_ts: now_ms(),
        };
        self.tenant.store().block_room(&record).await?;
        tracing::info!(%room_id, admin = %by, "room blocked");
        Ok(())
    }

    pub async fn unblock(&self, room_id: &RoomId) -> Result<()> {
        if self.tenant.store().unblock_room(room_id.as_str()).await? {
            tracing::info!(%room_id, "room unblocked");
        }
        Ok(())
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/block`: the admin who blocked the room.
    pub async fn blocked_by(&self, room_id: &RoomId) -> Result<Option<String>> {
        let blocked = self.tenant.store().blocked_room(room_id.as_str()).await?;
        Ok(blocked.map(|b| b.user_id))
    }

    /// Refuses a join, invite or knock of a blocked room, as Synapse words it.
    pub(crate) async fn ensure_not_blocked(&self, room_id: &RoomId) -> Result<()> {
        match self.tenant.store().blocked_room(room_id.as_str()).await? {
            Some(_) => Err(Error::Forbidden(BLOCKED.into())),
            None => Ok(()),
        }
    }

    async fn room(&self, room_id: &RoomId) -> Result<RoomRecord> {
        self.tenant
            .store()
            .room(room_id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound("Room not found".into()))
    }

    async fn current_state(&self, room_id: &RoomId) -> Result<std::sync::Arc<RoomState>> {
        let room = self.room(room_id).await?;
        self.tenant
            .state_cache()
            .group(self.tenant.store(), room.state_group)
            .await
    }

    /// The room's summary, from its current state and members.
    async fn summary_of(&self, room: &RoomRecord) -> Result<RoomSummary> {
        let store = self.tenant.store();
        let state = self
            .tenant
            .state_cache()
            .group(store, room.state_group)
            .await?;
        let field = async |kind: StateEventType, key: &str| -> Result<Option<String>> {
            let content = self.content_of(&state, kind).await?;
            Ok(content.and_then(|c| c.get(key).and_then(Value::as_str).map(str::to_owned)))
        };
        let create = self
            .content_of(&state, StateEventType::RoomCreate)
            .await?
            .unwrap_or_default();
        let tombstone = self
            .content_of(&state, StateEventType::RoomTombstone)
            .await?;
        let joined = store.room_members(&room.room_id, Some("join")).await?;
        let joined_local = joined
            .iter()
            .filter(|m| self.local_part(&m.user_id).is_some())
            .count();
        Ok(RoomSummary {
            room_id: room.room_id.clone(),
            name: field(StateEventType::RoomName, "name").await?,
            topic: field(StateEventType::RoomTopic, "topic").await?,
            avatar: field(StateEventType::RoomAvatar, "url").await?,
            canonical_alias: field(StateEventType::RoomCanonicalAlias, "alias").await?,
            joined_members: joined.len() as u64,
            joined_local_members: joined_local as u64,
            version: room.room_version.clone(),
            creator: room.creator.clone(),
            encryption: field(StateEventType::RoomEncryption, "algorithm").await?,
            federatable: create.get("m.federate") != Some(&Value::Bool(false)),
            public: room.published,
            join_rules: field(StateEventType::RoomJoinRules, "join_rule").await?,
            guest_access: field(StateEventType::RoomGuestAccess, "guest_access").await?,
            history_visibility: field(StateEventType::RoomHistoryVisibility, "history_visibility")
                .await?,
            state_events: state.len() as u64,
            room_type: create
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            tombstoned: tombstone.is_some(),
            replacement_room: tombstone.and_then(|t| {
                t.get("replacement_room")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        })
    }

    /// The `content` of the state event of `kind` (state key `""`), if there is one.
    async fn content_of(&self, state: &RoomState, kind: StateEventType) -> Result<Option<Value>> {
        Ok(self
            .content_and_sender(state, kind)
            .await?
            .map(|(content, _)| content))
    }

    async fn content_and_sender(
        &self,
        state: &RoomState,
        kind: StateEventType,
    ) -> Result<Option<(Value, String)>> {
        let Some(id) = state.get(&(kind, String::new())) else {
            return Ok(None);
        };
        let pdu = self
            .tenant
            .state_cache()
            .pdu(self.tenant.store(), id)
            .await?;
        Ok(pdu.map(|p| (p.content_value(), p.sender.to_string())))
    }

    /// The localpart of a user id of this tenant's server; `None` for anyone else's.
    fn local_part(&self, user_id: &str) -> Option<String> {
        let user = UserId::parse(user_id).ok()?;
        (user.server_name() == self.tenant.server_name()).then(|| user.localpart().to_owned())
    }

    /// The local users the power levels name, least powerful first (Synapse's order).
    fn local_users_by_power(&self, levels: &Value) -> Vec<String> {
        let Some(users) = levels.get("users").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut local: Vec<(i64, &String)> = users
            .iter()
            .filter(|(user, _)| self.local_part(user).is_some())
            .map(|(user, power)| (power_value(power), user))
            .collect();
        local.sort();
        local.into_iter().map(|(_, user)| user.clone()).collect()
    }

    /// The room's local creators (room versions where creators have unlimited power and
    /// are not listed in the power levels).
    fn local_creators(&self, create: &Value, sender: &str) -> Vec<String> {
        let additional = create
            .get("additional_creators")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned));
        additional
            .into_iter()
            .flatten()
            .chain(std::iter::once(sender.to_owned()))
            .filter(|user| self.local_part(user).is_some())
            .collect()
    }

    /// The last of `candidates` (the most powerful) who is joined to the room.
    async fn joined_of(&self, room_id: &RoomId, candidates: Vec<String>) -> Result<Option<String>> {
        let store = self.tenant.store();
        for user in candidates.into_iter().rev() {
            let membership = store.membership(room_id.as_str(), &user).await?;
            if membership.is_some_and(|m| m.membership == "join") {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }

    /// Whether `user` is joined or invited in `state`, or the room is public.
    async fn is_in_or_public(&self, state: &RoomState, user: &UserId) -> Result<bool> {
        let member = match state.get(&(StateEventType::RoomMember, user.to_string())) {
            Some(id) => {
                let pdu = self
                    .tenant
                    .state_cache()
                    .pdu(self.tenant.store(), id)
                    .await?;
                pdu.map(|p| p.content_value())
            }
            None => None,
        };
        let membership = member
            .as_ref()
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str);
        if matches!(membership, Some("join" | "invite")) {
            return Ok(true);
        }
        let rule = self
            .content_of(state, StateEventType::RoomJoinRules)
            .await?;
        Ok(rule.is_some_and(|r| r.get("join_rule").and_then(Value::as_str) == Some("public")))
    }
}

/// A power level as the power levels event gives it: an integer, or (old rooms) a string of
/// one; anything else counts as 0.
fn power_value(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Whether `query`'s filters keep the room.
fn selected(room: &RoomSummary, query: &RoomListQuery) -> bool {
    if query
        .public_rooms
        .is_some_and(|public| public != room.public)
    {
        return false;
    }
    if query
        .empty_rooms
        .is_some_and(|empty| empty != (room.joined_members == 0))
    {
        return false;
    }
    query
        .search_term
        .as_deref()
        .is_none_or(|t| matches_term(room, t))
}

/// Synapse's search: the term (lower-cased) within the lower-cased name or within the
/// canonical alias before its server name, or the room id exactly.
fn matches_term(room: &RoomSummary, term: &str) -> bool {
    let lower = term.to_lowercase();
    let in_name = room
        .name
        .as_ref()
        .is_some_and(|n| n.to_lowercase().contains(&lower));
    let in_alias = room.canonical_alias.as_ref().is_some_and(|alias| {
        let local = alias
            .strip_prefix('#')
            .and_then(|a| a.rfind(':').map(|at| &a[..at]));
        local.is_some_and(|l| l.contains(&lower))
    });
    in_name || in_alias || room.room_id == term
}

/// Synapse's order: the column in its direction (ascending, or descending for counts and
/// versions), `dir=b` reversing it, ties by room id the same way; a missing value sorts after
/// every value ascending (PostgreSQL's `NULLS LAST`) and so first descending.
fn compare(a: &RoomSummary, b: &RoomSummary, order: RoomOrder, backwards: bool) -> Ordering {
    let text = |f: fn(&RoomSummary) -> Option<&str>| nulls_last(f(a), f(b));
    let (by_column, ascending) = match order {
        RoomOrder::Name => (text(|r| r.name.as_deref()), true),
        RoomOrder::CanonicalAlias => (text(|r| r.canonical_alias.as_deref()), true),
        RoomOrder::JoinedMembers => (a.joined_members.cmp(&b.joined_members), false),
        RoomOrder::JoinedLocalMembers => {
            (a.joined_local_members.cmp(&b.joined_local_members), false)
        }
        RoomOrder::Version => (a.version.cmp(&b.version), false),
        RoomOrder::Creator => (a.creator.cmp(&b.creator), true),
        RoomOrder::Encryption => (text(|r| r.encryption.as_deref()), true),
        RoomOrder::Federatable => (a.federatable.cmp(&b.federatable), true),
        RoomOrder::Public => (a.public.cmp(&b.public), true),
        RoomOrder::JoinRules => (text(|r| r.join_rules.as_deref()), true),
        RoomOrder::GuestAccess => (text(|r| r.guest_access.as_deref()), true),
        RoomOrder::HistoryVisibility => (text(|r| r.history_visibility.as_deref()), true),
        RoomOrder::StateEvents => (a.state_events.cmp(&b.state_events), false),
    };
    let ordering = by_column.then_with(|| a.room_id.cmp(&b.room_id));
    if ascending != backwards {
        ordering
    } else {
        ordering.reverse()
    }
}

fn nulls_last(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, name: Option<&str>, members: u64) -> RoomSummary {
        RoomSummary {
            room_id: id.into(),
            name: name.map(str::to_owned),
            joined_members: members,
            ..RoomSummary::default()
        }
    }

    #[test]
    fn rooms_sort_as_synapse_sorts_them() {
        let (a, b, none) = (
            room("!a", Some("A"), 1),
            room("!b", Some("B"), 2),
            room("!c", None, 2),
        );
        // Names ascending, a room without one last; reversed, first.
        assert_eq!(compare(&a, &b, RoomOrder::Name, false), Ordering::Less);
        assert_eq!(
            compare(&none, &b, RoomOrder::Name, false),
            Ordering::Greater
        );
        assert_eq!(compare(&none, &b, RoomOrder::Name, true), Ordering::Less);
        // Members largest first, ties by room id the same way (descending, then ascending).
        assert_eq!(
            compare(&b, &a, RoomOrder::JoinedMembers, false),
            Ordering::Less
        );
        assert_eq!(
            compare(&none, &b, RoomOrder::JoinedMembers, false),
            Ordering::Less
        );
        assert_eq!(
            compare(&none, &b, RoomOrder::JoinedMembers, true),
            Ordering::Greater
        );
    }

    #[test]
    fn search_terms_match_as_synapse_matches_them() {
        let mut r = room("!room:x", Some("Matrix HQ"), 0);
        r.canonical_alias = Some("#twim:matrix.org".into());
        assert!(matches_term(&r, "hq"));
        assert!(matches_term(&r, "TWIM"));
        assert!(matches_term(&r, "!room:x"));
        assert!(!matches_term(&r, "matrix.org"));
        assert!(!matches_term(&r, "!room"));
    }
}
