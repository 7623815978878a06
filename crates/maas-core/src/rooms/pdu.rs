//! PDUs (spec: Server-Server API, "PDUs"; room versions 1–12): the full, signed form of every
//! room event. Built here for local events — content hash, ed25519 signature, event id by the
//! room version's format — and parsed back from storage for the auth rules.

use std::sync::Arc;

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::events::TimelineEventType;
use ruma::room_version_rules::{
    EventIdFormatVersion, EventsReferenceFormatVersion, RoomVersionRules,
};
use ruma::serde::Raw;
use ruma::signatures::Ed25519KeyPair;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId,
    ServerName, UInt, UserId,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::{Error, Result, secrets};

/// The spec's limit on a PDU, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// A parsed PDU, with the JSON it came from.
#[derive(Clone, Debug)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawJsonValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    /// The PDU as signed (for v3+ rooms without `event_id`).
    pub json: CanonicalJsonObject,
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored PDU is malformed: {what}"))
}

fn string_field<'a>(json: &'a CanonicalJsonObject, key: &str) -> Option<&'a str> {
    match json.get(key) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

/// Event ids of `prev_events`/`auth_events`, in either reference format.
fn event_refs(json: &CanonicalJsonObject, key: &str) -> Result<Vec<OwnedEventId>> {
    let Some(CanonicalJsonValue::Array(items)) = json.get(key) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let id = match item {
                CanonicalJsonValue::String(id) => Some(id.as_str()),
                // Room versions 1 and 2: `[event_id, {"sha256": …}]`.
                CanonicalJsonValue::Array(pair) => match pair.first() {
                    Some(CanonicalJsonValue::String(id)) => Some(id.as_str()),
                    _ => None,
                },
                _ => None,
            };
            id.and_then(|id| EventId::parse(id).ok())
                .ok_or_else(|| corrupt(key))
        })
        .collect()
}

impl Pdu {
    /// Parses a PDU; `room_id` is needed for version 12 create events, which carry none.
    pub fn from_json(
        event_id: OwnedEventId,
        room_id: &RoomId,
        json: CanonicalJsonObject,
    ) -> Result<Self> {
        let sender = string_field(&json, "sender")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| corrupt("sender"))?;
        let kind = string_field(&json, "type")
            .ok_or_else(|| corrupt("type"))?
            .into();
        let empty = CanonicalJsonValue::Object(CanonicalJsonObject::new());
        let content_value = json.get("content").unwrap_or(&empty);
        let content =
            serde_json::value::to_raw_value(content_value).map_err(|_| corrupt("content"))?;
        let origin_server_ts = match json.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(ts)) => UInt::try_from(i64::from(*ts))
                .map(MilliSecondsSinceUnixEpoch)
                .ok(),
            _ => None,
        }
        .ok_or_else(|| corrupt("origin_server_ts"))?;
        let depth = match json.get("depth") {
            Some(CanonicalJsonValue::Integer(d)) => u64::try_from(i64::from(*d)).ok(),
            _ => None,
        }
        .ok_or_else(|| corrupt("depth"))?;
        let redacts = match content_value {
            CanonicalJsonValue::Object(c) => string_field(c, "redacts"),
            _ => None,
        }
        .or_else(|| string_field(&json, "redacts"))
        .and_then(|r| EventId::parse(r).ok());
        Ok(Self {
            event_id,
            room_id: room_id.to_owned(),
            sender,
            origin_server_ts,
            kind,
            content,
            state_key: string_field(&json, "state_key").map(str::to_owned),
            prev_events: event_refs(&json, "prev_events")?,
            auth_events: event_refs(&json, "auth_events")?,
            redacts,
            depth,
            json,
        })
    }

    /// Parses a stored PDU string.
    pub fn from_stored(event_id: &str, room_id: &str, pdu: &str) -> Result<Self> {
        let json: CanonicalJsonObject =
            serde_json::from_str(pdu).map_err(|e| corrupt(&e.to_string()))?;
        let event_id = EventId::parse(event_id).map_err(|_| corrupt("event id"))?;
        let room_id = RoomId::parse(room_id).map_err(|_| corrupt("room id"))?;
        Self::from_json(event_id, &room_id, json)
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> serde_json::Value {
        serde_json::from_str(self.content.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The content deserialised as `T`.
    pub fn content_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        Raw::<T>::from_json(self.content.clone()).deserialize().ok()
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    /// As the PDU carries it: version 12 create events have none (their hash is the id).
    fn room_id(&self) -> Option<&RoomId> {
        self.json.contains_key("room_id").then_some(&*self.room_id)
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawJsonValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}

/// What a local user wants to send, before it becomes a PDU.
#[derive(Clone, Debug)]
pub struct EventDraft {
    pub kind: TimelineEventType,
    pub content: serde_json::Value,
    pub state_key: Option<String>,
    pub redacts: Option<OwnedEventId>,
}

impl EventDraft {
    pub fn message(kind: &str, content: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            content,
            state_key: None,
            redacts: None,
        }
    }

    pub fn state(kind: &str, state_key: &str, content: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            content,
            state_key: Some(state_key.to_owned()),
            redacts: None,
        }
    }
}

/// Everything needed to turn a draft into a signed PDU.
pub struct PduContext<'a> {
    pub rules: &'a RoomVersionRules,
    pub server_name: &'a ServerName,
    pub key: &'a Ed25519KeyPair,
    /// `None` only for the create event of a version 12 room, whose id derives from it.
    pub room_id: Option<&'a RoomId>,
    pub sender: &'a UserId,
    pub prev_events: &'a [Arc<Pdu>],
    pub auth_events: &'a [Arc<Pdu>],
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
}

