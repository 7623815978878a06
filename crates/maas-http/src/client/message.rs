//! Room messages (spec: "Sending events to a room", "Getting events for a room"; ruma
//! `message`): sending message events, idempotent per device and transaction id, and paginating
//! the timeline with `/messages`.

use maas_core::accounts::AuthedUser;
use maas_core::rooms::{EventDraft, Page, Transaction, TxnEndpoint};
use maas_core::sync::{parse_page_token, token};
use ruma::TransactionId;
use ruma::api::client::message::{get_message_events, send_message_event};

use super::convert::{client_events_raw, direction, page_limit, raw_value, room_event_filter};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<send_message_event::v3::Request, _, _>(router, send_message_event);
    route::<get_message_events::v3::Request, _, _>(router, get_message_events)
}

/// The transaction a client sends under: idempotent per device and request path.
pub(super) fn txn<'a>(
    user: &'a AuthedUser,
    txn_id: &'a TransactionId,
    endpoint: TxnEndpoint,
) -> Transaction<'a> {
    Transaction {
        device_id: &user.device_id,
        txn_id,
        endpoint,
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
            Some(txn(&user, &req.txn_id, TxnEndpoint::Send)),
        )
        .await?;
    Ok(send_message_event::v3::Response::new(event_id).into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`
async fn get_message_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>> {
    let from = req.from.as_deref().map(parse_page_token).transpose()?;
    let to = req.to.as_deref().map(parse_page_token).transpose()?;
    let filter = room_event_filter(&req.filter)?;
    let page = Page {
        from,
        to,
        direction: direction(req.dir),
        limit: page_limit(Some(req.limit)),
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
