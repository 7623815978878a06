//! Relationships (spec: "Relationships"; ruma `relations`): the events that relate to an event,
//! by any relation, by one relation type, or by relation and event type.

use maas_core::Tenant;
use maas_core::accounts::AuthedUser;
use maas_core::rooms::relations::RelationsPage;
use maas_core::sync::{parse_token, token};
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type,
    get_relating_events_with_rel_type_and_event_type,
};
use ruma::serde::Raw;
use ruma::{EventId, RoomId, UInt};

use super::convert::{client_events_raw, direction, page_limit};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_relating_events::v1::Request, _, _>(router, get_relating_events);
    let router = route::<get_relating_events_with_rel_type::v1::Request, _, _>(
        router,
        get_relating_events_with_rel_type,
    );
    route::<get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
        router,
        get_relating_events_with_rel_type_and_event_type,
    )
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
            page_limit(q.limit),
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
