//! Room state (spec: "Getting events for a room", "Sending events to a room"; ruma `state`):
//! the whole current state, one state event, and sending state.

use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::on;
use maas_core::Platform;
use maas_core::rooms::{Event, EventDraft};
use ruma::api::IncomingRequest;
use ruma::api::client::state::get_state_event_for_key::v3::StateEventFormat;
use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};
use ruma::api::path_builder::PathBuilder;

use super::convert::{client_event_raw, client_events_raw, raw_value, to_raw};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, method_filter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_state_events::v3::Request, _, _>(router, get_state_events);
    let router = route_with_state_key::<get_state_event_for_key::v3::Request, _, _>(
        router,
        get_state_event_for_key,
    );
    route_with_state_key::<send_state_event::v3::Request, _, _>(router, send_state_event)
}

/// Registers an endpoint whose path ends in `{state_key}`, also for the empty state key, which
/// clients send as `…/{eventType}/` or `…/{eventType}` (a path parameter never matches an
/// empty segment).
fn route_with_state_key<R, H, T>(router: AppRouter, handler: H) -> AppRouter
where
    R: IncomingRequest,
    H: Handler<T, Arc<Platform>>,
    T: 'static,
{
    let router = route::<R, H, T>(router, handler.clone());
    let filter = method_filter(&R::METHOD);
    R::PATH_BUILDER.all_paths().fold(router, |router, path| {
        let Some(prefix) = path.strip_suffix("/{state_key}") else {
            return router;
        };
        router
            .route(prefix, on(filter, handler.clone()))
            .route(&format!("{prefix}/"), on(filter, handler.clone()))
    })
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state`
async fn get_state_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>> {
    let mut state = tenant.rooms().state(&user.user_id, &req.room_id).await?;
    state.sort_by_key(Event::stream);
    let events = client_events_raw(&tenant, &state, &user).await?;
    Ok(get_state_events::v3::Response::new(events).into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
async fn get_state_event_for_key(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_state_event_for_key::v3::Request>,
) -> Result<RumaResponse<get_state_event_for_key::v3::Response>> {
    let record = tenant
        .rooms()
        .state_event(&user.user_id, &req.room_id, &req.event_type, &req.state_key)
        .await?;
    let body = match req.format {
        StateEventFormat::Event => client_event_raw::<()>(&tenant, &record, &user)
            .await?
            .into_json(),
        StateEventFormat::Content => to_raw::<(), _>(&record.content())?.into_json(),
        other => {
            return Err(HttpError::invalid_param(format!(
                "Unknown format {:?}",
                other.as_str()
            )));
        }
    };
    Ok(get_state_event_for_key::v3::Response::new(body).into())
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
async fn send_state_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>> {
    // `timestamp` is for application services only, which this server does not host yet.
    let content = raw_value(&req.body)?;
    if !content.is_object() {
        return Err(HttpError::bad_json("Event content must be an object"));
    }
    let draft = EventDraft::state(&req.event_type.to_string(), &req.state_key, content);
    let event_id = tenant
        .rooms()
        .send(&user.user_id, &req.room_id, draft, None)
        .await?;
    Ok(send_state_event::v3::Response::new(event_id).into())
}
