//! Inviting across servers (spec: Server-Server API, "Inviting to a room", `invite` v2): the
//! inviting server builds the invite and sends it to the invitee's server, which checks it,
//! adds its signature and keeps it for the invitee (with the room's stripped state) before the
//! invite goes into the room. Both sides are here.

use ruma::api::federation::membership::{RawStrippedState, create_invite};
use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::Value;
use serde_json::value::RawValue as RawJsonValue;

use super::received::{self, CheckedPdu};
use crate::rooms::pdu::{self, Pdu};
use crate::rooms::{is_supported_version, rules_of};
use crate::store::{EventBatch, MembershipRecord};
use crate::stream::Audience;
use crate::{Error, Result, Tenant};

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`: `origin`'s user invites one of our
/// users. The invite is checked, signed by us and kept for the invitee, who sees it in their
/// sync; returns it with our signature.
pub async fn receive(
    tenant: &Tenant,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    room_version: &RoomVersionId,
    raw: &RawJsonValue,
    invite_room_state: &[RawStrippedState],
) -> Result<Box<RawJsonValue>> {
    if !is_supported_version(room_version) {
        return Err(Error::IncompatibleRoomVersion(room_version.to_string()));
    }
    let rules = rules_of(room_version.as_str())?;
    // A room the tenant's admins blocked takes no invites, from here or elsewhere.
    tenant.rooms().admin().ensure_not_blocked(room_id).await?;
    if tenant.store().room(room_id.as_str()).await?.is_some() {
        super::acl::ensure_allowed(tenant, room_id, origin).await?;
    }
    let checked = received::check(tenant, &rules, room_id, raw).await?;
    let invitee = ensure_invite_of_ours(tenant, origin, event_id, &checked.pdu).await?;
    let signed = countersigned(tenant, &rules, checked).await?;
    keep(tenant, &signed, &invitee, invite_room_state).await?;
    RawJsonValue::from_string(signed.canonical)
        .map_err(|e| Error::Internal(format!("signed invite: {e}")))
}

/// An invite, by a user of `origin`, of an existing user of ours, under the id the path names.
async fn ensure_invite_of_ours(
    tenant: &Tenant,
    origin: &ServerName,
    event_id: &EventId,
    invite: &Pdu,
) -> Result<ruma::OwnedUserId> {
    if invite.event_id != event_id {
        return Err(Error::BadJson(format!(
            "The event's id is {}, not {event_id}",
            invite.event_id
        )));
    }
    let is_invite = invite.kind == TimelineEventType::RoomMember
        && invite.content_value()["membership"] == "invite";
    let invitee = invite
        .state_key
        .as_deref()
        .and_then(|key| UserId::parse(key).ok())
        .filter(|_| is_invite)
        .ok_or_else(|| Error::BadJson("invite takes an invite event".into()))?;
    if invite.sender.server_name() != origin {
        return Err(Error::Forbidden(format!(
            "{origin} can only send invites of its own users"
        )));
    }
    if invitee.server_name() != tenant.server_name() {
        return Err(Error::BadJson(format!(
            "{invitee} is not a user of {}",
            tenant.server_name()
        )));
    }
    let user = tenant.store().user(invitee.localpart()).await?;
    if user.is_none_or(|u| u.deactivated) {
        return Err(Error::NotFound(format!("Unknown user {invitee}")));
    }
    Ok(invitee)
}

/// The event with our signature added to its others. Event signatures cover the redacted
/// form (spec: "Signing Events"), so ours is computed on it and copied into the whole event.
async fn countersigned(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    checked: CheckedPdu,
) -> Result<CheckedPdu> {
    let CheckedPdu { pdu, .. } = checked;
    let mut redacted = ruma::canonical_json::redact(pdu.json.clone(), &rules.redaction, None)
        .map_err(|e| Error::BadJson(format!("The invite can't be redacted: {e}")))?;
    let key = tenant.signing_key().await?;
    ruma::signatures::sign_json(tenant.server_name().as_str(), &*key, &mut redacted)
        .map_err(|e| Error::Internal(format!("signing the invite: {e}")))?;
    let mut json = pdu.json.clone();
    if let Some(signatures) = redacted.remove("signatures") {
        json.insert("signatures".into(), signatures);
    }
    let canonical = pdu::canonical_json(&json);
    let pdu = Pdu::from_json(pdu.event_id.clone(), &pdu.room_id, json)
        .map_err(|e| Error::Internal(format!("signed invite: {e}")))?;
    Ok(CheckedPdu { pdu, canonical })
}

/// Keeps the invite for `invitee`, with the room's stripped state.
async fn keep(
    tenant: &Tenant,
    invite: &CheckedPdu,
    invitee: &UserId,
    invite_room_state: &[RawStrippedState],
) -> Result<()> {
    let stripped = stripped_for_clients(invite_room_state).to_string();
    keep_membership(tenant, invite, invitee, "invite", Some(stripped)).await
}

/// Keeps a membership of `user` in a room none of our users is in (an invite, its rejection):
/// the event as an outlier, the membership at a new position of the stream that wakes the
/// user's sync.
pub(crate) async fn keep_membership(
    tenant: &Tenant,
    event: &CheckedPdu,
    user: &UserId,
    membership: &str,
    stripped_state: Option<String>,
) -> Result<()> {
    let pdu = &event.pdu;
    let mut writer = tenant.stream().writer().await;
    let stream = writer
        .next_for(Audience::Room {
            room_id: pdu.room_id.to_string(),
            user: Some(user.to_string()),
        })
        .await?;
    let batch = EventBatch {
        outliers: vec![event.outlier()],
        memberships: vec![MembershipRecord {
            room_id: pdu.room_id.to_string(),
            user_id: user.to_string(),
            membership: membership.to_owned(),
            event_id: pdu.event_id.to_string(),
            stream,
            sender: pdu.sender.to_string(),
            stripped_state,
        }],
        ..EventBatch::default()
    };
    tenant.store().persist_events(&batch).await?;
    writer.publish(stream);
    Ok(())
}

/// Stripped state as clients see it (`type`, `state_key`, `content`, `sender`), from the
/// stripped events or full PDUs (spec v1.16 on) the inviting server sent.
pub(crate) fn stripped_for_clients(invite_room_state: &[RawStrippedState]) -> Value {
    let events = invite_room_state
        .iter()
        .filter_map(|entry| {
            let raw = match entry {
                RawStrippedState::Pdu(pdu) => pdu.get(),
                #[allow(deprecated)]
                RawStrippedState::Stripped(stripped) => stripped.json().get(),
                _ => return None,
            };
            let event: Value = serde_json::from_str(raw).ok()?;
            Some(serde_json::json!({
                "type": event.get("type")?.as_str()?,
                "state_key": event.get("state_key")?.as_str()?,
                "content": event.get("content")?.as_object()?,
                "sender": event.get("sender")?.as_str()?,
            }))
        })
        .collect();
    Value::Array(events)
}

/// The inviting side: sends our invite of `invitee` (built, checked, not yet in the room) to
/// their server with the room's stripped state, as full PDUs, and returns the invite with that
/// server's signature added, which is what goes into the room.
pub(crate) async fn countersign(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_version: &str,
    invite: &Pdu,
    invitee: &UserId,
    stripped: Vec<Box<RawJsonValue>>,
) -> Result<CheckedPdu> {
    let version = RoomVersionId::try_from(room_version)
        .map_err(|e| Error::Internal(format!("stored room version {room_version}: {e}")))?;
    let raw = RawJsonValue::from_string(pdu::canonical_json(&invite.json))
        .map_err(|e| Error::Internal(format!("invite PDU: {e}")))?;
    let request = create_invite::v2::Request::new(
        invite.room_id.clone(),
        invite.event_id.clone(),
        version,
        raw,
        stripped.into_iter().map(RawStrippedState::Pdu).collect(),
    );
    let server = invitee.server_name();
    let answer = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    let signed = received::check(tenant, rules, &invite.room_id, &answer.event).await?;
    if signed.pdu.event_id != invite.event_id {
        return Err(Error::RemoteUnavailable(format!(
            "{server} returned another event than the invite"
        )));
    }
    verify_signature_of(tenant, rules, &signed.pdu, server).await?;
    Ok(signed)
}

/// Checks `server`'s signature on an event (which the checks on receipt leave out when it is
/// neither the sender's server nor one the room version requires).
async fn verify_signature_of(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    server: &ServerName,
) -> Result<()> {
    let missing =
        || Error::RemoteUnavailable(format!("{server} did not sign the invite it returned"));
    let mut redacted = ruma::canonical_json::redact(pdu.json.clone(), &rules.redaction, None)
        .map_err(|e| Error::BadJson(format!("The invite can't be redacted: {e}")))?;
    let Some(CanonicalJsonValue::Object(by_server)) = redacted.get("signatures") else {
        return Err(missing());
    };
    let Some(theirs) = by_server.get(server.as_str()).cloned() else {
        return Err(missing());
    };
    let CanonicalJsonValue::Object(by_key) = &theirs else {
        return Err(missing());
    };
    let key_ids: Vec<&str> = by_key
        .keys()
        .map(String::as_str)
        .filter(|id| id.starts_with("ed25519:"))
        .collect();
    let at = i64::from(pdu.origin_server_ts.get());
    let keys = tenant
        .federation()
        .public_keys_any(server, &key_ids, at)
        .await?;
    let only_theirs = CanonicalJsonObject::from_iter([(server.to_string(), theirs.clone())]);
    redacted.insert("signatures".into(), CanonicalJsonValue::Object(only_theirs));
    ruma::signatures::verify_json(&keys, &redacted)
        .map_err(|e| Error::InvalidSignature(format!("{server}'s signature on the invite: {e}")))
}
