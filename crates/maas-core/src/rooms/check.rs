//! The second stage of the event pipeline: is the event allowed (spec: Server-Server API,
//! "Checks performed on receipt of a PDU", "Authorization rules", "Soft failure")? Every event
//! is checked against the auth rules of its room version (ruma-state-res), three times over:
//! against the state its own auth events form, against the state before it (its prev events'
//! states, resolved), and against the room's current state. Failing either of the first two
//! rejects the event; failing only the last soft-fails it: it is kept, but neither shown to
//! clients nor built on.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, RoomId, UserId};

use super::auth;
use super::pdu::Pdu;
use super::read::power_levels;
use super::state::{self, RoomState};
use super::{Rooms, rules_of};
use crate::federation::partial_state;
use crate::{Error, Result, Tenant};

/// Where a received event stands after its checks.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by all three checks.
    Accepted,
    /// Allowed by its auth events and the state before it, not by the current state.
    SoftFailed(String),
}

/// Keys of an event capped by the spec (spec: "Size limits"), besides the whole PDU's 64 KiB.
const MAX_TYPE_BYTES: usize = 255;
const MAX_STATE_KEY_BYTES: usize = 255;

/// What every event must be before the auth rules look at it: within the spec's size limits
/// ("Size limits"), and a member event's state key a user id (appendices, "User Identifiers":
/// historical ids are still valid, an empty localpart or one with spaces never was).
pub(crate) fn well_formed(pdu: &Pdu) -> Result<()> {
    if pdu.kind.to_string().len() > MAX_TYPE_BYTES {
        return Err(Error::TooLarge(format!(
            "Event type is longer than {MAX_TYPE_BYTES} bytes"
        )));
    }
    let Some(state_key) = &pdu.state_key else {
        return Ok(());
    };
    if state_key.len() > MAX_STATE_KEY_BYTES {
        return Err(Error::TooLarge(format!(
            "State key is longer than {MAX_STATE_KEY_BYTES} bytes"
        )));
    }
    if pdu.kind == TimelineEventType::RoomMember {
        let user = UserId::parse(state_key.as_str())
            .map_err(|_| Error::InvalidParam(format!("{state_key:?} is not a valid user id")))?;
        member_id(&user)?;
    }
    Ok(())
}

/// A user id that may have a membership: valid by the historical grammar, which ruma's
/// parser relaxes further (spaces, an empty localpart).
pub(crate) fn member_id(user: &UserId) -> Result<()> {
    user.validate_historical()
        .map_err(|_| Error::InvalidParam(format!("{user:?} is not a valid user id")))
}

/// The checks of an event built here. Its auth events were taken from the state it is built
/// on, which is the room's current state, so the three checks are one; `pdus` holds the PDUs
/// of the state entries the rules consult.
pub(crate) fn local(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &RoomState,
    pdus: &HashMap<OwnedEventId, Arc<Pdu>>,
) -> Result<()> {
    auth::check(rules, pdu, state, pdus)
}

impl Rooms<'_> {
    /// The checks of a PDU received for a room of this tenant, whose prev and auth events are
    /// stored here (fetching missing ones and verifying signatures and hashes come before, in
    /// the federation receiver). `Err` rejects the event.
    pub async fn check_received(&self, pdu: &Pdu) -> Result<Verdict> {
        let writer = self.tenant.room_locks().lock(&pdu.room_id).await;
        let (head, _) = self.tenant.room_heads().get(self.tenant, &writer).await?;
        let rules = rules_of(&head.room_version)?;
        let current = self
            .tenant
            .state_cache()
            .group(self.tenant.store(), head.state_group)
            .await?;
        let before = state_before(self.tenant, &rules, pdu).await?;
        let partial = self.tenant.partial_rooms().contains(&pdu.room_id);
        received(self.tenant, &rules, pdu, &before, &current, partial).await
    }
}

/// The checks of an event received from another server, whose prev and auth events are
/// stored here; `before` is the state before it (its prev events' states resolved), `current`
/// the room's current state. In a room with `partial` state, the memberships missing from
/// both are taken from the event's auth events (`federation::partial_state`).
pub(crate) async fn received(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    before: &RoomState,
    current: &RoomState,
    partial: bool,
) -> Result<Verdict> {
    well_formed(pdu)?;
    let types = auth_types_of(rules, pdu)?;
    let by_auth_events = auth_events_state(tenant, rules, pdu).await?;
    check_against(tenant, rules, pdu, &by_auth_events, &types).await?;
    let completed;
    let (before, current) = if partial {
        completed = (
            partial_state::with_auth_memberships(before, &by_auth_events),
            partial_state::with_auth_memberships(current, &by_auth_events),
        );
        (&completed.0, &completed.1)
    } else {
        (before, current)
    };
    check_against(tenant, rules, pdu, before, &types).await?;
    match check_against(tenant, rules, pdu, current, &types).await {
        Ok(()) => Ok(Verdict::Accepted),
        Err(Error::Forbidden(why)) => Ok(Verdict::SoftFailed(why)),
        Err(other) => Err(other),
    }
}

