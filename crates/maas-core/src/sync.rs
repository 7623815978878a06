//! `/sync` (spec: Client-Server API, "Syncing"): what changed for a user between two positions
//! of the tenant's stream. Long-polls wait on the tenant's notifier, never by polling; an
//! incremental sync only reads what changed in its range.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use maas_store::{Direction, EventRecord, MembershipRecord, StreamRange};
use ruma::UserId;
use ruma::events::StateEventType;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::accounts::AuthedUser;
use crate::e2ee::device_keys::device_list_delta;
use crate::filter::{DEFAULT_TIMELINE_LIMIT, Filter};
use crate::push::PUSH_RULES_TYPE;
use crate::rooms::read::client_event;
use crate::{Error, Result, Tenant};

/// Longest a client may make a sync wait.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEROES: usize = 5;

pub struct SyncRequest {
    pub since: Option<i64>,
    /// `set_presence`: `online` unless the client says otherwise.
    pub set_presence: Option<String>,
    pub timeout: Duration,
    pub full_state: bool,
    pub filter: Filter,
}

/// Sync tokens are stream positions: `s<position>`.
pub fn token(position: i64) -> String {
    format!("s{position}")
}

pub fn parse_token(token: &str) -> Result<i64> {
    token
        .strip_prefix('s')
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| Error::InvalidParam(format!("Invalid stream token {token:?}")))
}

/// One sync response under construction.
struct Builder<'a> {
    tenant: &'a Tenant,
    viewer: &'a AuthedUser,
    user: &'a UserId,
    since: Option<i64>,
    up_to: i64,
    full_state: bool,
    filter: &'a Filter,
}

impl Tenant {
    /// `GET /sync`.
    pub async fn sync(&self, user: &AuthedUser, req: SyncRequest) -> Result<Value> {
        let presence = req.set_presence.as_deref().unwrap_or("online");
        self.mark_presence_from_sync(user, presence).await?;
        let mut positions = self.stream().subscribe();
        let deadline = Instant::now() + req.timeout.min(MAX_TIMEOUT);
        let mut expired = false;
        loop {
            let up_to = *positions.borrow_and_update();
            let since = req.since.map(|s| s.min(up_to));
            let initial = since.is_none() || req.full_state;
            if initial || expired || since.is_some_and(|s| s < up_to) {
                let builder = Builder {
                    tenant: self,
                    viewer: user,
                    user: &user.user_id,
                    since,
                    up_to,
                    full_state: req.full_state,
                    filter: &req.filter,
                };
                let (response, changed) = builder.build().await?;
                if initial || changed || expired || Instant::now() >= deadline {
                    return Ok(response);
                }
            }
            // Past the deadline, one last (usually empty) response goes out: it still carries
            // the device's key counts.
            expired = !matches!(
                tokio::time::timeout_at(deadline, positions.changed()).await,
                Ok(Ok(()))
            );
        }
    }
}

