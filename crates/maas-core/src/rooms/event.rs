//! A room event as core hands it to the API layers: a stored PDU, read-only, in the terms a
//! client reads it by. The stored record stays inside core.

use serde_json::Value;

use super::client_format::content_of;
use crate::store::EventRecord;

#[derive(Clone, Debug)]
pub struct Event(pub(crate) EventRecord);

impl Event {
    pub fn event_id(&self) -> &str {
        &self.0.event_id
    }

    pub fn room_id(&self) -> &str {
        &self.0.room_id
    }

    pub fn sender(&self) -> &str {
        &self.0.sender
    }

    /// The event's `type`.
    pub fn kind(&self) -> &str {
        &self.0.event_type
    }

    pub fn state_key(&self) -> Option<&str> {
        self.0.state_key.as_deref()
    }

    /// Milliseconds since the Unix epoch, as the sending server stamped it.
    pub fn origin_server_ts(&self) -> i64 {
        self.0.origin_server_ts
    }

    /// Position in the tenant's stream: the timeline order, and what tokens count in.
    pub fn stream(&self) -> i64 {
        self.0.stream
    }

    /// The event's `content`; an empty object when it has none (redacted down to none).
    pub fn content(&self) -> Value {
        content_of(&self.0.pdu)
    }
}

impl From<EventRecord> for Event {
    fn from(record: EventRecord) -> Self {
        Self(record)
    }
}

/// Stored records as events, in order.
pub(crate) fn events(records: Vec<EventRecord>) -> Vec<Event> {
    records.into_iter().map(Event).collect()
}
