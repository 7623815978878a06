//! Joining a room of other servers (spec: Server-Server API, "Joining Rooms", the joining
//! server's side): a resident server's `make_join` gives a join template, we sign it, and its
//! `send_join` answers with the room's state and auth chain. Those are checked as any received
//! event is (signatures, hashes, the auth rules, each against its own auth events) before the
//! room starts here with that state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ruma::api::federation::event::get_missing_events;
use ruma::api::federation::membership::{create_join_event, prepare_join_event};
use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedServerName, RoomId, RoomVersionId, ServerName,
    UInt, UserId,
};
use serde_json::value::RawValue as RawJsonValue;

use super::partial_state;
use super::received::{self, CheckedPdu};
use crate::rooms::pdu::{self, Pdu};
use crate::rooms::pipeline::JoinedRoom;
use crate::rooms::state::RoomState;
use crate::rooms::{auth, check, is_supported_version, rules_of};
use crate::store::{MembershipRecord, RoomRecord};
use crate::{Error, Result, Tenant, secrets};

/// Events a join again asks for at most, of those missed since our users left.
const MISSED_LIMIT: u32 = 50;

/// The servers to ask for a join: those the client named, then the one in the room id (room
/// versions before 12 carry the creator's), never ourselves.
pub(crate) fn candidates(
    tenant: &Tenant,
    room_id: &RoomId,
    via: &[OwnedServerName],
) -> Vec<OwnedServerName> {
    let mut seen = BTreeSet::new();
    via.iter()
        .cloned()
        .chain(room_id.server_name().map(ToOwned::to_owned))
        .filter(|server| server != tenant.server_name())
        .filter(|server| seen.insert(server.clone()))
        .collect()
}

/// Asks each of `servers` in turn to join `user` to `room_id`, with `content` (the member
/// event's content, `membership: join` and the user's profile); returns the checked room of
/// the first that does, or the last server's refusal.
pub(crate) async fn join(
    tenant: &Tenant,
    servers: &[OwnedServerName],
    user: &UserId,
    room_id: &RoomId,
    content: &serde_json::Value,
) -> Result<JoinedRoom> {
    if tenant.store().room(room_id.as_str()).await?.is_none() {
        tenant.check_room_quota().await?;
        tenant.check_storage_quota().await?;
    }
    let mut last = Error::NotFound("No known servers for this room".into());
    for server in servers {
        match join_through(tenant, server, user, room_id, content).await {
            Ok(joined) => return Ok(joined),
            Err(e) => {
                tracing::info!(%room_id, %server, error = %e, "joining through a server failed");
                last = e;
            }
        }
    }
    Err(last)
}

async fn join_through(
    tenant: &Tenant,
    server: &ServerName,
    user: &UserId,
    room_id: &RoomId,
    content: &serde_json::Value,
) -> Result<JoinedRoom> {
    let mut request = prepare_join_event::v1::Request::new(room_id.to_owned(), user.to_owned());
    request.ver = supported_versions();
    let template = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    // A server that names no version means version 1 (spec: `make_join`).
    let version = template.room_version.unwrap_or(RoomVersionId::V1);
    if !is_supported_version(&version) {
        return Err(Error::IncompatibleRoomVersion(version.to_string()));
    }
    let rules = rules_of(version.as_str())?;
    let join = sign(tenant, &rules, room_id, user, &template.event, content).await?;
    let raw = received_form(&join.pdu)?;
    let mut request =
        create_join_event::v2::Request::new(room_id.to_owned(), join.pdu.event_id.clone(), raw);
    // The members come later, in the background: the join doesn't wait for a large room's.
    request.omit_members = true;
    let answer = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?
        .room_state;
    // For a restricted room, the resident server countersigns the join and sends it back.
    let join = match &answer.event {
        Some(countersigned) => {
            let checked = received::check(tenant, &rules, room_id, countersigned).await?;
            if checked.pdu.event_id != join.pdu.event_id {
                return Err(out_of_spec(server, "send_join returned another event"));
            }
            checked
        }
        None => join,
    };
    let (events, state_ids) =
        checked_events(tenant, &rules, room_id, &answer.auth_chain, &answer.state).await;
    let partial = answer
        .members_omitted
        .then(|| partial_state::servers_to_ask(tenant, server, answer.servers_in_room.as_deref()));
    let mut joined = joined_room(
        server,
        user,
        version.as_str(),
        &rules,
        join,
        &state_ids,
        events,
        partial,
    )?;
    joined.missed = missed(tenant, server, &rules, &joined.join.pdu).await;
    Ok(joined)
}

