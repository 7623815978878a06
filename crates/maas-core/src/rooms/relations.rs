//! Relations (spec: Client-Server API, "Relationships", "Threading", "Event replacements"):
//! children of an event by relation, thread roots, the bundled aggregations served in
//! `unsigned.m.relations`, and looking events up by context or timestamp.

use ruma::{EventId, RoomId, UserId};

use super::event::{Event, events};
use super::{Direction, Rooms};
use crate::store::EventRecord;
use crate::{Error, Result};

/// A page of related events.
#[derive(Debug)]
pub struct RelationsPage {
    pub chunk: Vec<Event>,
    /// Stream position to continue from.
    pub next_batch: Option<i64>,
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
        let parent = self.visible_event(user, room_id, parent).await?;
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
        Ok(RelationsPage {
            chunk: events(chunk),
            next_batch,
        })
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
        Ok(RelationsPage {
            chunk: events(chunk),
            next_batch,
        })
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

    /// `GET /rooms/{roomId}/timestamp_to_event`.
    pub async fn timestamp_to_event(
        &self,
        user: &UserId,
        room_id: &RoomId,
        ts: i64,
        direction: Direction,
    ) -> Result<Event> {
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
        Ok(Event(event))
    }
}
