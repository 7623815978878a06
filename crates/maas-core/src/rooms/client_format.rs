//! The client format of room events (spec: "Room event format", "Aggregations of child
//! events"): what a client receives for a stored PDU, with `unsigned` filled in — its age, the
//! sender's transaction id, the redaction that redacted it, and the bundled aggregations
//! (edits, thread summaries, references), read for a whole set of events at once.

use std::collections::{HashMap, HashSet};

use ruma::events::TimelineEventType;
use serde_json::{Map, Value, json};

use super::event::{ClientFields, Event};
use crate::accounts::AuthedUser;
use crate::store::EventRecord;
use crate::{Result, Tenant, now_ms};

/// The client format of an event (spec: "Room event format"), for `viewer` (whose own
/// transaction ids are echoed back).
pub async fn client_event(tenant: &Tenant, event: &Event, viewer: Option<&AuthedUser>) -> Value {
    let event = &event.0;
    // The event itself is worth sending without its bundles when they can't be read.
    let bundles = Bundles::load(tenant, &[event])
        .await
        .inspect_err(|e| tracing::warn!("bundled aggregations of {}: {e}", event.event_id))
        .unwrap_or_default();
    format_event(&bundles, event, viewer, 0)
}

/// The client format of several events, in order; what they bundle is read for all at once.
pub async fn client_events(
    tenant: &Tenant,
    events: &[Event],
    viewer: Option<&AuthedUser>,
) -> Result<Vec<Value>> {
    let records: Vec<&EventRecord> = events.iter().map(|e| &e.0).collect();
    client_events_of(tenant, &records, viewer).await
}

/// [`client_events`] of stored records.
pub(crate) async fn client_events_of(
    tenant: &Tenant,
    events: &[&EventRecord],
    viewer: Option<&AuthedUser>,
) -> Result<Vec<Value>> {
    let bundles = Bundles::load(tenant, events).await?;
    Ok(events
        .iter()
        .map(|event| format_event(&bundles, event, viewer, 0))
        .collect())
}

/// The client format of `event`, with what `bundles` holds for it; `depth` counts the bundles
/// it is nested in.
pub(crate) fn format_event(
    bundles: &Bundles,
    event: &EventRecord,
    viewer: Option<&AuthedUser>,
    depth: usize,
) -> Value {
    let pdu = ClientFields::of(&event.pdu);
    let mut out = json!({
        "type": event.event_type,
        "content": pdu.content,
        "event_id": event.event_id,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "room_id": event.room_id,
    });
    if let Some(state_key) = &event.state_key {
        out["state_key"] = json!(state_key);
    }
    if event.event_type == TimelineEventType::RoomRedaction.to_string() {
        let redacts = pdu
            .redacts
            .or_else(|| out["content"].get("redacts").cloned());
        if let Some(redacts) = redacts {
            out["redacts"] = redacts;
        }
    }
    let mut unsigned = json!({ "age": now_ms().saturating_sub(event.origin_server_ts) });
    // Only the sending device gets its transaction id back (spec: `unsigned.transaction_id`).
    if let (Some(txn), Some(viewer)) = (&event.txn, viewer)
        && viewer.localpart == txn.localpart
        && viewer.device_id.as_str() == txn.device_id
    {
        unsigned["transaction_id"] = json!(txn.txn_id);
    }
    if let Some(redaction) = bundles.redaction_of(event) {
        unsigned["redacted_because"] = json!({
            "type": redaction.event_type,
            "content": ClientFields::of(&redaction.pdu).content,
            "event_id": redaction.event_id,
            "sender": redaction.sender,
            "origin_server_ts": redaction.origin_server_ts,
            "room_id": redaction.room_id,
        });
    }
    if let Some(relations) = bundles.aggregations(event, viewer, depth) {
        unsigned["m.relations"] = relations;
    }
    out["unsigned"] = unsigned;
    out
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
