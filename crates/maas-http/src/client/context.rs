//! Event context (spec: "Events" → `/context`; ruma `context`): the events before and after an
//! event, with the state at that point.

use maas_core::sync::token;
use ruma::api::client::context::get_context;

use super::convert::{MAX_PAGE, client_event_raw, client_events_raw, room_event_filter};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_context::v3::Request, _, _>(router, get_context)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
async fn get_context(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_context::v3::Request>,
) -> Result<RumaResponse<get_context::v3::Response>> {
    // Unlike other pages, zero events around the one asked for is a fine answer.
    let limit = u32::try_from(req.limit).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let filter = room_event_filter(&req.filter)?;
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
