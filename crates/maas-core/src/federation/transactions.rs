//! Transactions received from other servers (spec: Server-Server API, "Transactions",
//! `PUT /send/{txnId}`): at most 50 PDUs and 100 EDUs from one origin, each PDU checked and
//! appended on its own (one refused PDU doesn't refuse the others), and the answer kept, so a
//! transaction the origin retries is answered again without being applied twice. Of the
//! EDUs, typing notices and read receipts are applied so far.

use std::collections::BTreeMap;
use std::time::Duration;

use ruma::api::federation::transactions::edu::{
    DirectDeviceContent, Edu, PresenceContent, ReceiptContent, TypingContent,
};
use ruma::canonical_json::CanonicalJsonObject;
use ruma::serde::Raw;
use ruma::{OwnedEventId, ServerName, UserId};
use serde_json::Value;
use serde_json::value::RawValue as RawJsonValue;

use super::received;
use crate::rooms::pdu;
use crate::rooms::pipeline::Received;
use crate::rooms::rules_of;
use crate::{Error, Result, Tenant, now_ms};

const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

/// What became of each PDU of a transaction, by event id: `Err` with the reason when refused.
pub type PduResults = BTreeMap<OwnedEventId, std::result::Result<(), String>>;

/// A transaction as it arrived.
pub struct Transaction<'a> {
    pub txn_id: &'a str,
    /// The `origin` its body names, which must be the server that signed the request.
    pub origin: &'a ServerName,
    pub pdus: &'a [Box<RawJsonValue>],
    pub edus: &'a [Raw<Edu>],
}

/// Applies a transaction that `origin` sent (and signed).
pub async fn receive(
    tenant: &Tenant,
    origin: &ServerName,
    txn: Transaction<'_>,
) -> Result<PduResults> {
    if txn.origin != origin {
        return Err(Error::Forbidden(format!(
            "The transaction names {} as origin but was signed by {origin}",
            txn.origin
        )));
    }
    if txn.pdus.len() > MAX_PDUS || txn.edus.len() > MAX_EDUS {
        return Err(Error::BadJson(format!(
            "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )));
    }
    let store = tenant.store();
    if let Some(answer) = store
        .received_transaction(origin.as_str(), txn.txn_id)
        .await?
    {
        return serde_json::from_str::<Vec<(OwnedEventId, Option<String>)>>(&answer)
            .map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(id, error)| (id, error.map_or(Ok(()), Err)))
                    .collect()
            })
            .map_err(|e| Error::Internal(format!("stored transaction answer: {e}")));
    }
    let mut results = PduResults::new();
    for raw in txn.pdus {
        if let Some((event_id, result)) = receive_pdu(tenant, origin, raw).await {
            results.insert(event_id, result);
        }
    }
    for edu in txn.edus {
        receive_edu(tenant, origin, edu).await;
    }
    let answer: Vec<(&OwnedEventId, Option<&String>)> = results
        .iter()
        .map(|(id, result)| (id, result.as_ref().err()))
        .collect();
    let answer = serde_json::to_string(&answer)
        .map_err(|e| Error::Internal(format!("transaction answer: {e}")))?;
    store
        .record_received_transaction(origin.as_str(), txn.txn_id, &answer, now_ms())
        .await?;
    Ok(results)
}

/// One PDU: its event id (`None` when it is too malformed to have one) and its outcome.
async fn receive_pdu(
    tenant: &Tenant,
    origin: &ServerName,
    raw: &RawJsonValue,
) -> Option<(OwnedEventId, std::result::Result<(), String>)> {
    let room_id = received::room_of(raw).ok()?;
    let record = tenant.store().room(room_id.as_str()).await.ok().flatten();
    let Some(record) = record else {
        tracing::debug!(%origin, %room_id, "PDU for a room this server is not in");
        return None;
    };
    let rules = rules_of(&record.room_version).ok()?;
    let event_id = event_id_of(raw, &rules)?;
    let outcome = async {
        super::acl::ensure_allowed(tenant, &room_id, origin).await?;
        let checked = received::check(tenant, &rules, &room_id, raw).await?;
        super::missing::append_received(tenant, origin, &rules, checked).await
    }
    .await;
    let result = match outcome {
        Ok(Received::Stored | Received::AlreadyKnown) => Ok(()),
        Ok(Received::SoftFailed(why)) => {
            tracing::info!(%origin, %event_id, %why, "received event soft-failed");
            Ok(())
        }
        Ok(Received::MissingPrevEvents(missing)) => {
            tracing::info!(%origin, %event_id, ?missing, "received event left out: a gap");
            Err(format!("Prev events {missing:?} could not be fetched"))
        }
        Err(e) => {
            tracing::info!(%origin, %event_id, error = %e, "received event refused");
            Err(e.to_string())
        }
    };
    Some((event_id, result))
}

/// How long a remote user's typing notice lasts unless renewed or ended: servers renew theirs
/// well within this (Synapse every 30 s or so).
const REMOTE_TYPING: Duration = Duration::from_secs(60);

