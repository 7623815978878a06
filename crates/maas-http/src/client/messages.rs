//! Room messages (spec: "Sending events to a room", "Redactions", "Getting events for a
//! room"): sending message events and redactions, idempotent per device and transaction id, and
//! paginating the timeline with `/messages`.

use maas_core::accounts::AuthedUser;
use maas_core::filter::parse_room_event_filter;
use maas_core::rooms::{Direction, EventDraft, Page, Transaction};
use maas_core::sync::{parse_token, token};
use ruma::api::client::message::{get_message_events, send_message_event};
use ruma::api::client::redact::redact_event;
use ruma::{TransactionId, UInt};
use serde_json::{Map, Value};

use super::events::{client_events_raw, raw_value};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

/// Events a page of `/messages` carries at most.
const MAX_MESSAGES_LIMIT: u32 = 1000;

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<send_message_event::v3::Request, _, _>(router, send_message_event);
    let router = route::<redact_event::v3::Request, _, _>(router, redact_event);
    route::<get_message_events::v3::Request, _, _>(router, get_message_events)
}

/// The transaction a client sends under: idempotent per device.
fn txn<'a>(user: &'a AuthedUser, txn_id: &'a TransactionId) -> Transaction<'a> {
    Transaction {
        device_id: &user.device_id,
        txn_id,
    }
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
async fn send_message_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>> {
    // `ts` is for application services only, which this server does not host yet.
    let content = raw_value(&req.body)?;
    let draft = EventDraft::message(&req.event_type.to_string(), content);
    let event_id = tenant
        .rooms()
        .send(
            &user.user_id,
            &req.room_id,
            draft,
            Some(txn(&user, &req.txn_id)),
        )
        .await?;
    Ok(send_message_event::v3::Response::new(event_id).into())
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
async fn redact_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>> {
    // Room versions 11 and later carry `redacts` in the content, older ones at the top level;
    // the content field is harmless to the older versions.
    let mut content = Map::new();
    content.insert("redacts".into(), Value::String(req.event_id.to_string()));
    if let Some(reason) = req.reason {
        content.insert("reason".into(), Value::String(reason));
    }
    let mut draft = EventDraft::message("m.room.redaction", Value::Object(content));
    draft.redacts = Some(req.event_id);
    let event_id = tenant
        .rooms()
        .send(
            &user.user_id,
            &req.room_id,
            draft,
            Some(txn(&user, &req.txn_id)),
        )
        .await?;
    Ok(redact_event::v3::Response::new(event_id).into())
}

fn limit(limit: UInt) -> u32 {
    u32::try_from(limit)
        .unwrap_or(MAX_MESSAGES_LIMIT)
        .clamp(1, MAX_MESSAGES_LIMIT)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`
async fn get_message_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>> {
    let from = req.from.as_deref().map(parse_token).transpose()?;
    let to = req.to.as_deref().map(parse_token).transpose()?;
    let direction = match req.dir {
        ruma::api::Direction::Backward => Direction::Backward,
        ruma::api::Direction::Forward => Direction::Forward,
    };
    let filter_json = serde_json::to_string(&req.filter)
        .map_err(|e| HttpError::bad_json(format!("Invalid filter: {e}")))?;
    let filter = parse_room_event_filter(&filter_json)?;
    let page = Page {
        from,
        to,
        direction,
        limit: limit(req.limit),
    };
    let messages = tenant
        .rooms()
        .messages(&user.user_id, &req.room_id, page, &filter)
        .await?;
    let mut response = get_message_events::v3::Response::new();
    response.start = token(messages.start);
    response.end = messages.end.map(token);
    response.chunk = client_events_raw(&tenant, &messages.chunk, &user).await?;
    response.state = client_events_raw(&tenant, &messages.state, &user).await?;
    Ok(response.into())
}