/// Of a room we were in before, the events between our last ones and our join again: what
/// our users missed while none of them was in it, asked of the server that let us in
/// (`get_missing_events`), checked, oldest first. A longer gap is left as it is.
async fn missed(
    tenant: &Tenant,
    server: &ServerName,
    rules: &RoomVersionRules,
    join: &Pdu,
) -> Vec<CheckedPdu> {
    let room_id = &join.room_id;
    let ours = match tenant.store().forward_extremities(room_id.as_str()).await {
        Ok(ours) => ours,
        Err(e) => {
            tracing::info!(%room_id, error = %e, "the room's last events here not read");
            return Vec::new();
        }
    };
    let earliest: Vec<OwnedEventId> = ours
        .iter()
        .filter_map(|id| OwnedEventId::try_from(id.as_str()).ok())
        .collect();
    if earliest.is_empty() {
        return Vec::new();
    }
    let mut request = get_missing_events::v1::Request::new(
        room_id.clone(),
        earliest,
        vec![join.event_id.clone()],
    );
    request.limit = UInt::from(MISSED_LIMIT);
    let answer = match tenant
        .federation()
        .send_signed(tenant, server, request)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!(%room_id, %server, error = %e, "missed events not given");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for raw in answer.events.iter().take(MISSED_LIMIT as usize) {
        match received::check(tenant, rules, room_id, raw).await {
            Ok(checked) if checked.pdu.event_id != join.event_id => found.push(checked),
            Ok(_) => {}
            Err(e) => tracing::info!(%server, error = %e, "a missed event failed its checks"),
        }
    }
    found.sort_by_key(|c| c.pdu.depth);
    found
}

/// Every stable version, for `ver`: the resident server picks the template's.
pub(crate) fn supported_versions() -> Vec<RoomVersionId> {
    use RoomVersionId as V;
    [
        V::V1,
        V::V2,
        V::V3,
        V::V4,
        V::V5,
        V::V6,
        V::V7,
        V::V8,
        V::V9,
        V::V10,
        V::V11,
        V::V12,
    ]
    .into_iter()
    .filter(is_supported_version)
    .collect()
}

