//! Relationships and event lookups (spec: "Relationships", "Threading", "Events" →
//! `context`, `timestamp_to_event`) and room upgrades.

use axum::extract::{Path, Query};
use maas_core::accounts::AuthedUser;
use maas_core::rooms::Direction;
use maas_core::rooms::relations::RelationsPage;
use maas_core::sync::{parse_token, token};
use maas_core::{Tenant, filter};
use ruma::api::client::context::get_context;
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type,
    get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::room::{get_event_by_timestamp, upgrade_room};
use ruma::api::client::threads::get_threads;
use ruma::serde::Raw;
use ruma::{EventId, MilliSecondsSinceUnixEpoch, RoomId, UInt};

use super::events::{client_event_raw, client_events_raw};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 1000;

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_relating_events::v1::Request, _, _>(router, get_relating_events);
    let router = route::<get_relating_events_with_rel_type::v1::Request, _, _>(
        router,
        get_relating_events_with_rel_type,
    );
    let router = route::<get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
        router,
        get_relating_events_with_rel_type_and_event_type,
    );
    let router = route::<get_threads::v1::Request, _, _>(router, get_threads);
    let router = route::<get_context::v3::Request, _, _>(router, get_context);
    let router = route::<get_event_by_timestamp::v1::Request, _, _>(router, get_event_by_timestamp);
    route::<upgrade_room::v3::Request, _, _>(router, upgrade_room)
}

fn limit(limit: Option<UInt>) -> u32 {
    limit
        .map_or(DEFAULT_LIMIT, |l| u32::try_from(l).unwrap_or(MAX_LIMIT))
        .clamp(1, MAX_LIMIT)
}

fn direction(dir: ruma::api::Direction) -> Direction {
    match dir {
        ruma::api::Direction::Backward => Direction::Backward,
        ruma::api::Direction::Forward => Direction::Forward,
    }
}

/// The query of all three relations endpoints.
struct RelationsQuery<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    dir: ruma::api::Direction,
    from: Option<&'a str>,
    limit: Option<UInt>,
}

async fn relations<T>(
    tenant: &Tenant,
    user: &AuthedUser,
    q: RelationsQuery<'_>,
) -> Result<(Vec<Raw<T>>, Option<String>)> {
    let from = q.from.map(parse_token).transpose()?;
    let page: RelationsPage = tenant
        .rooms()
        .relations(
            &user.user_id,
            q.room_id,
            q.event_id,
            q.rel_type.as_deref(),
            q.event_type.as_deref(),
            direction(q.dir),
            from,
            limit(q.limit),
        )
        .await?;
    let chunk = client_events_raw(tenant, &page.chunk, user).await?;
    Ok((chunk, page.next_batch.map(token)))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
async fn get_relating_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_relating_events::v1::Request>,
) -> Result<RumaResponse<get_relating_events::v1::Response>> {
    let query = RelationsQuery {
        room_id: &req.room_id,
        event_id: &req.event_id,
        rel_type: None,
        event_type: None,
        dir: req.dir,
        from: req.from.as_deref(),
        limit: req.limit,
    };
    let (chunk, next_batch) = relations(&tenant, &user, query).await?;
    let mut response = get_relating_events::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(response.into())
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
async fn get_relating_events_with_rel_type(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type::v1::Response>> {
    let query = RelationsQuery {
        room_id: &req.room_id,
        event_id: &req.event_id,
        rel_type: Some(req.rel_type.to_string()),
        event_type: None,
        dir: req.dir,
        from: req.from.as_deref(),
        limit: req.limit,
    };
    let (chunk, next_batch) = relations(&tenant, &user, query).await?;
    let mut response = get_relating_events_with_rel_type::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(response.into())
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
async fn get_relating_events_with_rel_type_and_event_type(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type_and_event_type::v1::Response>> {
    let query = RelationsQuery {
        room_id: &req.room_id,
        event_id: &req.event_id,
        rel_type: Some(req.rel_type.to_string()),
        event_type: Some(req.event_type.to_string()),
        dir: req.dir,
        from: req.from.as_deref(),
        limit: req.limit,
    };
    let (chunk, next_batch) = relations(&tenant, &user, query).await?;
    let mut response = get_relating_events_with_rel_type_and_event_type::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(response.into())
}

/// The query of `/threads`, parsed here rather than by ruma: ruma 0.16 requires `include`,
/// which the spec makes optional (default `all`).
#[derive(serde::Deserialize)]
struct ThreadsQuery {
    from: Option<String>,
    #[serde(default)]
    include: Option<String>,
    limit: Option<UInt>,
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
async fn get_threads(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Path(room_id): Path<String>,
    Query(query): Query<ThreadsQuery>,
) -> Result<RumaResponse<get_threads::v1::Response>> {
    let room_id = RoomId::parse(&room_id).map_err(|e| HttpError::invalid_param(e.to_string()))?;
    let participated = match query.include.as_deref() {
        None | Some("all") => false,
        Some("participated") => true,
        Some(other) => return Err(HttpError::invalid_param(format!("Unknown include {other}"))),
    };
    let from = query.from.as_deref().map(parse_token).transpose()?;
    let page = tenant
        .rooms()
        .threads(
            &user.user_id,
            &room_id,
            participated,
            from,
            limit(query.limit),
        )
        .await?;
    let chunk = client_events_raw(&tenant, &page.chunk, &user).await?;
    let mut response = get_threads::v1::Response::new(chunk);
    response.next_batch = page.next_batch.map(token);
    Ok(response.into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
async fn get_context(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_context::v3::Request>,
) -> Result<RumaResponse<get_context::v3::Response>> {
    let limit = u32::try_from(req.limit).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let filter_json = serde_json::to_string(&req.filter)
        .map_err(|e| HttpError::bad_json(format!("Invalid filter: {e}")))?;
    let filter = filter::parse_room_event_filter(&filter_json)?;
    let context = tenant
        .rooms()
        .context(&user.user_id, &req.room_id, &req.event_id, limit, &filter)
        .await?;
    let mut response = get_context::v3::Response::new();
    response.start = Some(token(context.start));
    response.end = Some(token(context.end));
    response.event = Some(client_event_raw(&tenant, &context.event, &user).await?);
    response.events_before = client_events_raw(&tenant, &context.before, &user).await?;
    response.events_after = client_events_raw(&tenant, &context.after, &user).await?;
    response.state = client_events_raw(&tenant, &context.state, &user).await?;
    Ok(response.into())
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
async fn get_event_by_timestamp(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let ts = i64::from(req.ts.get());
    let event = tenant
        .rooms()
        .timestamp_to_event(&user.user_id, &req.room_id, ts, direction(req.dir))
        .await?;
    let event_id = EventId::parse(event.event_id())
        .map_err(|_| maas_core::Error::Internal("bad stored event id".into()))?;
    let origin_server_ts = UInt::try_from(event.origin_server_ts())
        .map(MilliSecondsSinceUnixEpoch)
        .unwrap_or(MilliSecondsSinceUnixEpoch(UInt::MIN));
    Ok(get_event_by_timestamp::v1::Response::new(event_id, origin_server_ts).into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
async fn upgrade_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<upgrade_room::v3::Request>,
) -> Result<RumaResponse<upgrade_room::v3::Response>> {
    let new_room = tenant
        .rooms()
        .upgrade(&user, &req.room_id, &req.new_version)
        .await?;
    Ok(upgrade_room::v3::Response::new(new_room).into())
}
