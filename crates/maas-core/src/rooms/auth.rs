//! Authorization of events (spec: Server-Server API, "Authorization rules"), for local events
//! as for remote ones: the auth events an event must cite, and the check of an event against
//! the room state, both by ruma-state-res for the room's version.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res;
use ruma::{OwnedEventId, UserId};
use serde_json::value::RawValue as RawJsonValue;

use super::pdu::Pdu;
use super::state::RoomState;
use crate::{Error, Result};

/// The state keys the auth rules consult for such an event.
pub fn auth_types(
    rules: &RoomVersionRules,
    kind: &TimelineEventType,
    sender: &UserId,
    state_key: Option<&str>,
    content: &RawJsonValue,
) -> Result<Vec<(StateEventType, String)>> {
    state_res::auth_types_for_event(kind, sender, state_key, content, &rules.authorization)
        .map_err(|e| Error::BadJson(format!("Invalid event content: {e}")))
}

/// The ids of the auth events an event must cite, taken from `state`. Version 12 rooms leave
/// the create event out: the room id stands for it.
pub fn select_auth_events(
    rules: &RoomVersionRules,
    state: &RoomState,
    types: &[(StateEventType, String)],
) -> Vec<OwnedEventId> {
    let mut ids: Vec<OwnedEventId> = types
        .iter()
        .filter(|key| {
            key.0 != StateEventType::RoomCreate
                || rules.event_format.allow_room_create_in_auth_events
        })
        .filter_map(|key| state.get(key).cloned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Checks `pdu` against the auth rules, with `state` the room state before it and `events` the
/// PDUs of that state (at least those the rules consult).
pub fn check(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &RoomState,
    events: &HashMap<OwnedEventId, Arc<Pdu>>,
) -> Result<()> {
    let fetch_event = |id: &ruma::EventId| events.get(id).cloned();
    state_res::check_state_independent_auth_rules(&rules.authorization, pdu, fetch_event)
        .map_err(Error::Forbidden)?;
    let fetch_state = |kind: &StateEventType, key: &str| {
        state
            .get(&(kind.clone(), key.to_owned()))
            .and_then(|id| events.get(id).cloned())
    };
    state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch_state)
        .map_err(Error::Forbidden)
}