/// Applies one EDU; an EDU that is malformed, of a user of another server than its origin,
/// for a room the origin may not take part in, or of a kind not handled yet is dropped (EDUs
/// have no answer).
async fn receive_edu(tenant: &Tenant, origin: &ServerName, raw: &Raw<Edu>) {
    let edu = match raw.deserialize() {
        Ok(edu) => edu,
        Err(e) => {
            tracing::debug!(%origin, error = %e, "malformed EDU dropped");
            return;
        }
    };
    let applied = match edu {
        Edu::Typing(typing) => receive_typing(tenant, origin, &typing).await,
        Edu::Receipt(receipts) => receive_receipts(tenant, origin, &receipts).await,
        Edu::DirectToDevice(messages) => receive_to_device(tenant, origin, &messages).await,
        Edu::DeviceListUpdate(update) => device_list_changed(tenant, origin, &update.user_id).await,
        Edu::SigningKeyUpdate(update) => device_list_changed(tenant, origin, &update.user_id).await,
        Edu::Presence(presence) => receive_presence(tenant, origin, &presence).await,
        _ => Ok(()),
    };
    if let Err(e) = applied {
        tracing::debug!(%origin, error = %e, "EDU dropped");
    }
}

async fn receive_typing(
    tenant: &Tenant,
    origin: &ServerName,
    typing: &TypingContent,
) -> Result<()> {
    if typing.user_id.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} sent typing for {}",
            typing.user_id
        )));
    }
    super::acl::ensure_allowed(tenant, &typing.room_id, origin).await?;
    let timeout = typing.typing.then_some(REMOTE_TYPING);
    tenant
        .set_typing(&typing.user_id, &typing.room_id, timeout)
        .await
}

/// One of the origin's users changed a device or their cross-signing keys: our clients sharing
/// a room with them see the user in `device_lists.changed` and ask for the keys again.
async fn device_list_changed(tenant: &Tenant, origin: &ServerName, user: &UserId) -> Result<()> {
    if user.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} sent a device list update of {user}"
        )));
    }
    tenant.e2ee().device_list_changed(user).await?;
    Ok(())
}

/// Presence of the origin's users; an update about another server's user is dropped.
async fn receive_presence(
    tenant: &Tenant,
    origin: &ServerName,
    content: &PresenceContent,
) -> Result<()> {
    for update in &content.push {
        if update.user_id.server_name() != origin {
            continue;
        }
        let taken = tenant
            .remote_presence(
                &update.user_id,
                update.presence.as_str(),
                update.status_msg.as_deref(),
                update.last_active_ago.into(),
            )
            .await;
        if let Err(e) = taken {
            tracing::debug!(%origin, user = %update.user_id, error = %e, "presence dropped");
        }
    }
    Ok(())
}

/// To-device messages of one of the origin's users to ours.
async fn receive_to_device(
    tenant: &Tenant,
    origin: &ServerName,
    content: &DirectDeviceContent,
) -> Result<()> {
    if content.sender.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} sent to-device messages of {}",
            content.sender
        )));
    }
    let messages = serde_json::to_value(&content.messages)
        .map_err(|e| Error::BadJson(format!("to-device messages: {e}")))?;
    let Value::Object(messages) = messages else {
        return Err(Error::BadJson(
            "to-device messages must be an object".into(),
        ));
    };
    tenant
        .e2ee()
        .receive_to_device(&content.sender, &content.ev_type.to_string(), &messages)
        .await
}

/// Read receipts of the origin's users, room by room; a receipt that can't be taken (a user
/// not in the room, an unknown event) is dropped without the others.
async fn receive_receipts(
    tenant: &Tenant,
    origin: &ServerName,
    content: &ReceiptContent,
) -> Result<()> {
    for (room_id, receipts) in &content.receipts {
        if let Err(e) = super::acl::ensure_allowed(tenant, room_id, origin).await {
            tracing::debug!(%origin, %room_id, error = %e, "receipts dropped");
            continue;
        }
        for (user_id, receipt) in &receipts.read {
            if user_id.server_name() != origin {
                continue;
            }
            let ts = receipt
                .data
                .ts
                .map_or_else(now_ms, |ts| i64::from(ts.get()));
            let thread = receipt.data.thread.as_str();
            // Several ids mean several events read at once; the last is the newest.
            let Some(event_id) = receipt.event_ids.last() else {
                continue;
            };
            let taken = tenant
                .user_data()
                .remote_read_receipt(user_id, room_id, event_id, thread, ts)
                .await;
            if let Err(e) = taken {
                tracing::debug!(%origin, %user_id, error = %e, "receipt dropped");
            }
        }
    }
    Ok(())
}

/// The event id a PDU has in a room of `rules`, computed as the receiving end must.
fn event_id_of(
    raw: &RawJsonValue,
    rules: &ruma::room_version_rules::RoomVersionRules,
) -> Option<OwnedEventId> {
    let mut json: CanonicalJsonObject = serde_json::from_str(raw.get()).ok()?;
    json.remove("unsigned");
    if !rules.event_format.require_event_id {
        json.remove("event_id");
    }
    pdu::event_id_of(&json, rules).ok()
}