impl Builder<'_> {
    fn range(&self) -> StreamRange {
        StreamRange {
            after: self.since.unwrap_or(0),
            up_to: self.up_to,
        }
    }

    fn in_range(&self, stream: i64) -> bool {
        self.since.is_none_or(|s| stream > s) && stream <= self.up_to
    }

    /// The response, and whether it carries anything new for the user.
    async fn build(&self) -> Result<(Value, bool)> {
        let store = self.tenant.store();
        let memberships = store.memberships_of_user(self.user.as_str()).await?;
        let memberships: Vec<MembershipRecord> = memberships
            .into_iter()
            .filter(|m| self.filter.room.accepts_room(&m.room_id) && m.stream <= self.up_to)
            .collect();
        let mut changed = false;

        let joined: Vec<&MembershipRecord> = memberships
            .iter()
            .filter(|m| m.membership == "join")
            .collect();
        let joined_ids: Vec<String> = joined.iter().map(|m| m.room_id.clone()).collect();
        let active: HashSet<String> = match self.since {
            Some(_) if !self.full_state => {
                let mut rooms: HashSet<String> = store
                    .rooms_with_events(&joined_ids, self.range())
                    .await?
                    .into_iter()
                    .collect();
                for id in &joined_ids {
                    if self
                        .tenant
                        .typing()
                        .changed_since(id, self.range().after)
                        .is_some()
                    {
                        rooms.insert(id.clone());
                    }
                }
                for receipt in store.receipts_in(&joined_ids, self.range()).await? {
                    rooms.insert(receipt.room_id);
                }
                rooms
            }
            _ => joined_ids.iter().cloned().collect(),
        };
        let room_data = self.room_account_data().await?;

        let mut join = Map::new();
        for membership in &joined {
            let id = &membership.room_id;
            if !active.contains(id) && !room_data.contains_key(id) {
                continue;
            }
            // A room joined within the range is new to the client: send all of it.
            let fresh = self.since.is_none() || self.full_state || self.in_range(membership.stream);
            let room = self.joined_room(id, fresh, room_data.get(id)).await?;
            join.insert(id.clone(), room);
            changed = true;
        }

        let mut invite = Map::new();
        let mut knock = Map::new();
        let mut leave = Map::new();
        for membership in &memberships {
            let new = self.in_range(membership.stream);
            match membership.membership.as_str() {
                "invite" if new || self.since.is_none() => {
                    invite.insert(
                        membership.room_id.clone(),
                        json!({ "invite_state": { "events": self.stripped(membership).await? } }),
                    );
                    changed = true;
                }
                "knock" if new || self.since.is_none() => {
                    knock.insert(
                        membership.room_id.clone(),
                        json!({ "knock_state": { "events": self.stripped(membership).await? } }),
                    );
                    changed = true;
                }
                "leave" | "ban"
                    if (new && self.since.is_some())
                        || (self.filter.room.include_leave && self.since.is_none()) =>
                {
                    if store
                        .is_forgotten(&membership.room_id, self.user.as_str())
                        .await?
                    {
                        continue;
                    }
                    leave.insert(
                        membership.room_id.clone(),
                        self.left_room(membership).await?,
                    );
                    changed = true;
                }
                _ => {}
            }
        }

        let account_data = self.global_account_data().await?;
        changed |= !account_data.is_empty();
        let presence = self.presence(&joined_ids).await?;
        changed |= !presence.is_empty();
        let e2ee = self.tenant.e2ee();
        let (to_device, delivered_up_to) = e2ee
            .to_device_for_sync(self.viewer, self.since, self.up_to)
            .await?;
        changed |= !to_device.is_empty();
        let (device_changed, device_left) = match self.since {
            Some(_) => device_list_delta(&e2ee, self.user, self.range()).await?,
            None => (Vec::new(), Vec::new()),
        };
        changed |= !device_changed.is_empty() || !device_left.is_empty();
        let store = self.tenant.store();
        let device = self.viewer.device_id.as_str();
        let otk_counts: Map<String, Value> = store
            .count_one_time_keys(self.user.localpart(), device)
            .await?
            .into_iter()
            .map(|(algorithm, count)| (algorithm, json!(count)))
            .collect();
        let fallback_types = store
            .unused_fallback_key_types(self.user.localpart(), device)
            .await?;
        let response = json!({
            "next_batch": token(delivered_up_to.min(self.up_to)),
            "to_device": { "events": to_device },
            "device_lists": { "changed": device_changed, "left": device_left },
            "device_one_time_keys_count": otk_counts,
            "device_unused_fallback_key_types": fallback_types,
            "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
            "account_data": { "events": account_data },
            "presence": { "events": presence },
        });
        Ok((response, changed))
    }

    async fn sync_event(&self, event: &EventRecord) -> Value {
        let mut value = client_event(self.tenant, event, Some(self.viewer)).await;
        if let Some(object) = value.as_object_mut() {
            object.remove("room_id");
        }
        value
    }

    /// One joined room: timeline, state, ephemeral events, account data, summary.
    async fn joined_room(
        &self,
        room_id: &str,
        fresh: bool,
        account_data: Option<&Vec<Value>>,
    ) -> Result<Value> {
        let store = self.tenant.store();
        let timeline_filter = &self.filter.room.timeline;
        let limit = timeline_filter.limit_or(DEFAULT_TIMELINE_LIMIT);
        let after = if fresh { 0 } else { self.range().after };
        let range = StreamRange {
            after,
            up_to: self.up_to,
        };
        let mut events = store
            .room_events(room_id, range, Direction::Backward, limit + 1)
            .await?;
        let limited = events.len() > limit as usize;
        events.truncate(limit as usize);
        events.reverse();
        let timeline: Vec<&EventRecord> = events
            .iter()
            .filter(|e| timeline_filter.accepts(&e.event_type, &e.sender))
            .collect();

        let state = self.state_for(room_id, &events, fresh, limited).await?;
        let mut timeline_json = Vec::with_capacity(timeline.len());
        for event in &timeline {
            timeline_json.push(self.sync_event(event).await);
        }
        let mut state_json = Vec::with_capacity(state.len());
        for event in &state {
            state_json.push(self.sync_event(event).await);
        }
        let room_id_parsed = ruma::RoomId::parse(room_id)
            .map_err(|_| Error::Internal(format!("bad stored room id {room_id}")))?;
        let (notifications, highlights) =
            crate::push::unread_counts(self.tenant, self.user, &room_id_parsed).await?;
        let mut room = json!({
            "unread_notifications": {
                "notification_count": notifications,
                "highlight_count": highlights,
            },
            "timeline": { "events": timeline_json, "limited": limited },
            "state": { "events": state_json },
            "ephemeral": { "events": self.ephemeral(room_id).await? },
            "account_data": { "events": account_data.cloned().unwrap_or_default() },
        });
        if let Some(first) = events.first() {
            room["timeline"]["prev_batch"] = json!(token(first.stream - 1));
        } else {
            room["timeline"]["prev_batch"] = json!(token(self.up_to));
        }
        let membership_changed = events.iter().any(|e| e.event_type == "m.room.member");
        if fresh || membership_changed {
            room["summary"] = self.summary(room_id).await?;
        }
        Ok(room)
    }

    /// State to send with a room's timeline: all of it (or the members the timeline needs,
    /// with lazy loading) for a fresh room, the changes hidden by a gap for a limited one.
    async fn state_for(
        &self,
        room_id: &str,
        timeline: &[EventRecord],
        fresh: bool,
        limited: bool,
    ) -> Result<Vec<EventRecord>> {
        let lazy = self.filter.room.state.lazy_load_members;
        // A gapless incremental timeline carries its own state changes; with lazy loading the
        // client still needs the member events of whoever speaks in it.
        let only_senders = !fresh && !limited;
        if only_senders && (!lazy || timeline.is_empty()) {
            return Ok(Vec::new());
        }
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let start_group = match timeline.first() {
            Some(first) => first.state_before,
            None => match store.last_event_at(room_id, self.up_to).await? {
                Some(event) => event.state_after,
                None => return Ok(Vec::new()),
            },
        };
        let start = cache.group(store, start_group).await?;
        let previous = if fresh || only_senders {
            None
        } else {
            match store.last_event_at(room_id, self.range().after).await? {
                Some(event) => Some(cache.group(store, event.state_after).await?),
                None => None,
            }
        };
        let senders: HashSet<&str> = timeline.iter().map(|e| e.sender.as_str()).collect();
        let in_timeline: HashSet<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
        let ids: Vec<String> = start
            .iter()
            .filter(|(key, id)| previous.as_ref().is_none_or(|p| p.get(*key) != Some(*id)))
            .filter(|((kind, state_key), _)| {
                !only_senders
                    || (*kind == StateEventType::RoomMember && senders.contains(state_key.as_str()))
            })
            .filter(|((kind, state_key), _)| {
                !lazy
                    || *kind != StateEventType::RoomMember
                    || senders.contains(state_key.as_str())
                    || state_key == self.user.as_str()
            })
            .filter(|(_, id)| !in_timeline.contains(id.as_str()))
            .map(|(_, id)| id.to_string())
            .collect();
        let state_filter = &self.filter.room.state;
        let mut events = store.events(&ids).await?;
        events.retain(|e| state_filter.accepts(&e.event_type, &e.sender));
        events.sort_by_key(|e| e.stream);
        Ok(events)
    }

    /// Typing and receipts of a room that changed in range.
    async fn ephemeral(&self, room_id: &str) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        if let Some(users) = self
            .tenant
            .typing()
            .changed_since(room_id, self.range().after)
        {
            events.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
        }
        let rooms = [room_id.to_owned()];
        let receipts = self
            .tenant
            .store()
            .receipts_in(&rooms, self.range())
            .await?;
        let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for receipt in receipts {
            // Private receipts are only ever shown to their owner.
            if receipt.receipt_type == "m.read.private" && receipt.user_id != self.user.as_str() {
                continue;
            }
            let mut data = json!({ "ts": receipt.ts });
            if let Some(thread) = &receipt.thread_id {
                data["thread_id"] = json!(thread);
            }
            let by_type = content.entry(receipt.event_id.clone()).or_default();
            let users = by_type
                .entry(receipt.receipt_type.clone())
                .or_insert_with(|| json!({}));
            users[receipt.user_id.as_str()] = data;
        }
        if !content.is_empty() {
            events.push(json!({ "type": "m.receipt", "content": content }));
        }
        Ok(events)
    }

    /// `m.heroes` and member counts (spec: "Room summary").
    async fn summary(&self, room_id: &str) -> Result<Value> {
        let members = self.tenant.store().room_members(room_id, None).await?;
        let joined = members.iter().filter(|m| m.membership == "join").count();
        let invited = members.iter().filter(|m| m.membership == "invite").count();
        let mut heroes: Vec<&str> = members
            .iter()
            .filter(|m| matches!(m.membership.as_str(), "join" | "invite"))
            .map(|m| m.user_id.as_str())
            .filter(|u| *u != self.user.as_str())
            .collect();
        heroes.sort_unstable();
        heroes.truncate(MAX_HEROES);
        Ok(json!({
            "m.heroes": heroes,
            "m.joined_member_count": joined,
            "m.invited_member_count": invited,
        }))
    }

    /// The stripped state of an invite or knock, with the membership event itself.
    async fn stripped(&self, membership: &MembershipRecord) -> Result<Vec<Value>> {
        let mut events: Vec<Value> = membership
            .stripped_state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if let Some(event) = self.tenant.store().event(&membership.event_id).await? {
            let pdu: Value = serde_json::from_str(&event.pdu).unwrap_or_else(|_| json!({}));
            events.push(json!({
                "type": event.event_type,
                "state_key": event.state_key,
                "sender": event.sender,
                "content": pdu.get("content").cloned().unwrap_or_else(|| json!({})),
            }));
        }
        Ok(events)
    }

    /// A room the user left: its timeline up to the leave.
    async fn left_room(&self, membership: &MembershipRecord) -> Result<Value> {
        let limit = self.filter.room.timeline.limit_or(DEFAULT_TIMELINE_LIMIT);
        let range = StreamRange {
            after: self.range().after,
            up_to: membership.stream,
        };
        let store = self.tenant.store();
        let mut events = store
            .room_events(&membership.room_id, range, Direction::Backward, limit + 1)
            .await?;
        let limited = events.len() > limit as usize;
        events.truncate(limit as usize);
        events.reverse();
        let mut timeline = Vec::new();
        for event in &events {
            timeline.push(self.sync_event(event).await);
        }
        let prev_batch = events.first().map_or(membership.stream, |e| e.stream - 1);
        Ok(json!({
            "timeline": { "events": timeline, "limited": limited, "prev_batch": token(prev_batch) },
            "state": { "events": [] },
            "account_data": { "events": [] },
        }))
    }

    /// Presence of the user and of everyone sharing a room with them, changed in range.
    async fn presence(&self, joined: &[String]) -> Result<Vec<Value>> {
        let joined: HashSet<&str> = joined.iter().map(String::as_str).collect();
        let mut events = Vec::new();
        for (user, event) in self.tenant.presence_since(self.since) {
            let shares_room = user == self.user.as_str()
                || self
                    .tenant
                    .store()
                    .memberships_of_user(&user)
                    .await?
                    .iter()
                    .any(|m| m.membership == "join" && joined.contains(m.room_id.as_str()));
            if shares_room && self.filter.presence.accepts_type("m.presence") {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn global_account_data(&self) -> Result<Vec<Value>> {
        let records = self
            .tenant
            .store()
            .account_data_in(self.user.localpart(), self.range())
            .await?;
        let has_push_rules = records
            .iter()
            .any(|r| r.room_id.is_none() && r.data_type == PUSH_RULES_TYPE);
        let mut events: Vec<Value> = records
            .into_iter()
            .filter(|r| r.room_id.is_none() && self.filter.account_data.accepts_type(&r.data_type))
            .map(|r| account_data_event(&r.data_type, &r.content))
            .collect();
        // Clients read their push rules from account data: an initial sync always carries them,
        // the server defaults until the user changes one.
        if self.since.is_none()
            && !has_push_rules
            && self.filter.account_data.accepts_type(PUSH_RULES_TYPE)
        {
            let content = crate::push::account_data_content(self.tenant, self.user).await?;
            events.push(json!({ "type": PUSH_RULES_TYPE, "content": content }));
        }
        Ok(events)
    }
    async fn room_account_data(&self) -> Result<BTreeMap<String, Vec<Value>>> {
        let records = self
            .tenant
            .store()
            .account_data_in(self.user.localpart(), self.range())
            .await?;
        let mut by_room: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for record in records {
            if let Some(room) = record.room_id {
                by_room
                    .entry(room)
                    .or_default()
                    .push(account_data_event(&record.data_type, &record.content));
            }
        }
        Ok(by_room)
    }
}

fn account_data_event(data_type: &str, content: &str) -> Value {
    let content: Value = serde_json::from_str(content).unwrap_or_else(|_| json!({}));
    json!({ "type": data_type, "content": content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(parse_token(&token(42)).expect("valid"), 42);
        assert!(parse_token("42").is_err());
        assert!(parse_token("s-1").is_err());
        assert!(parse_token("sx").is_err());
    }
}