/// The checks of a backfilled event, older than anything of its room here: the auth rules
/// against the state its own auth events form (its prev events' states are not known here).
pub(crate) async fn backfilled(tenant: &Tenant, rules: &RoomVersionRules, pdu: &Pdu) -> Result<()> {
    well_formed(pdu)?;
    let types = auth_types_of(rules, pdu)?;
    let by_auth_events = auth_events_state(tenant, rules, pdu).await?;
    check_against(tenant, rules, pdu, &by_auth_events, &types).await
}

/// The PDUs of the entries of `state` that the rules consult for an event needing `types`,
/// and of the create event.
pub(crate) async fn consulted(
    tenant: &Tenant,
    state: &RoomState,
    types: &[(StateEventType, String)],
) -> Result<HashMap<OwnedEventId, Arc<Pdu>>> {
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let mut pdus = HashMap::new();
    let create_key = (StateEventType::RoomCreate, String::new());
    for key in types.iter().chain(std::iter::once(&create_key)) {
        if let Some(id) = state.get(key)
            && let Some(pdu) = cache.pdu(store, id).await?
        {
            pdus.insert(id.clone(), pdu);
        }
    }
    Ok(pdus)
}

/// For an `m.room.redaction` by someone else than the redacted event's sender: the redacter
/// needs the room's redact power (spec: "Redactions"; the auth rules leave this to the
/// server). Returns the redacted event when it is stored and of the same room.
pub(crate) async fn redaction(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &RoomState,
) -> Result<Option<Arc<Pdu>>> {
    if pdu.kind != TimelineEventType::RoomRedaction {
        return Ok(None);
    }
    let Some(target_id) = &pdu.redacts else {
        return Err(Error::BadJson("A redaction needs `redacts`".into()));
    };
    let Some(target) = tenant.state_cache().pdu(tenant.store(), target_id).await? else {
        return Ok(None);
    };
    if target.room_id != pdu.room_id {
        return Ok(None);
    }
    if target.sender != pdu.sender {
        let levels = power_levels(tenant, rules, state).await?;
        if levels.for_user(&pdu.sender) < levels.redact {
            return Err(Error::Forbidden(
                "You don't have permission to redact events of others".into(),
            ));
        }
    }
    Ok(Some(target))
}

fn auth_types_of(rules: &RoomVersionRules, pdu: &Pdu) -> Result<Vec<(StateEventType, String)>> {
    auth::auth_types(
        rules,
        &pdu.kind,
        &pdu.sender,
        pdu.state_key.as_deref(),
        &pdu.content,
    )
}

async fn check_against(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &RoomState,
    types: &[(StateEventType, String)],
) -> Result<()> {
    let mut pdus = consulted(tenant, state, types).await?;
    // The state-independent rules look at the event's own auth events.
    for id in &pdu.auth_events {
        if let Some(auth_event) = known(tenant, id).await? {
            pdus.insert(id.clone(), auth_event);
        }
    }
    auth::check(rules, pdu, state, &pdus)
}

/// The state the event's own auth events form; from version 12 on, with the create event the
/// room id stands for.
async fn auth_events_state(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
) -> Result<RoomState> {
    let mut state = RoomState::new();
    if !rules.event_format.allow_room_create_in_auth_events {
        let create = create_event_id(&pdu.room_id)?;
        state.insert((StateEventType::RoomCreate, String::new()), create);
    }
    for id in &pdu.auth_events {
        let auth_event = known(tenant, id)
            .await?
            .ok_or_else(|| Error::Forbidden(format!("Unknown auth event {id}")))?;
        let Some(state_key) = &auth_event.state_key else {
            return Err(Error::Forbidden(format!(
                "Auth event {id} is not a state event"
            )));
        };
        let key = (auth_event.kind.to_string().into(), state_key.clone());
        state.insert(key, id.clone());
    }
    Ok(state)
}

/// The state before the event: the state after its prev event, or the states after each of
/// them resolved (state resolution v2).
pub(crate) async fn state_before(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
) -> Result<RoomState> {
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let mut states = Vec::with_capacity(pdu.prev_events.len());
    for id in &pdu.prev_events {
        let prev = store
            .event(id.as_str())
            .await?
            .ok_or_else(|| Error::Unknown(format!("Unknown prev event {id}")))?;
        states.push(cache.group(store, prev.state_after).await?);
    }
    state::resolve(cache, store, rules, states).await
}

/// The create event of a version 12 room: the room id is its hash.
pub(crate) fn create_event_id(room_id: &RoomId) -> Result<OwnedEventId> {
    let hash = room_id.as_str().trim_start_matches('!');
    EventId::parse(format!("${hash}"))
        .map_err(|_| Error::Forbidden(format!("{room_id} names no create event")))
}

async fn known(tenant: &Tenant, id: &EventId) -> Result<Option<Arc<Pdu>>> {
    tenant.state_cache().pdu(tenant.store(), id).await
}
