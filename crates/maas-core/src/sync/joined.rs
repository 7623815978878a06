//! The joined rooms of a sync response, built for all of them at once: one read for the
//! timelines, one for the state groups not cached and one for the state events, one for
//! everything the events bundle, one each for unread counts and summaries. Then each room is
//! put together from what was read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ruma::events::StateEventType;
use serde_json::{Map, Value, json};

use super::{Builder, token};
use crate::filter::DEFAULT_TIMELINE_LIMIT;
use crate::rooms::client_format::{Bundles, format_event};
use crate::rooms::state::RoomState;
use crate::store::{EventRecord, MemberSummary, ReceiptRecord, StreamRange, UnreadCounts};
use crate::{Error, Result};

const MAX_HEROES: u32 = 5;

/// A joined room to send.
pub(super) struct RoomPlan<'a> {
    pub room_id: &'a str,
    /// Sent whole (an initial sync, or joined within the range) rather than what changed.
    pub fresh: bool,
}

/// The newest events of a room in range, oldest first, before the timeline filter.
#[derive(Default)]
struct Timeline {
    events: Vec<EventRecord>,
    /// Older events in range were left out.
    limited: bool,
}

/// The state groups a room's state is computed from.
struct StateSource<'a> {
    room_id: &'a str,
    /// State at the start of the timeline.
    start: i64,
    /// State the client already has (the end of the previous sync), for a gap.
    previous: Option<i64>,
    /// Only member events of the timeline's senders are wanted.
    only_senders: bool,
}

/// What is read for all rooms before any is put together.
struct Loaded {
    timelines: HashMap<String, Timeline>,
    states: HashMap<String, Vec<EventRecord>>,
    bundles: Bundles,
    unread: HashMap<String, UnreadCounts>,
    summaries: HashMap<String, MemberSummary>,
}

