//! The first checks on a PDU another server sent (spec: Server-Server API, "Checks performed
//! on receipt of a PDU", steps 1 to 3): a valid event of the room's version within the size
//! limit, signed by the servers its version requires (their keys from the key cache), and its
//! content hash matching, or else redacted before it goes further. The auth rules come next,
//! in the event pipeline (`rooms::receive`).

use std::collections::BTreeSet;

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{PublicKeyMap, Verified, required_server_signatures_to_verify_event};
use ruma::{RoomId, ServerName};
use serde_json::value::RawValue as RawJsonValue;

use crate::rooms::pdu::{self, MAX_PDU_BYTES, Pdu};
use crate::store::OutlierRecord;
use crate::{Error, Result, Tenant};

/// A received PDU that passed the first checks, as it will be stored.
#[derive(Clone)]
pub struct CheckedPdu {
    pub pdu: Pdu,
    /// Its canonical JSON (redacted if its content hash did not match).
    pub canonical: String,
}

impl CheckedPdu {
    /// The event as an outlier: known here, outside the room's timeline.
    pub(crate) fn outlier(&self) -> OutlierRecord {
        let pdu = &self.pdu;
        OutlierRecord {
            event_id: pdu.event_id.to_string(),
            room_id: pdu.room_id.to_string(),
            depth: i64::try_from(pdu.depth).unwrap_or(i64::MAX),
            event_type: pdu.kind.to_string(),
            state_key: pdu.state_key.clone(),
            sender: pdu.sender.to_string(),
            origin_server_ts: pdu.origin_server_ts.get().into(),
            pdu: self.canonical.clone(),
        }
    }
}

/// The room a raw PDU names, read before anything else to find its version.
pub fn room_of(raw: &RawJsonValue) -> Result<ruma::OwnedRoomId> {
    #[derive(serde::Deserialize)]
    struct RoomOnly {
        room_id: ruma::OwnedRoomId,
    }
    serde_json::from_str::<RoomOnly>(raw.get())
        .map(|r| r.room_id)
        .map_err(|e| Error::BadJson(format!("PDU without a valid room_id: {e}")))
}

/// Steps 1–3 for a PDU of `room_id`, a room of version `rules`.
pub async fn check(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    raw: &RawJsonValue,
) -> Result<CheckedPdu> {
    if raw.get().len() > MAX_PDU_BYTES {
        return Err(Error::TooLarge(format!(
            "PDU larger than {MAX_PDU_BYTES} bytes"
        )));
    }
    let mut json: CanonicalJsonObject = serde_json::from_str(raw.get())
        .map_err(|e| Error::BadJson(format!("PDU is not canonical JSON: {e}")))?;
    // Whatever a sender puts in `unsigned` is not covered by signatures; an `event_id` is
    // computed, never taken.
    json.remove("unsigned");
    if !rules.event_format.require_event_id {
        json.remove("event_id");
    }
    let keys = public_keys(tenant, rules, &json).await?;
    let verified = ruma::signatures::verify_event(&keys, &json, rules)
        .map_err(|e| Error::InvalidSignature(format!("PDU signature check failed: {e}")))?;
    if verified == Verified::Signatures {
        // Step 3: a hash mismatch means the event travelled redacted, or was tampered with.
        json = ruma::canonical_json::redact(json, &rules.redaction, None)
            .map_err(|e| Error::BadJson(format!("PDU can't be redacted: {e}")))?;
    }
    let event_id = pdu::event_id_of(&json, rules)?;
    let canonical = pdu::canonical_json(&json);
    let parsed = Pdu::from_json(event_id, room_id, json)
        .map_err(|e| Error::BadJson(format!("Malformed PDU: {e}")))?;
    if parsed.room_id != room_id {
        return Err(Error::BadJson("PDU of another room".into()));
    }
    Ok(CheckedPdu {
        pdu: parsed,
        canonical,
    })
}

/// The keys of every server whose signature the event needs, for the key ids it was signed
/// with, valid when it was sent.
async fn public_keys(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    json: &CanonicalJsonObject,
) -> Result<PublicKeyMap> {
    let servers = required_server_signatures_to_verify_event(json, &rules.signatures)
        .map_err(|e| Error::InvalidSignature(format!("PDU signatures: {e}")))?;
    let at = match json.get("origin_server_ts") {
        Some(CanonicalJsonValue::Integer(ts)) => i64::from(*ts),
        _ => return Err(Error::BadJson("PDU without origin_server_ts".into())),
    };
    let mut map = PublicKeyMap::new();
    for server in servers {
        let key_ids = signing_key_ids(json, &server);
        if key_ids.is_empty() {
            return Err(Error::InvalidSignature(format!(
                "PDU not signed by {server}"
            )));
        }
        let ids: Vec<&str> = key_ids.iter().map(String::as_str).collect();
        let found = tenant
            .federation()
            .public_keys_any(&server, &ids, at)
            .await?;
        map.extend(found);
    }
    Ok(map)
}

/// The ed25519 key ids `server` signed the event with.
fn signing_key_ids(json: &CanonicalJsonObject, server: &ServerName) -> BTreeSet<String> {
    let Some(CanonicalJsonValue::Object(signatures)) = json.get("signatures") else {
        return BTreeSet::new();
    };
    let Some(CanonicalJsonValue::Object(by_key)) = signatures.get(server.as_str()) else {
        return BTreeSet::new();
    };
    by_key
        .keys()
        .filter(|id| id.starts_with("ed25519:"))
        .cloned()
        .collect()
}
