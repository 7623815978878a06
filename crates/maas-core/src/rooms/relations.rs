//! Relations (spec: Client-Server API, "Relationships", "Threading", "Event replacements"):
//! children of an event by relation, thread roots, the bundled aggregations served in
//! `unsigned.m.relations`, and looking events up by context or timestamp.

use std::collections::{HashMap, HashSet};

use crate::store::{Direction, EventRecord};
use ruma::{EventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::read::format_event;
use super::{Page, Rooms};
use crate::accounts::AuthedUser;
use crate::{Error, Result, Tenant};

/// A page of related events.
#[derive(Debug)]
pub struct RelationsPage {
    pub chunk: Vec<EventRecord>,
    /// Stream position to continue from.
    pub next_batch: Option<i64>,
}

/// The events around one event (spec: `GET /rooms/{roomId}/context/{eventId}`).
#[derive(Debug)]
pub struct Context {
    pub event: EventRecord,
    pub before: Vec<EventRecord>,
    pub after: Vec<EventRecord>,
    pub start: i64,
    pub end: i64,
    pub state: Vec<EventRecord>,
}

impl Rooms<'_> {
    /// `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`.
    #[allow(clippy::too_many_arguments)]
    pub async fn relations(
        &self,
        user: &UserId,
        room_id: &RoomId,
        parent: &EventId,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        direction: Direction,
        from: Option<i64>,
        limit: u32,
    ) -> Result<RelationsPage> {
        let parent = self.event(user, room_id, parent).await?;
        let store = self.tenant.store();
        let batch = store
            .relations(
                &parent.event_id,
                rel_type,
                event_type,
                direction,
                from,
                limit + 1,
            )
            .await?;
        let more = batch.len() > limit as usize;
        let mut chunk = Vec::new();
        let current = self.tenant.stream().current();
        for event in batch.into_iter().take(limit as usize) {
            if event.room_id == room_id.as_str() && self.can_see(user, &event, current).await? {
                chunk.push(event);
            }
        }
        let next_batch = if more {
            chunk.last().map(|e| e.stream)
        } else {
            None
        };
        Ok(RelationsPage { chunk, next_batch })
    }

    /// `GET /rooms/{roomId}/threads`: thread roots, newest first.
    pub async fn threads(
        &self,
        user: &UserId,
        room_id: &RoomId,
        participated_only: bool,
        from: Option<i64>,
        limit: u32,
    ) -> Result<RelationsPage> {
        self.history_access(user, room_id).await?;
        let store = self.tenant.store();
        let roots = store
            .thread_roots(room_id.as_str(), from, limit + 1)
            .await?;
        let more = roots.len() > limit as usize;
        let current = self.tenant.stream().current();
        let mut chunk = Vec::new();
        for root in roots.into_iter().take(limit as usize) {
            if !self.can_see(user, &root, current).await? {
                continue;
            }
            if participated_only && !self.participated(user, &root).await? {
                continue;
            }
            chunk.push(root);
        }
        let next_batch = if more {
            chunk.last().map(|e| e.stream)
        } else {
            None
        };
        Ok(RelationsPage { chunk, next_batch })
    }

    async fn participated(&self, user: &UserId, root: &EventRecord) -> Result<bool> {
        if root.sender == user.as_str() {
            return Ok(true);
        }
        let replies = self
            .tenant
            .store()
            .relations(
                &root.event_id,
                Some("m.thread"),
                None,
                Direction::Forward,
                None,
                1000,
            )
            .await?;
        Ok(replies.iter().any(|r| r.sender == user.as_str()))
    }

    /// `GET /rooms/{roomId}/context/{eventId}`.
    pub async fn context(
        &self,
        user: &UserId,
        room_id: &RoomId,
        event_id: &EventId,
        limit: u32,
    ) -> Result<Context> {
        let event = self.event(user, room_id, event_id).await?;
        let before_limit = limit / 2;
        let after_limit = limit - before_limit;
        let backward = page(event.stream - 1, Direction::Backward, before_limit);
        let before = self.messages(user, room_id, backward, |_| true).await?;
        let forward = page(event.stream, Direction::Forward, after_limit);
        let after = self.messages(user, room_id, forward, |_| true).await?;
        let mut before_chunk = before.chunk;
        before_chunk.truncate(before_limit as usize);
        let mut after_chunk = after.chunk;
        after_chunk.truncate(after_limit as usize);
        let start = before_chunk
            .last()
            .map_or(event.stream - 1, |e| e.stream - 1);
        let end = after_chunk.last().map_or(event.stream, |e| e.stream);
        let state_group = after_chunk
            .last()
            .map_or(event.state_after, |e| e.state_after);
        let state = self
            .tenant
            .state_cache()
            .group(self.tenant.store(), state_group)
            .await?;
        let ids: Vec<String> = state.values().map(|id| id.to_string()).collect();
        let state = self.tenant.store().events(&ids).await?;
        Ok(Context {
            event,
            before: before_chunk,
            after: after_chunk,
            start,
            end,
            state,
        })
    }

    /// `GET /rooms/{roomId}/timestamp_to_event`.
    pub async fn timestamp_to_event(
        &self,
        user: &UserId,
        room_id: &RoomId,
        ts: i64,
        direction: Direction,
    ) -> Result<EventRecord> {
        self.history_access(user, room_id).await?;
        let not_found = || Error::NotFound("No event found at that time".into());
        let event = self
            .tenant
            .store()
            .event_by_timestamp(room_id.as_str(), ts, direction)
            .await?;
        let event = event.ok_or_else(not_found)?;
        let current = self.tenant.stream().current();
        if !self.can_see(user, &event, current).await? {
            return Err(not_found());
        }
        Ok(event)
    }
}