impl Builder<'_> {
    /// `rooms.join` of the response for `plans`.
    pub(super) async fn joined_rooms(
        &self,
        plans: &[RoomPlan<'_>],
        account_data: &BTreeMap<String, Vec<Value>>,
        receipts: &HashMap<String, Vec<ReceiptRecord>>,
    ) -> Result<Map<String, Value>> {
        let mut join = Map::new();
        if plans.is_empty() {
            return Ok(join);
        }
        let loaded = self.load(plans).await?;
        for plan in plans {
            let room = self.joined_room(plan, &loaded, account_data, receipts);
            join.insert(plan.room_id.to_owned(), room);
        }
        Ok(join)
    }

    /// Reads what the rooms need. Unread counts depend on nothing else, and summaries only on
    /// the timelines, so each goes alongside the chain of reads that does not need it.
    async fn load(&self, plans: &[RoomPlan<'_>]) -> Result<Loaded> {
        let (timelines, unread) = tokio::try_join!(self.timelines(plans), self.unread(plans))?;
        let ((states, bundles), summaries) = tokio::try_join!(
            self.states_and_bundles(plans, &timelines),
            self.summaries(plans, &timelines),
        )?;
        Ok(Loaded {
            timelines,
            states,
            bundles,
            unread,
            summaries,
        })
    }

    /// The state to send with each room, and the aggregations bundled with it and with the
    /// timelines.
    async fn states_and_bundles(
        &self,
        plans: &[RoomPlan<'_>],
        timelines: &HashMap<String, Timeline>,
    ) -> Result<(HashMap<String, Vec<EventRecord>>, Bundles)> {
        let states = self.states(plans, timelines).await?;
        let timeline_filter = &self.filter.room.timeline;
        let to_send: Vec<&EventRecord> = timelines
            .values()
            .flat_map(|t| &t.events)
            .filter(|e| timeline_filter.accepts(&e.event_type, &e.sender))
            .chain(states.values().flatten())
            .collect();
        let bundles = Bundles::load(self.tenant, &to_send).await?;
        Ok((states, bundles))
    }

    /// Unread counts of the rooms that have some.
    async fn unread(&self, plans: &[RoomPlan<'_>]) -> Result<HashMap<String, UnreadCounts>> {
        let room_ids: Vec<String> = plans.iter().map(|p| p.room_id.to_owned()).collect();
        Ok(self
            .tenant
            .store()
            .unread_counts_in(&room_ids, self.user.as_str())
            .await?
            .into_iter()
            .map(|c| (c.room_id.clone(), c))
            .collect())
    }

    /// Summaries of the rooms sent whole or whose membership changed in their timeline.
    async fn summaries(
        &self,
        plans: &[RoomPlan<'_>],
        timelines: &HashMap<String, Timeline>,
    ) -> Result<HashMap<String, MemberSummary>> {
        let summary_rooms: Vec<String> = plans
            .iter()
            .filter(|p| {
                p.fresh
                    || timelines
                        .get(p.room_id)
                        .is_some_and(|t| t.events.iter().any(|e| e.event_type == "m.room.member"))
            })
            .map(|p| p.room_id.to_owned())
            .collect();
        if summary_rooms.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .tenant
            .store()
            .member_summaries(&summary_rooms, self.user.as_str(), MAX_HEROES)
            .await?
            .into_iter()
            .map(|s| (s.room_id.clone(), s))
            .collect())
    }

    /// One joined room: timeline, state, ephemeral events, account data, summary.
    fn joined_room(
        &self,
        plan: &RoomPlan<'_>,
        loaded: &Loaded,
        account_data: &BTreeMap<String, Vec<Value>>,
        receipts: &HashMap<String, Vec<ReceiptRecord>>,
    ) -> Value {
        let id = plan.room_id;
        let empty = Timeline::default();
        let timeline = loaded.timelines.get(id).unwrap_or(&empty);
        let timeline_filter = &self.filter.room.timeline;
        let timeline_json: Vec<Value> = timeline
            .events
            .iter()
            .filter(|e| timeline_filter.accepts(&e.event_type, &e.sender))
            .map(|e| self.sync_event(&loaded.bundles, e))
            .collect();
        let state_json: Vec<Value> = loaded
            .states
            .get(id)
            .into_iter()
            .flatten()
            .map(|e| self.sync_event(&loaded.bundles, e))
            .collect();
        let (notifications, highlights) = loaded
            .unread
            .get(id)
            .map_or((0, 0), |c| (c.notifications, c.highlights));
        let receipts = receipts.get(id).map_or(&[][..], Vec::as_slice);
        let prev_batch = timeline
            .events
            .first()
            .map_or(self.up_to, |first| first.stream - 1);
        let mut room = json!({
            "unread_notifications": {
                "notification_count": notifications,
                "highlight_count": highlights,
            },
            "timeline": {
                "events": timeline_json,
                "limited": timeline.limited,
                "prev_batch": token(prev_batch),
            },
            "state": { "events": state_json },
            "ephemeral": { "events": self.ephemeral(id, receipts) },
            "account_data": { "events": account_data.get(id).cloned().unwrap_or_default() },
        });
        if let Some(summary) = loaded.summaries.get(id) {
            room["summary"] = json!({
                "m.heroes": summary.heroes,
                "m.joined_member_count": summary.joined,
                "m.invited_member_count": summary.invited,
            });
        }
        room
    }

    /// An event of a room's section: the client format without the room id.
    fn sync_event(&self, bundles: &Bundles, event: &EventRecord) -> Value {
        let mut value = format_event(bundles, event, Some(self.viewer), 0);
        if let Some(object) = value.as_object_mut() {
            object.remove("room_id");
        }
        value
    }

    /// The newest events of each room: from the start for rooms sent whole, from the previous
    /// sync for the others. One read each.
    async fn timelines(&self, plans: &[RoomPlan<'_>]) -> Result<HashMap<String, Timeline>> {
        let limit = self.filter.room.timeline.limit_or(DEFAULT_TIMELINE_LIMIT);
        let (fresh, caught_up): (Vec<&RoomPlan>, Vec<&RoomPlan>) =
            plans.iter().partition(|p| p.fresh);
        let mut by_room: HashMap<String, Vec<EventRecord>> = HashMap::new();
        for (rooms, after) in [(fresh, 0), (caught_up, self.range().after)] {
            if rooms.is_empty() {
                continue;
            }
            let ids: Vec<String> = rooms.iter().map(|p| p.room_id.to_owned()).collect();
            let range = StreamRange {
                after,
                up_to: self.up_to,
            };
            // One more than the limit tells whether older events were left out.
            let events = self
                .tenant
                .store()
                .latest_room_events(&ids, range, limit.saturating_add(1))
                .await?;
            for event in events {
                by_room
                    .entry(event.room_id.clone())
                    .or_default()
                    .push(event);
            }
        }
        let limit = limit as usize;
        Ok(by_room
            .into_iter()
            .map(|(room, mut events)| {
                let limited = events.len() > limit;
                if limited {
                    events.drain(..events.len() - limit);
                }
                (room, Timeline { events, limited })
            })
            .collect())
    }

    /// The state to send with each room's timeline, in stream order: all of it (or the members
    /// the timeline needs, with lazy loading) for a room sent whole, the changes hidden by a
    /// gap for a limited one.
    async fn states(
        &self,
        plans: &[RoomPlan<'_>],
        timelines: &HashMap<String, Timeline>,
    ) -> Result<HashMap<String, Vec<EventRecord>>> {
        let empty = Timeline::default();
        let mut sources = Vec::new();
        for plan in plans {
            let timeline = timelines.get(plan.room_id).unwrap_or(&empty);
            if let Some(source) = self.state_source(plan, timeline).await? {
                sources.push(source);
            }
        }
        let group_ids: Vec<i64> = sources
            .iter()
            .flat_map(|s| std::iter::once(s.start).chain(s.previous))
            .collect();
        let store = self.tenant.store();
        let groups = self.tenant.state_cache().groups(store, &group_ids).await?;
        let group = |id: i64| {
            groups
                .get(&id)
                .ok_or_else(|| Error::Internal(format!("state group {id} was not read")))
        };

        let mut wanted: Vec<(&str, Vec<String>)> = Vec::with_capacity(sources.len());
        for source in &sources {
            let timeline = timelines.get(source.room_id).unwrap_or(&empty);
            let previous = source.previous.map(group).transpose()?;
            let ids = self.state_ids(source, group(source.start)?, previous, timeline);
            wanted.push((source.room_id, ids));
        }
        let all_ids: Vec<String> = wanted.iter().flat_map(|(_, ids)| ids.clone()).collect();
        // An event belongs to one room, so each is handed to the one room that asked for it.
        let mut events: HashMap<String, EventRecord> = if all_ids.is_empty() {
            HashMap::new()
        } else {
            store
                .events(&all_ids)
                .await?
                .into_iter()
                .map(|e| (e.event_id.clone(), e))
                .collect()
        };
        let state_filter = &self.filter.room.state;
        let mut states = HashMap::with_capacity(wanted.len());
        for (room_id, ids) in wanted {
            let mut state: Vec<EventRecord> = ids
                .iter()
                .filter_map(|id| events.remove(id))
                .filter(|e| state_filter.accepts(&e.event_type, &e.sender))
                .collect();
            state.sort_by_key(|e| e.stream);
            states.insert(room_id.to_owned(), state);
        }
        Ok(states)
    }

    /// Which state groups a room's state comes from; `None` when it sends no state.
    async fn state_source<'p>(
        &self,
        plan: &RoomPlan<'p>,
        timeline: &Timeline,
    ) -> Result<Option<StateSource<'p>>> {
        let lazy = self.filter.room.state.lazy_load_members;
        // A gapless incremental timeline carries its own state changes; with lazy loading the
        // client still needs the member events of whoever speaks in it.
        let only_senders = !plan.fresh && !timeline.limited;
        if only_senders && (!lazy || timeline.events.is_empty()) {
            return Ok(None);
        }
        let store = self.tenant.store();
        let start = match timeline.events.first() {
            Some(first) => first.state_before,
            None => match store.last_event_at(plan.room_id, self.up_to).await? {
                Some(event) => event.state_after,
                None => return Ok(None),
            },
        };
        let previous = if plan.fresh || only_senders {
            None
        } else {
            store
                .last_event_at(plan.room_id, self.range().after)
                .await?
                .map(|event| event.state_after)
        };
        Ok(Some(StateSource {
            room_id: plan.room_id,
            start,
            previous,
            only_senders,
        }))
    }

    /// The ids of the state events to send for one room.
    fn state_ids(
        &self,
        source: &StateSource<'_>,
        start: &Arc<RoomState>,
        previous: Option<&Arc<RoomState>>,
        timeline: &Timeline,
    ) -> Vec<String> {
        let lazy = self.filter.room.state.lazy_load_members;
        let only_senders = source.only_senders;
        let senders: HashSet<&str> = timeline.events.iter().map(|e| e.sender.as_str()).collect();
        let in_timeline: HashSet<&str> = timeline
            .events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        start
            .iter()
            .filter(|(key, id)| previous.is_none_or(|p| p.get(*key) != Some(*id)))
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
            .collect()
    }
}