/// Our user's membership event (`content` says which), from a resident server's `make_join`
/// or `make_leave` template: our content, timestamp, hashes and signature on the room's head
/// the template names.
pub(crate) async fn sign(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    user: &UserId,
    template: &RawJsonValue,
    content: &serde_json::Value,
) -> Result<CheckedPdu> {
    let membership = content["membership"].as_str().unwrap_or_default();
    let mut json: CanonicalJsonObject = serde_json::from_str(template.get())
        .map_err(|e| Error::RemoteUnavailable(format!("make_{membership} gave no event: {e}")))?;
    let field = |json: &CanonicalJsonObject, key: &str| match json.get(key) {
        Some(CanonicalJsonValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let is_ours = field(&json, "type").as_deref() == Some("m.room.member")
        && field(&json, "state_key").as_deref() == Some(user.as_str())
        && field(&json, "sender").as_deref() == Some(user.as_str())
        && field(&json, "room_id").as_deref() == Some(room_id.as_str());
    let mut merged = match json.remove("content") {
        Some(CanonicalJsonValue::Object(content)) => content,
        _ => CanonicalJsonObject::new(),
    };
    let same_membership = matches!(
        merged.get("membership"),
        Some(CanonicalJsonValue::String(m)) if m == membership
    );
    if !is_ours || !same_membership {
        return Err(Error::RemoteUnavailable(format!(
            "make_{membership} gave an event that is not {user}'s {membership} of {room_id}"
        )));
    }
    // Ours where we set it; the resident server's other keys (a restricted join's
    // authorising user) stay.
    if let Ok(CanonicalJsonValue::Object(ours)) = CanonicalJsonValue::try_from(content.clone()) {
        merged.extend(ours);
    }
    json.insert("content".into(), CanonicalJsonValue::Object(merged));
    let now = MilliSecondsSinceUnixEpoch::now().get();
    json.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(now.into()),
    );
    json.insert(
        "origin".into(),
        CanonicalJsonValue::String(tenant.server_name().to_string()),
    );
    for key in ["signatures", "hashes", "unsigned", "event_id"] {
        json.remove(key);
    }
    if rules.event_id_format == ruma::room_version_rules::EventIdFormatVersion::V1 {
        let id = format!(
            "${}:{}",
            secrets::random_alphanumeric(18),
            tenant.server_name()
        );
        json.insert("event_id".into(), CanonicalJsonValue::String(id));
    }
    let key = tenant.signing_key().await?;
    ruma::signatures::hash_and_sign_event(
        tenant.server_name().as_str(),
        &*key,
        &mut json,
        &rules.redaction,
    )
    .map_err(|e| Error::BadJson(format!("The join can't be signed: {e}")))?;
    let event_id = pdu::event_id_of(&json, rules)?;
    let canonical = pdu::canonical_json(&json);
    let pdu = Pdu::from_json(event_id, room_id, json).map_err(|e| {
        Error::RemoteUnavailable(format!("make_{membership} gave a bad event: {e}"))
    })?;
    Ok(CheckedPdu { pdu, canonical })
}

/// A PDU as sent: its canonical JSON.
pub(crate) fn received_form(pdu: &Pdu) -> Result<Box<RawJsonValue>> {
    RawJsonValue::from_string(pdu::canonical_json(&pdu.json))
        .map_err(|e| Error::Internal(format!("join PDU: {e}")))
}

/// The events of an answer (auth chain and state, of `send_join` or `/state`) that pass the
/// first checks and the auth rules against their own auth events, by id, and the ids of the
/// state's. An event whose auth events are missing or rejected is rejected too.
pub(crate) async fn checked_events(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    auth_chain: &[Box<RawJsonValue>],
    state: &[Box<RawJsonValue>],
) -> (HashMap<OwnedEventId, CheckedPdu>, Vec<OwnedEventId>) {
    let mut received = HashMap::new();
    let mut state_ids = Vec::with_capacity(state.len());
    let listed = auth_chain
        .iter()
        .map(|raw| (raw, false))
        .chain(state.iter().map(|raw| (raw, true)));
    for (raw, in_state) in listed {
        match received::check(tenant, rules, room_id, raw).await {
            Ok(checked) if check::well_formed(&checked.pdu).is_ok() => {
                if in_state {
                    state_ids.push(checked.pdu.event_id.clone());
                }
                received.insert(checked.pdu.event_id.clone(), checked);
            }
            Ok(checked) => tracing::info!(event_id = %checked.pdu.event_id, "malformed state"),
            Err(e) => tracing::info!(%room_id, error = %e, "a bad event of the room's state"),
        }
    }
    (authorized(rules, room_id, received), state_ids)
}

/// The events allowed by the auth rules against the state their own auth events form,
/// checked auth events first.
fn authorized(
    rules: &RoomVersionRules,
    room_id: &RoomId,
    mut pending: HashMap<OwnedEventId, CheckedPdu>,
) -> HashMap<OwnedEventId, CheckedPdu> {
    let implied_create = (!rules.event_format.allow_room_create_in_auth_events)
        .then(|| check::create_event_id(room_id).ok())
        .flatten();
    let mut accepted: HashMap<OwnedEventId, CheckedPdu> = HashMap::new();
    let mut pdus: HashMap<OwnedEventId, Arc<Pdu>> = HashMap::new();
    loop {
        let ready: Vec<OwnedEventId> = pending
            .values()
            .filter(|c| {
                auth_events_of(&c.pdu, implied_create.as_ref())
                    .all(|id| pdus.contains_key(id) || *id == c.pdu.event_id)
            })
            .map(|c| c.pdu.event_id.clone())
            .collect();
        if ready.is_empty() {
            break;
        }
        for id in ready {
            let Some(checked) = pending.remove(&id) else {
                continue;
            };
            let mut state = RoomState::new();
            for auth_id in auth_events_of(&checked.pdu, implied_create.as_ref()) {
                if let Some(auth_event) = pdus.get(auth_id)
                    && let Some(key) = &auth_event.state_key
                {
                    state.insert(
                        (auth_event.kind.to_string().into(), key.clone()),
                        auth_id.clone(),
                    );
                }
            }
            match auth::check(rules, &checked.pdu, &state, &pdus) {
                Ok(()) => {
                    pdus.insert(id.clone(), Arc::new(checked.pdu.clone()));
                    accepted.insert(id, checked);
                }
                Err(e) => tracing::info!(event_id = %id, error = %e, "state event rejected"),
            }
        }
    }
    for id in pending.keys() {
        tracing::info!(event_id = %id, "state event rejected: its auth events are missing");
    }
    accepted
}

/// An event's auth events, with the create event its room id stands for from version 12 on
/// (but not for the create event itself).
fn auth_events_of<'a>(
    pdu: &'a Pdu,
    implied_create: Option<&'a OwnedEventId>,
) -> impl Iterator<Item = &'a OwnedEventId> {
    let implied = implied_create.filter(|id| **id != pdu.event_id);
    pdu.auth_events.iter().chain(implied)
}

