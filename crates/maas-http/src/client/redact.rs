//! Redactions (spec: "Redactions"; ruma `redact`): redacting an event is sending an
//! `m.room.redaction`, idempotent per device and transaction id like any message.

use maas_core::rooms::{EventDraft, TxnEndpoint};
use ruma::api::client::redact::redact_event;
use serde_json::{Map, Value};

use super::message::txn;
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<redact_event::v3::Request, _, _>(router, redact_event)
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
            Some(txn(&user, &req.txn_id, TxnEndpoint::Redact)),
        )
        .await?;
    Ok(redact_event::v3::Response::new(event_id).into())
}