fn page(from: i64, direction: Direction, limit: u32) -> Page {
    Page {
        from: Some(from),
        to: None,
        direction,
        limit: limit.max(1),
    }
}

/// Relation types bundled into their parent (spec: "Aggregations of child events"). Others
/// (annotations above all, which can be thousands per event) are never read for it.
const BUNDLED_RELATIONS: [&str; 3] = ["m.replace", "m.thread", "m.reference"];
/// Children read per parent for its aggregations.
const MAX_BUNDLED_CHILDREN: u32 = 1000;
/// How deep bundles nest (an edit of a thread's latest event …). Only rooms whose event ids
/// are not hashes could relate events in a cycle; this bound ends it.
pub(crate) const MAX_BUNDLE_DEPTH: usize = 8;

/// What the client format of a set of events needs besides the events themselves, read for all
/// of them at once: the children bundled into each (`unsigned.m.relations`), and the redaction
/// of each redacted one (`unsigned.redacted_because`).
#[derive(Default)]
pub(crate) struct Bundles {
    /// Bundled children by parent, oldest first; parents read without children map to `[]`.
    children: HashMap<String, Vec<EventRecord>>,
    redactions: HashMap<String, EventRecord>,
}

impl Bundles {
    /// Reads what formatting `events` needs: a query for their children and one for their
    /// redactions, then the same for the events their bundles embed, level by level.
    pub(crate) async fn load(tenant: &Tenant, events: &[&EventRecord]) -> Result<Self> {
        let mut bundles = Self::default();
        let mut embedded = bundles.load_level(tenant, events).await?;
        for _ in 1..MAX_BUNDLE_DEPTH {
            if embedded.is_empty() {
                break;
            }
            let level: Vec<&EventRecord> = embedded.iter().collect();
            embedded = bundles.load_level(tenant, &level).await?;
        }
        Ok(bundles)
    }

