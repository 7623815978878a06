//! Filling gaps in a room's timeline (spec: Server-Server API, "Retrieving events",
//! `get_missing_events`): a received event whose prev events we lack has them asked of the
//! server that sent it, between our forward extremities and the event, and the answers are
//! appended oldest first before the event is taken again.

use ruma::api::federation::event::get_missing_events;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{ServerName, UInt};

use super::received::{self, CheckedPdu};
use crate::rooms::pdu::Pdu;
use crate::rooms::pipeline::Received;
use crate::{Result, Tenant};

/// Events asked for at most per gap: the spec's default limit.
const MISSING_LIMIT: u32 = 10;

/// Appends a received event, first fetching from `origin` the prev events it cites that the
/// room lacks here. An event whose gap is deeper than one request fills stays refused as
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
    tenant.rooms().append_received(checked).await
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
