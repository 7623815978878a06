//! Events for other servers in the room (spec: Server-Server API, "Retrieving events",
//! "Backfilling and retrieving missing events", "Retrieving event authorization information",
//! "Timestamp to event"; ruma `event`, `backfill`, `authorization`).

use maas_core::federation::events;
use ruma::MilliSecondsSinceUnixEpoch;
use ruma::api::federation::authorization::get_event_authorization;
use ruma::api::federation::backfill::get_backfill;
use ruma::api::federation::event::{
    get_event, get_event_by_timestamp, get_missing_events, get_room_state, get_room_state_ids,
};

use super::authentication::Origin;
use crate::client::convert::direction;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_event::v1::Request, _, _>(router, event);
    let router = route::<get_room_state::v1::Request, _, _>(router, state);
    let router = route::<get_room_state_ids::v1::Request, _, _>(router, state_ids);
    let router = route::<get_event_authorization::v1::Request, _, _>(router, event_auth);
    let router = route::<get_backfill::v1::Request, _, _>(router, backfill);
    let router = route::<get_event_by_timestamp::v1::Request, _, _>(router, timestamp_to_event);
    route::<get_missing_events::v1::Request, _, _>(router, missing_events)
}

/// `GET /_matrix/federation/v1/timestamp_to_event/{roomId}`
async fn timestamp_to_event(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let direction = direction(req.dir);
    let ts = i64::from(req.ts.get());
    let (event_id, at) =
        events::timestamp_to_event(&tenant, &origin, &req.room_id, ts, direction).await?;
    let at = MilliSecondsSinceUnixEpoch(ruma::UInt::try_from(at).unwrap_or_default());
    Ok(get_event_by_timestamp::v1::Response::new(event_id, at).into())
}

/// `GET /_matrix/federation/v1/event/{eventId}`
async fn event(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_event::v1::Request>,
) -> Result<RumaResponse<get_event::v1::Response>> {
    let pdu = events::event(&tenant, &origin, &req.event_id).await?;
    let response = get_event::v1::Response::new(
        tenant.server_name().to_owned(),
        MilliSecondsSinceUnixEpoch::now(),
        events::raw_of(&pdu)?,
    );
    Ok(response.into())
}

/// `GET /_matrix/federation/v1/state/{roomId}`
async fn state(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_room_state::v1::Request>,
) -> Result<RumaResponse<get_room_state::v1::Response>> {
    let at = events::state_at(&tenant, &origin, &req.room_id, &req.event_id).await?;
    let response = get_room_state::v1::Response::new(
        events::raws_of(&at.auth_chain)?,
        events::raws_of(&at.state)?,
    );
    Ok(response.into())
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}`
async fn state_ids(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_room_state_ids::v1::Request>,
) -> Result<RumaResponse<get_room_state_ids::v1::Response>> {
    let at = events::state_at(&tenant, &origin, &req.room_id, &req.event_id).await?;
    let ids = |pdus: &[std::sync::Arc<maas_core::rooms::pdu::Pdu>]| {
        pdus.iter().map(|p| p.event_id.clone()).collect()
    };
    let response = get_room_state_ids::v1::Response::new(ids(&at.auth_chain), ids(&at.state));
    Ok(response.into())
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
async fn event_auth(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_event_authorization::v1::Request>,
) -> Result<RumaResponse<get_event_authorization::v1::Response>> {
    let chain = events::event_auth(&tenant, &origin, &req.room_id, &req.event_id).await?;
    Ok(get_event_authorization::v1::Response::new(events::raws_of(&chain)?).into())
}

/// `GET /_matrix/federation/v1/backfill/{roomId}`
async fn backfill(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_backfill::v1::Request>,
) -> Result<RumaResponse<get_backfill::v1::Response>> {
    let limit = usize::try_from(u64::from(req.limit)).unwrap_or(usize::MAX);
    let pdus = events::backfill(&tenant, &origin, &req.room_id, &req.v, limit).await?;
    let response = get_backfill::v1::Response::new(
        tenant.server_name().to_owned(),
        MilliSecondsSinceUnixEpoch::now(),
        events::raws_of(&pdus)?,
    );
    Ok(response.into())
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`
async fn missing_events(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<get_missing_events::v1::Request>,
) -> Result<RumaResponse<get_missing_events::v1::Response>> {
    let limit = usize::try_from(u64::from(req.limit)).unwrap_or(usize::MAX);
    let min_depth = u64::from(req.min_depth);
    let pdus = events::missing_events(
        &tenant,
        &origin,
        &req.room_id,
        &req.earliest_events,
        &req.latest_events,
        limit,
        min_depth,
    )
    .await?;
    Ok(get_missing_events::v1::Response::new(events::raws_of(&pdus)?).into())
}