    /// Reads the children and redactions of `events` not read yet; returns the events that
    /// their bundles embed (edits, latest thread events), whose own bundles are needed next.
    async fn load_level(
        &mut self,
        tenant: &Tenant,
        events: &[&EventRecord],
    ) -> Result<Vec<EventRecord>> {
        let store = tenant.store();
        // A redacted event has no bundle, only its redaction.
        let parents: Vec<String> = events
            .iter()
            .filter(|e| e.redacted_by.is_none() && !self.children.contains_key(&e.event_id))
            .map(|e| e.event_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let redactions: Vec<String> = events
            .iter()
            .filter_map(|e| e.redacted_by.clone())
            .filter(|id| !self.redactions.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !redactions.is_empty() {
            for redaction in store.events(&redactions).await? {
                self.redactions
                    .insert(redaction.event_id.clone(), redaction);
            }
        }
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        for parent in &parents {
            self.children.insert(parent.clone(), Vec::new());
        }
        let children = store
            .children_of(&parents, &BUNDLED_RELATIONS, MAX_BUNDLED_CHILDREN)
            .await?;
        for child in children {
            let parent = child.relation.as_ref().map(|r| r.parent_event_id.clone());
            if let Some(siblings) = parent.and_then(|p| self.children.get_mut(&p)) {
                siblings.push(child);
            }
        }
        // Only the events read just now: the others' embedded events were read before.
        let fresh: HashSet<&String> = parents.iter().collect();
        let mut embedded = Vec::new();
        for event in events.iter().filter(|e| fresh.contains(&e.event_id)) {
            let children = self.children_of(event);
            embedded.extend(edit_of(event, children).cloned());
            embedded.extend(thread_of(children).last().map(|e| (*e).clone()));
        }
        Ok(embedded)
    }

    fn children_of(&self, event: &EventRecord) -> &[EventRecord] {
        self.children
            .get(&event.event_id)
            .map_or(&[], Vec::as_slice)
    }

    /// The redaction of a redacted event, when it is stored.
    pub(crate) fn redaction_of(&self, event: &EventRecord) -> Option<&EventRecord> {
        event
            .redacted_by
            .as_ref()
            .and_then(|id| self.redactions.get(id))
    }

    /// The bundled aggregations of an event (spec: "Aggregations of child events"): the newest
    /// edit by the original sender, the thread summary, and references. `depth` counts the
    /// bundles this one is nested in.
    pub(crate) fn aggregations(
        &self,
        event: &EventRecord,
        viewer: Option<&AuthedUser>,
        depth: usize,
    ) -> Option<Value> {
        if event.redacted_by.is_some() || depth >= MAX_BUNDLE_DEPTH {
            return None;
        }
        let children = self.children_of(event);
        if children.is_empty() {
            return None;
        }
        let mut relations = Map::new();
        if let Some(edit) = edit_of(event, children) {
            relations.insert(
                "m.replace".into(),
                format_event(self, edit, viewer, depth + 1),
            );
        }
        let thread = thread_of(children);
        if let Some(latest) = thread.last() {
            let participated = viewer.is_some_and(|v| {
                event.sender == v.user_id.as_str()
                    || thread.iter().any(|c| c.sender == v.user_id.as_str())
            });
            relations.insert(
                "m.thread".into(),
                json!({
                    "latest_event": format_event(self, latest, viewer, depth + 1),
                    "count": thread.len(),
                    "current_user_participated": participated,
                }),
            );
        }
        let references: Vec<Value> = children
            .iter()
            .filter(|c| has_relation(c, "m.reference"))
            .map(|c| json!({ "event_id": c.event_id }))
            .collect();
        if !references.is_empty() {
            relations.insert("m.reference".into(), json!({ "chunk": references }));
        }
        (!relations.is_empty()).then_some(Value::Object(relations))
    }
}

fn has_relation(event: &EventRecord, rel_type: &str) -> bool {
    event
        .relation
        .as_ref()
        .is_some_and(|r| r.rel_type == rel_type)
}

/// The newest unredacted edit of `event` by its own sender.
fn edit_of<'a>(event: &EventRecord, children: &'a [EventRecord]) -> Option<&'a EventRecord> {
    if event.redacted_by.is_some() {
        return None;
    }
    children
        .iter()
        .filter(|c| c.redacted_by.is_none())
        .filter(|c| has_relation(c, "m.replace") && c.sender == event.sender)
        .max_by_key(|c| (c.origin_server_ts, c.stream))
}

/// The thread replies among `children`, oldest first.
fn thread_of(children: &[EventRecord]) -> Vec<&EventRecord> {
    children
        .iter()
        .filter(|c| has_relation(c, "m.thread"))
        .collect()
}