/// The room as it starts here: the state the answer lists (those of its events that passed),
/// which must allow our join. With members omitted (`partial`: the servers to ask for them),
/// the memberships the join rests on complete the state it is checked against: they are the
/// resident server's current ones.
#[allow(clippy::too_many_arguments)]
fn joined_room(
    server: &ServerName,
    user: &UserId,
    room_version: &str,
    rules: &RoomVersionRules,
    join: CheckedPdu,
    state_ids: &[OwnedEventId],
    events: HashMap<OwnedEventId, CheckedPdu>,
    partial: Option<Vec<OwnedServerName>>,
) -> Result<JoinedRoom> {
    let mut state = RoomState::new();
    let mut state_pdus = Vec::new();
    let join_members = join
        .pdu
        .auth_events
        .iter()
        .filter(|_| partial.is_some())
        .filter(|id| {
            events
                .get(*id)
                .is_some_and(|c| c.pdu.kind == TimelineEventType::RoomMember)
        });
    let listed: Vec<&OwnedEventId> = state_ids.iter().chain(join_members).collect();
    for id in listed {
        let Some(checked) = events.get(id) else {
            continue;
        };
        let pdu = &checked.pdu;
        let Some(key) = &pdu.state_key else {
            continue;
        };
        let key = (pdu.kind.to_string().into(), key.clone());
        if state.contains_key(&key) {
            continue;
        }
        state.insert(key, pdu.event_id.clone());
        state_pdus.push(Arc::new(pdu.clone()));
    }
    let create_key = (StateEventType::RoomCreate, String::new());
    let create = state
        .get(&create_key)
        .and_then(|id| events.get(id))
        .ok_or_else(|| out_of_spec(server, "send_join gave no valid create event"))?;
    let created_version = create.pdu.content_value()["room_version"]
        .as_str()
        .unwrap_or("1")
        .to_owned();
    if created_version != room_version {
        return Err(out_of_spec(
            server,
            "the room's create event names another version",
        ));
    }
    let by_id: HashMap<OwnedEventId, Arc<Pdu>> = state_pdus
        .iter()
        .map(|p| (p.event_id.clone(), p.clone()))
        .chain(
            join.pdu
                .auth_events
                .iter()
                .filter_map(|id| events.get(id))
                .map(|c| (c.pdu.event_id.clone(), Arc::new(c.pdu.clone()))),
        )
        .collect();
    auth::check(rules, &join.pdu, &state, &by_id)
        .map_err(|e| Error::Forbidden(format!("The room's state does not allow the join: {e}")))?;
    let room = RoomRecord {
        room_id: join.pdu.room_id.to_string(),
        room_version: room_version.to_owned(),
        creator: create.pdu.sender.to_string(),
        created_ts: create.pdu.origin_server_ts.get().into(),
        published: false,
        state_group: 0,
    };
    let memberships = state_pdus
        .iter()
        .filter(|p| p.kind == TimelineEventType::RoomMember)
        .filter(|p| p.state_key.as_deref() != Some(user.as_str()))
        .filter_map(|p| membership_of(p))
        .collect();
    let outliers = events.values().map(CheckedPdu::outlier).collect();
    Ok(JoinedRoom {
        join,
        room,
        state,
        state_pdus,
        outliers,
        memberships,
        partial,
        missed: Vec::new(),
    })
}

fn membership_of(pdu: &Pdu) -> Option<MembershipRecord> {
    let membership = pdu.content_value()["membership"].as_str()?.to_owned();
    Some(MembershipRecord {
        room_id: pdu.room_id.to_string(),
        user_id: pdu.state_key.clone()?,
        membership,
        event_id: pdu.event_id.to_string(),
        stream: 0,
        sender: pdu.sender.to_string(),
        stripped_state: None,
    })
}

fn out_of_spec(server: &ServerName, what: &str) -> Error {
    Error::RemoteUnavailable(format!("{server}: {what}"))
}
