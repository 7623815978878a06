//! Relations (spec: Client-Server API, "Relationships", "Threading", "Event replacements"):
//! children of an event by relation, thread roots, the bundled aggregations served in
//! `unsigned.m.relations`, and looking events up by context or timestamp.

use maas_store::{Direction, EventRecord};
use ruma::{EventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::read::client_event;
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

/// The bundled aggregations of an event (spec: "Aggregations of child events"): the newest
/// edit by the original sender, the thread summary, and references.
pub async fn bundled_aggregations(
    tenant: &Tenant,
    event: &EventRecord,
    viewer: Option<&AuthedUser>,
) -> Result<Option<Value>> {
    if event.redacted_by.is_some() {
        return Ok(None);
    }
    let store = tenant.store();
    let children = store
        .relations(&event.event_id, None, None, Direction::Forward, None, 1000)
        .await?;
    if children.is_empty() {
        return Ok(None);
    }
    let mut relations = Map::new();
    let edit = children
        .iter()
        .filter(|c| c.redacted_by.is_none())
        .filter(|c| {
            c.relation
                .as_ref()
                .is_some_and(|r| r.rel_type == "m.replace")
                && c.sender == event.sender
        })
        .max_by_key(|c| (c.origin_server_ts, c.stream));
    if let Some(edit) = edit {
        relations.insert(
            "m.replace".into(),
            Box::pin(client_event(tenant, edit, viewer)).await,
        );
    }
    let thread: Vec<&EventRecord> = children
        .iter()
        .filter(|c| {
            c.relation
                .as_ref()
                .is_some_and(|r| r.rel_type == "m.thread")
        })
        .collect();
    if let Some(latest) = thread.last() {
        let participated = viewer.is_some_and(|v| {
            event.sender == v.user_id.as_str()
                || thread.iter().any(|c| c.sender == v.user_id.as_str())
        });
        relations.insert(
            "m.thread".into(),
            json!({
                "latest_event": Box::pin(client_event(tenant, latest, viewer)).await,
                "count": thread.len(),
                "current_user_participated": participated,
            }),
        );
    }
    let references: Vec<Value> = children
        .iter()
        .filter(|c| {
            c.relation
                .as_ref()
                .is_some_and(|r| r.rel_type == "m.reference")
        })
        .map(|c| json!({ "event_id": c.event_id }))
        .collect();
    if !references.is_empty() {
        relations.insert("m.reference".into(), json!({ "chunk": references }));
    }
    Ok((!relations.is_empty()).then_some(Value::Object(relations)))
}