fn reference(ctx: &PduContext<'_>, pdu: &Pdu) -> Result<CanonicalJsonValue> {
    match ctx.rules.events_reference_format {
        EventsReferenceFormatVersion::V1 => {
            let hash = ruma::signatures::reference_hash(&pdu.json, ctx.rules)
                .map_err(|e| Error::Internal(format!("reference hash: {e}")))?;
            let hashes = CanonicalJsonObject::from_iter([(
                "sha256".to_owned(),
                CanonicalJsonValue::String(hash),
            )]);
            Ok(CanonicalJsonValue::Array(vec![
                CanonicalJsonValue::String(pdu.event_id.to_string()),
                CanonicalJsonValue::Object(hashes),
            ]))
        }
        _ => Ok(CanonicalJsonValue::String(pdu.event_id.to_string())),
    }
}

fn to_canonical(value: serde_json::Value) -> Result<CanonicalJsonValue> {
    CanonicalJsonValue::try_from(value)
        .map_err(|e| Error::BadJson(format!("Content is not canonical JSON: {e}")))
}

/// Builds, hashes and signs a PDU; its event id follows the room version. Returns it with its
/// canonical JSON (the stored form), serialised once for the size check and the store.
pub fn build(ctx: &PduContext<'_>, draft: EventDraft) -> Result<(Pdu, String)> {
    let mut json = CanonicalJsonObject::new();
    let refs = |events: &[Arc<Pdu>]| -> Result<CanonicalJsonValue> {
        events
            .iter()
            .map(|e| reference(ctx, e))
            .collect::<Result<Vec<_>>>()
            .map(CanonicalJsonValue::Array)
    };
    json.insert("auth_events".into(), refs(ctx.auth_events)?);
    json.insert("prev_events".into(), refs(ctx.prev_events)?);
    let depth = ctx
        .prev_events
        .iter()
        .map(|p| p.depth)
        .max()
        .map_or(1, |d| d.saturating_add(1));
    json.insert("depth".into(), CanonicalJsonValue::Integer(int(depth)?));
    json.insert("content".into(), to_canonical(draft.content)?);
    json.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(int(ctx.origin_server_ts.get().into())?),
    );
    if let Some(room_id) = ctx.room_id {
        json.insert(
            "room_id".into(),
            CanonicalJsonValue::String(room_id.to_string()),
        );
    }
    json.insert(
        "sender".into(),
        CanonicalJsonValue::String(ctx.sender.to_string()),
    );
    json.insert(
        "type".into(),
        CanonicalJsonValue::String(draft.kind.to_string()),
    );
    if let Some(state_key) = &draft.state_key {
        json.insert(
            "state_key".into(),
            CanonicalJsonValue::String(state_key.clone()),
        );
    }
    if let Some(redacts) = &draft.redacts
        && !ctx.rules.redaction.content_field_redacts
    {
        json.insert(
            "redacts".into(),
            CanonicalJsonValue::String(redacts.to_string()),
        );
    }
    if ctx.rules.event_id_format == EventIdFormatVersion::V1 {
        // Versions 1 and 2 carry a server-chosen id in the PDU itself.
        let id = format!("${}:{}", secrets::random_alphanumeric(18), ctx.server_name);
        json.insert("event_id".into(), CanonicalJsonValue::String(id));
    }
    ruma::signatures::hash_and_sign_event(
        ctx.server_name.as_str(),
        ctx.key,
        &mut json,
        &ctx.rules.redaction,
    )
    .map_err(|e| match e {
        ruma::signatures::JsonError::PduTooLarge => too_large(),
        other => Error::Internal(format!("signing failed: {other}")),
    })?;
    let canonical = canonical_json(&json);
    if canonical.len() > MAX_PDU_BYTES {
        return Err(too_large());
    }
    let event_id = event_id_of(&json, ctx.rules)?;
    let room_id = match ctx.room_id {
        Some(room_id) => room_id.to_owned(),
        None => room_id_from_create(&event_id)?,
    };
    Ok((Pdu::from_json(event_id, &room_id, json)?, canonical))
}

