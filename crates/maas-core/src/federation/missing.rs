//! Filling gaps in a room's timeline (spec: Server-Server API, "Retrieving events",
//! `get_missing_events`): a received event whose prev events we lack has them asked of the
//! server that sent it, between our forward extremities and the event, and the answers are
//! appended oldest first before the event is taken again. A gap deeper than that leaves the
//! rest missing: the state before the event is asked of the same server instead (`/state` at
//! each missing prev event), checked as any received state, and the event forks the room on it.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::api::federation::event::{get_event, get_missing_events, get_room_state};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, RoomId, ServerName, UInt};

use super::joining;
use super::received::{self, CheckedPdu};
use crate::rooms::auth;
use crate::rooms::pdu::Pdu;
use crate::rooms::pipeline::Received;
use crate::rooms::state::{self, RoomState};
use crate::store::{EventBatch, OutlierRecord};
use crate::{Error, Result, Tenant};

/// Events asked for at most per gap: the spec's default limit.
const MISSING_LIMIT: u32 = 10;

/// Appends a received event, first fetching from `origin` the prev events it cites that the
/// room lacks here; past a gap deeper than one request fills, on the state `origin` gives for
/// the prev events still missing. When that fails too, the event stays refused as
/// [`Received::MissingPrevEvents`].
pub(crate) async fn append_received(
    tenant: &Tenant,
    origin: &ServerName,
    rules: &RoomVersionRules,
    checked: CheckedPdu,
) -> Result<Received> {
    let pdu = checked.pdu.clone();
    let first = tenant.rooms().append_received(checked.clone()).await?;
    let Received::MissingPrevEvents(missing) = first else {
        return Ok(first);
    };
    tracing::debug!(%origin, event_id = %pdu.event_id, ?missing, "fetching missing events");
    fill(tenant, origin, rules, &pdu).await?;
    let second = tenant.rooms().append_received(checked.clone()).await?;
    let Received::MissingPrevEvents(missing) = second else {
        return Ok(second);
    };
    match state_across_gap(tenant, origin, rules, &pdu).await {
        Ok(state_before) => {
            tracing::info!(%origin, event_id = %pdu.event_id, ?missing, "appended across a gap");
            tenant
                .rooms()
                .append_received_across_gap(checked, state_before)
                .await
        }
        Err(e) => {
            tracing::info!(%origin, event_id = %pdu.event_id, error = %e, "no state across the gap");
            Ok(Received::MissingPrevEvents(missing))
        }
    }
}

/// The state before `pdu`: the states after its prev events resolved, each known here or
/// asked of `origin`. What `origin` gave is stored as outliers first, to be read as the
/// event's state and auth events.
async fn state_across_gap(
    tenant: &Tenant,
    origin: &ServerName,
    rules: &RoomVersionRules,
    pdu: &Pdu,
) -> Result<RoomState> {
    let (store, cache) = (tenant.store(), tenant.state_cache());
    let mut states = Vec::with_capacity(pdu.prev_events.len());
    let mut outliers = Vec::new();
    for prev in &pdu.prev_events {
        let known = store.event(prev.as_str()).await?.filter(|r| r.stream != 0);
        if let Some(record) = known {
            states.push(cache.group(store, record.state_after).await?);
            continue;
        }
        let (state, fetched) = state_after(tenant, origin, rules, &pdu.room_id, prev).await?;
        states.push(Arc::new(state));
        outliers.extend(fetched);
    }
    let batch = EventBatch {
        outliers,
        ..EventBatch::default()
    };
    store.persist_events(&batch).await?;
    state::resolve(cache, store, rules, states).await
}

/// The state after `event_id`, an event of `room_id` not known here, as `origin` gives it: the
/// state before it (`/state`) and the event itself (`/event`) when it is a state event the
/// rules allow there. Returns the events to keep as well.
async fn state_after(
    tenant: &Tenant,
    origin: &ServerName,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<(RoomState, Vec<OutlierRecord>)> {
    let federation = tenant.federation();
    let request = get_room_state::v1::Request::new(event_id.to_owned(), room_id.to_owned());
    let answer = federation.send_signed(tenant, origin, request).await?;
    let (events, state_ids) =
        joining::checked_events(tenant, rules, room_id, &answer.auth_chain, &answer.pdus).await;
    let mut state = RoomState::new();
    for id in &state_ids {
        if let Some(checked) = events.get(id)
            && let Some(state_key) = &checked.pdu.state_key
        {
            let key = (checked.pdu.kind.to_string().into(), state_key.clone());
            state.insert(key, id.clone());
        }
    }
    let request = get_event::v1::Request::new(event_id.to_owned());
    let raw = federation.send_signed(tenant, origin, request).await?.pdu;
    let event = received::check(tenant, rules, room_id, &raw).await?;
    if event.pdu.event_id != event_id {
        return Err(Error::RemoteUnavailable(format!(
            "{origin} gave another event for {event_id}"
        )));
    }
    if let Some(state_key) = &event.pdu.state_key
        && allowed_on(rules, &event.pdu, &state, &events)
    {
        let key = (event.pdu.kind.to_string().into(), state_key.clone());
        state.insert(key, event.pdu.event_id.clone());
    }
    let outliers = events
        .values()
        .chain(std::iter::once(&event))
        .map(CheckedPdu::outlier)
        .collect();
    Ok((state, outliers))
}

/// Whether the auth rules allow `pdu` on `state`, whose events are among `events`.
fn allowed_on(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &RoomState,
    events: &HashMap<OwnedEventId, CheckedPdu>,
) -> bool {
    let pdus = state
        .values()
        .filter_map(|id| events.get(id))
        .map(|c| (c.pdu.event_id.clone(), Arc::new(c.pdu.clone())))
        .collect();
    auth::check(rules, pdu, state, &pdus).is_ok()
}

/// Asks `origin` for the events between the room's forward extremities and `pdu`, and
/// appends those that pass their checks, oldest first.
async fn fill(
    tenant: &Tenant,
    origin: &ServerName,
    rules: &RoomVersionRules,
    pdu: &Pdu,
) -> Result<()> {
    let head = tenant.room_heads().snapshot(tenant, &pdu.room_id).await?;
    let earliest = head
        .extremities
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    let mut request = get_missing_events::v1::Request::new(
        pdu.room_id.clone(),
        earliest,
        vec![pdu.event_id.clone()],
    );
    request.limit = UInt::from(MISSING_LIMIT);
    let answer = tenant
        .federation()
        .send_signed(tenant, origin, request)
        .await?;
    let mut found = Vec::new();
    for raw in answer.events.iter().take(MISSING_LIMIT as usize) {
        match received::check(tenant, rules, &pdu.room_id, raw).await {
            Ok(checked) => found.push(checked),
            Err(e) => tracing::info!(%origin, error = %e, "a missing event failed its checks"),
        }
    }
    found.sort_by_key(|c| c.pdu.depth);
    for checked in found {
        let event_id = checked.pdu.event_id.clone();
        match tenant.rooms().append_received(checked).await {
            Ok(Received::MissingPrevEvents(_)) => {
                tracing::info!(%origin, %event_id, "gap deeper than one request");
                break;
            }
            Ok(_) => {}
            Err(e) => tracing::info!(%origin, %event_id, error = %e, "missing event refused"),
        }
    }
    Ok(())
}
