//! A room event as core hands it to the API layers: a stored PDU, read-only, in the terms a
//! client reads it by. The stored record stays inside core.

use serde::Deserialize;
use serde_json::Value;

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

/// The parts of a stored PDU that the client format copies. Deserialising only these skips
/// the rest (hashes, signatures, DAG fields) without building it, which is most of a PDU.
#[derive(Deserialize)]
pub(crate) struct ClientFields {
    #[serde(default = "empty_object")]
    pub(crate) content: Value,
    /// Top-level `redacts` (room versions before 11), `null` included when present.
    #[serde(default, deserialize_with = "present")]
    pub(crate) redacts: Option<Value>,
}

impl ClientFields {
    /// The fields of a PDU; a PDU that is not a JSON object has none.
    pub(crate) fn of(pdu: &str) -> Self {
        let parsed = pdu
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str(pdu).ok())
            .flatten();
        parsed.unwrap_or_else(|| Self {
            content: empty_object(),
            redacts: None,
        })
    }
}

/// The `content` of a stored PDU.
pub(crate) fn content_of(pdu: &str) -> Value {
    ClientFields::of(pdu).content
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A field that is present, whatever its value (`null` too).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}
