//! The events around one event (spec: `GET /rooms/{roomId}/context/{eventId}`): a window of
//! the timeline on each side, filtered like `/messages`, and the room state at its end.

use std::collections::BTreeSet;

use ruma::{EventId, RoomId, UserId};

use super::event::{Event, events};
use super::read::{Reader, lazy_loaded};
use super::{Direction, Page, Rooms};
use crate::Result;
use crate::filter::RoomEventFilter;
use crate::store::EventRecord;

/// The events around one event, each side oldest or newest first as the spec orders them.
#[derive(Debug)]
pub struct Context {
    pub event: Event,
    pub before: Vec<Event>,
    pub after: Vec<Event>,
    pub start: i64,
    pub end: i64,
    /// The state at the end of `after`: with `lazy_load_members`, only the member events of
    /// the senders shown.
    pub state: Vec<Event>,
}

impl Rooms<'_> {
    /// `GET /rooms/{roomId}/context/{eventId}`: up to `limit` events around it, half before.
    pub async fn context(
        &self,
        user: &UserId,
        room_id: &RoomId,
        event_id: &EventId,
        limit: u32,
        filter: &RoomEventFilter,
    ) -> Result<Context> {
        let event = self.visible_event(user, room_id, event_id).await?;
        self.context_around(Reader::User(user), room_id, event, limit, filter)
            .await
    }

    /// The events around `event` as `reader` may see them, up to `limit`, half before.
    pub(crate) async fn context_around(
        &self,
        reader: Reader<'_>,
        room_id: &RoomId,
        event: EventRecord,
        limit: u32,
        filter: &RoomEventFilter,
    ) -> Result<Context> {
        let before_limit = limit / 2;
        let after_limit = limit - before_limit;
        let backward = page(event.stream - 1, Direction::Backward, before_limit);
        let mut before = self
            .timeline_as(reader, room_id, backward, |_| true)
            .await?
            .chunk;
        before.truncate(before_limit as usize);
        let forward = page(event.stream, Direction::Forward, after_limit);
        let mut after = self
            .timeline_as(reader, room_id, forward, |_| true)
            .await?
            .chunk;
        after.truncate(after_limit as usize);
        // Tokens and state span the whole window; the filter only narrows what is shown.
        let start = before.last().map_or(event.stream - 1, |e| e.stream - 1);
        let end = after.last().map_or(event.stream, |e| e.stream);
        let state_group = after.last().map_or(event.state_after, |e| e.state_after);
        let accepted = |events: Vec<EventRecord>| -> Vec<EventRecord> {
            events
                .into_iter()
                .filter(|e| filter.accepts(&e.event_type, &e.sender))
                .collect()
        };
        let before = accepted(before);
        let after = accepted(after);
        let store = self.tenant.store();
        let state = self.tenant.state_cache().group(store, state_group).await?;
        let senders: BTreeSet<&str> = before
            .iter()
            .chain(&after)
            .chain(std::iter::once(&event))
            .map(|e| e.sender.as_str())
            .collect();
        let lazy = filter.lazy_load_members.then_some(&senders);
        let state = store.events(&lazy_loaded(&state, lazy)).await?;
        Ok(Context {
            event: Event(event),
            before: events(before),
            after: events(after),
            start,
            end,
            state: events(state),
        })
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