fn too_large() -> Error {
    Error::TooLarge(format!("Event is larger than {MAX_PDU_BYTES} bytes"))
}

fn int(value: u64) -> Result<ruma::Int> {
    ruma::Int::try_from(value).map_err(|_| Error::InvalidParam("integer out of range".into()))
}

/// The canonical JSON of an object: the bytes `CanonicalJsonValue`'s `Display` gives, without
/// first copying the whole tree into a value. A map of canonical values (string keys, integers,
/// no floats) always serialises.
pub fn canonical_json(json: &CanonicalJsonObject) -> String {
    serde_json::to_string(json).unwrap_or_default()
}

/// The event id of a PDU: carried inside for v1/v2, the reference hash otherwise.
pub fn event_id_of(json: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId> {
    let id = match rules.event_id_format {
        EventIdFormatVersion::V1 => string_field(json, "event_id").map(str::to_owned),
        _ => ruma::signatures::reference_hash(json, rules)
            .ok()
            .map(|h| format!("${h}")),
    };
    id.and_then(|id| EventId::parse(id).ok())
        .ok_or_else(|| Error::Internal("could not compute the event id".into()))
}

/// Version 12 room ids are the create event's reference hash with a `!` sigil.
pub fn room_id_from_create(create_event_id: &EventId) -> Result<OwnedRoomId> {
    let hash = create_event_id.as_str().trim_start_matches('$');
    RoomId::parse(format!("!{hash}"))
        .map_err(|e| Error::Internal(format!("room id from create event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_is_the_canonical_form() {
        let value = serde_json::json!({
            "b": [1, -2, {"z": null, "a": true}],
            "a": "quote \" backslash \\ control \u{1} unicode é 😀",
            "content": {"body": "hi", "m.mentions": {}},
        });
        let Ok(CanonicalJsonValue::Object(object)) = CanonicalJsonValue::try_from(value) else {
            panic!("not a canonical object");
        };
        let expected = CanonicalJsonValue::Object(object.clone()).to_string();
        assert_eq!(canonical_json(&object), expected);
        assert!(expected.starts_with(r#"{"a":"quote \" backslash \\ control \u0001"#));
    }
}
