//! Backfilling a room of other servers (spec: Server-Server API, "Backfilling and retrieving
//! missing events", the asking side): when our users page back past the room's earliest event
//! here (history from before we joined), older events are asked of the room's other servers
//! (`backfill`), checked (signatures, hashes, the auth rules against their own auth events)
//! and stored below every stream position: in the room's timeline, never in a sync.

use std::sync::Arc;

use ruma::api::federation::backfill::get_backfill;
use ruma::{OwnedEventId, OwnedServerName, RoomId, UInt};

use super::received::{self, CheckedPdu};
use crate::rooms::pipeline::relation_of;
use crate::rooms::{check, rules_of};
use crate::store::{Direction, EventRecord, StreamRange};
use crate::{Result, Tenant};

/// Fetches up to `limit` events from before the room's earliest event here; returns how many
/// were stored (0 when the room's history starts here, or no server had more).
pub(crate) async fn backfill(tenant: &Tenant, room_id: &RoomId, limit: u32) -> Result<usize> {
    let _positions = tenant.backfill_lock().lock().await;
    let store = tenant.store();
    let whole = StreamRange {
        after: i64::MIN,
        up_to: i64::MAX,
    };
    let Some(earliest) = store
        .room_events(room_id.as_str(), whole, Direction::Forward, 1)
        .await?
        .pop()
    else {
        return Ok(0);
    };
    let Some(room) = store.room(room_id.as_str()).await? else {
        return Ok(0);
    };
    let rules = rules_of(&room.room_version)?;
    let cache = tenant.state_cache();
    let Ok(id) = OwnedEventId::try_from(earliest.event_id.as_str()) else {
        return Ok(0);
    };
    let Some(pdu) = cache.pdu(store, &id).await? else {
        return Ok(0);
    };
    let mut missing = Vec::new();
    for prev in &pdu.prev_events {
        let stored = store.event(prev.as_str()).await?;
        if stored.is_none_or(|e| e.stream == 0) {
            missing.push(prev.clone());
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    for server in other_servers(tenant, room_id).await? {
        let request =
            get_backfill::v1::Request::new(room_id.to_owned(), missing.clone(), UInt::from(limit));
        let answer = match tenant
            .federation()
            .send_signed(tenant, &server, request)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!(%room_id, %server, error = %e, "backfill failed");
                continue;
            }
        };
        let checked = checked(tenant, &rules, room_id, &answer.pdus).await?;
        if checked.is_empty() {
            continue;
        }
        let stored = checked.len();
        store_below(tenant, checked, &earliest).await?;
        return Ok(stored);
    }
    Ok(0)
}

/// The servers of the room's joined members (and, while its members are being fetched, those
/// the resident server listed), but ours.
async fn other_servers(tenant: &Tenant, room_id: &RoomId) -> Result<Vec<OwnedServerName>> {
    let head = tenant.room_heads().snapshot(tenant, room_id).await?;
    let mut servers: Vec<OwnedServerName> = tenant.partial_rooms().servers(room_id);
    servers.extend(head.joined.iter().map(|user| user.server_name().to_owned()));
    servers.retain(|server| server != tenant.server_name());
    let mut seen = std::collections::BTreeSet::new();
    servers.retain(|server| seen.insert(server.clone()));
    Ok(servers)
}

/// The answer's events that pass their checks and aren't in the timeline yet, oldest first
/// (so that each one's auth events, when backfilled with it, are checked before it).
async fn checked(
    tenant: &Tenant,
    rules: &ruma::room_version_rules::RoomVersionRules,
    room_id: &RoomId,
    pdus: &[Box<serde_json::value::RawValue>],
) -> Result<Vec<CheckedPdu>> {
    let mut found = Vec::new();
    for raw in pdus {
        match received::check(tenant, rules, room_id, raw).await {
            Ok(checked) => found.push(checked),
            Err(e) => tracing::info!(%room_id, error = %e, "backfilled event refused"),
        }
    }
    found.sort_by(|a, b| (a.pdu.depth, &a.pdu.event_id).cmp(&(b.pdu.depth, &b.pdu.event_id)));
    let store = tenant.store();
    let cache = tenant.state_cache();
    let mut taken = Vec::new();
    for checked in found {
        let known = store.event(checked.pdu.event_id.as_str()).await?;
        if known.is_some_and(|e| e.stream != 0)
            || taken
                .iter()
                .any(|t: &CheckedPdu| t.pdu.event_id == checked.pdu.event_id)
        {
            continue;
        }
        if let Err(e) = check::backfilled(tenant, rules, &checked.pdu).await {
            tracing::info!(event_id = %checked.pdu.event_id, error = %e, "backfilled event refused");
            continue;
        }
        // Later events of the answer may cite this one as an auth event.
        cache.remember(Arc::new(checked.pdu.clone()));
        taken.push(checked);
    }
    Ok(taken)
}

/// Stores `events` (oldest first) below the lowest stream position, the newest nearest it,
/// with the state `earliest` (the room's earliest event here) was sent in: the states they
/// were sent in are not known here.
async fn store_below(
    tenant: &Tenant,
    events: Vec<CheckedPdu>,
    earliest: &EventRecord,
) -> Result<()> {
    let store = tenant.store();
    let lowest = store.lowest_stream().await?;
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let records: Vec<EventRecord> = events
        .into_iter()
        .zip((lowest - count)..)
        .map(|(checked, stream)| {
            let pdu = &checked.pdu;
            EventRecord {
                event_id: pdu.event_id.to_string(),
                room_id: pdu.room_id.to_string(),
                stream,
                depth: i64::try_from(pdu.depth).unwrap_or(i64::MAX),
                event_type: pdu.kind.to_string(),
                state_key: pdu.state_key.clone(),
                sender: pdu.sender.to_string(),
                origin_server_ts: pdu.origin_server_ts.get().into(),
                relation: relation_of(&pdu.content_value()),
                pdu: checked.canonical,
                state_before: earliest.state_before,
                state_after: earliest.state_before,
                redacted_by: None,
                txn: None,
            }
        })
        .collect();
    Ok(store.insert_backfilled(&records).await?)
}
