//! Rooms (spec: Client-Server API, "Rooms"; Server-Server API, "PDUs"): the room DAG of each
//! tenant. Every local event goes through [`Rooms::append`]: built as a signed PDU, authorised
//! by the auth rules against the room state, and persisted with its state, stream position and
//! derived data in one step.

pub mod auth;
pub mod client_format;
pub(crate) mod commit;
mod context;
mod create;
pub mod directory;
mod event;
pub(crate) mod heads;
mod membership;
pub mod pdu;
pub mod read;
pub mod relations;
pub mod state;
mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::{
    EventRecord, MembershipRecord, NewEvent, Redaction, RelationRecord, RoomRecord, TxnRecord,
};
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{
    DeviceId, MilliSecondsSinceUnixEpoch, OwnedEventId, RoomId, RoomVersionId, TransactionId,
    UserId,
};

use crate::stream::{Audience, StreamWriter};
use crate::{Error, Result, Tenant};
use commit::TxnState;

pub use client_format::{client_event, client_events};
pub use context::Context;
pub use create::{CreateRoom, Preset};
pub use event::Event;
pub use pdu::{EventDraft, Pdu};
pub use read::{Messages, Page};
pub use relations::RelationsPage;

/// The order of a page of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// Room events a new room gets, in the newest stable version ruma knows.
pub const DEFAULT_ROOM_VERSION: RoomVersionId = RoomVersionId::V12;

/// Prev events an event cites at most; more extremities are merged over several events.
const MAX_PREV_EVENTS: usize = 10;

/// A client's transaction (spec: "Transaction identifiers"): its id, scoped to the device
/// that sent it, makes a send idempotent.
#[derive(Clone, Copy, Debug)]
pub struct Transaction<'a> {
    pub device_id: &'a DeviceId,
    pub txn_id: &'a TransactionId,
}

pub struct Rooms<'a> {
    tenant: &'a Tenant,
}

pub(crate) fn rules_of(version: &str) -> Result<RoomVersionRules> {
    RoomVersionId::try_from(version)
        .ok()
        .and_then(|v| v.rules())
        .ok_or_else(|| Error::Internal(format!("unsupported room version {version}")))
}

/// Whether `version` is a stable room version this server creates and serves.
pub fn is_supported_version(version: &RoomVersionId) -> bool {
    version.rules().is_some_and(|r| {
        matches!(
            r.disposition,
            ruma::room_version_rules::RoomVersionDisposition::Stable
        )
    })
}

impl<'a> Rooms<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    async fn room(&self, room_id: &RoomId) -> Result<RoomRecord> {
        self.tenant
            .store()
            .room(room_id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound("Room not found".into()))
    }

    /// Appends an event by `sender` to the room, building on its head, and queues it for the
    /// committer. The caller holds the tenant's stream writer, which serialises event creation
    /// so prev events and state never race; the event is durable once
    /// [`StreamWriter::finish`] returns.
    pub(crate) async fn append(
        &self,
        writer: &mut StreamWriter<'_>,
        room_id: &RoomId,
        sender: &UserId,
        draft: EventDraft,
        txn: Option<TxnRecord>,
    ) -> Result<Arc<Pdu>> {
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let heads = self.tenant.room_heads();
        let (mut head, epoch) = heads.get(self.tenant, writer, room_id).await?;
        let rules = rules_of(&head.room_version)?;
        let state = cache.group(store, head.state_group).await?;

        let prev_events: Vec<Arc<Pdu>> = head
            .extremities
            .iter()
            .take(MAX_PREV_EVENTS)
            .cloned()
            .collect();
        let content = serde_json::value::to_raw_value(&draft.content)
            .map_err(|e| Error::BadJson(e.to_string()))?;
        let types = auth::auth_types(
            &rules,
            &draft.kind,
            sender,
            draft.state_key.as_deref(),
            &content,
        )?;
        let mut auth_map = HashMap::new();
        let create_key = (StateEventType::RoomCreate, String::new());
        for key in types.iter().chain(std::iter::once(&create_key)) {
            if let Some(id) = state.get(key)
                && let Some(pdu) = cache.pdu(store, id).await?
            {
                auth_map.insert(id.clone(), pdu);
            }
        }
        let auth_ids = auth::select_auth_events(&rules, &state, &types);
        let auth_events: Vec<Arc<Pdu>> = auth_ids
            .iter()
            .filter_map(|id| auth_map.get(id).cloned())
            .collect();

        let key = self.tenant.signing_key().await?;
        let ctx = pdu::PduContext {
            rules: &rules,
            server_name: self.tenant.server_name(),
            key: &key,
            room_id: Some(room_id),
            sender,
            prev_events: &prev_events,
            auth_events: &auth_events,
            origin_server_ts: MilliSecondsSinceUnixEpoch::now(),
        };
        let (pdu, canonical) = pdu::build(&ctx, draft)?;
        let pdu = Arc::new(pdu);
        auth::check(&rules, &pdu, &state, &auth_map)?;

        let redaction = self.redaction_of(&rules, room_id, &pdu, &state).await?;
        let (state_after, new_state_group) = match &pdu.state_key {
            Some(state_key) => {
                let mut after = (*state).clone();
                after.insert(
                    (pdu.kind.to_string().into(), state_key.clone()),
                    pdu.event_id.clone(),
                );
                let group = cache
                    .new_group(store, room_id.as_str(), Some(head.state_group), &after)
                    .await?;
                (group.id, Some(group))
            }
            None => (head.state_group, None),
        };
        let audience = Audience::Room {
            room_id: room_id.to_string(),
            user: (pdu.kind == TimelineEventType::RoomMember)
                .then(|| pdu.state_key.clone())
                .flatten(),
        };
        let stream = writer.next_for(audience).await?;
        let record = EventRecord {
            event_id: pdu.event_id.to_string(),
            room_id: room_id.to_string(),
            stream,
            depth: i64::try_from(pdu.depth).unwrap_or(i64::MAX),
            event_type: pdu.kind.to_string(),
            state_key: pdu.state_key.clone(),
            sender: sender.to_string(),
            origin_server_ts: pdu.origin_server_ts.get().into(),
            pdu: canonical,
            state_before: head.state_group,
            state_after,
            redacted_by: None,
            txn,
            relation: relation_of(&pdu),
        };
        let membership = self.membership_of(&pdu, stream, state_after).await?;
        if let Some(m) = &membership
            && let Ok(user) = UserId::parse(&m.user_id)
        {
            head.set_membership(&user, &m.membership);
        }
        let redacts = redaction
            .as_ref()
            .and_then(|r| OwnedEventId::try_from(r.event_id.as_str()).ok());
        let new = NewEvent {
            event: record,
            extremities: vec![pdu.event_id.to_string()],
            new_state_group,
            room_state_group: state_after,
            membership,
            redaction,
        };
        let built = commit::Built {
            new,
            room_id: room_id.to_owned(),
            rules,
            members: head.joined.clone(),
            redacts: redacts.clone(),
            creates: None,
        };
        let ticket = self.tenant.committer().enqueue(self.tenant, built, epoch)?;
        writer.hand_over(stream, ticket);
        cache.remember(pdu.clone());
        if let Some(id) = &redacts {
            cache.forget(id);
        }
        head.state_group = state_after;
        head.extremities = vec![pdu.clone()];
        head.last_stream = stream;
        heads.set(self.tenant, writer, room_id, head, epoch);
        Ok(pdu)
    }

    /// For an `m.room.redaction` of an event in this room: its redacted form, once the sender
    /// is allowed to redact it (their own event, or enough power).
    async fn redaction_of(
        &self,
        rules: &RoomVersionRules,
        room_id: &RoomId,
        pdu: &Pdu,
        state: &state::RoomState,
    ) -> Result<Option<Redaction>> {
        if pdu.kind != TimelineEventType::RoomRedaction {
            return Ok(None);
        }
        let Some(target_id) = &pdu.redacts else {
            return Err(Error::BadJson("A redaction needs `redacts`".into()));
        };
        let store = self.tenant.store();
        let Some(target) = self.tenant.state_cache().pdu(store, target_id).await? else {
            return Ok(None);
        };
        if target.room_id != room_id {
            return Ok(None);
        }
        if target.sender != pdu.sender {
            let levels = read::power_levels(self.tenant, rules, state).await?;
            if levels.for_user(&pdu.sender) < levels.redact {
                return Err(Error::Forbidden(
                    "You don't have permission to redact events of others".into(),
                ));
            }
        }
        let redacted = ruma::canonical_json::redact(target.json.clone(), &rules.redaction, None)
            .map_err(|e| Error::Internal(format!("redaction failed: {e}")))?;
        Ok(Some(Redaction {
            event_id: target.event_id.to_string(),
            redacted_pdu: ruma::CanonicalJsonValue::Object(redacted).to_string(),
            redacted_by: pdu.event_id.to_string(),
        }))
    }

    async fn membership_of(
        &self,
        pdu: &Pdu,
        stream: i64,
        state_after: i64,
    ) -> Result<Option<MembershipRecord>> {
        if pdu.kind != TimelineEventType::RoomMember {
            return Ok(None);
        }
        let Some(target) = &pdu.state_key else {
            return Ok(None);
        };
        let membership = pdu
            .content_value()
            .get("membership")
            .and_then(|m| m.as_str())
            .unwrap_or("leave")
            .to_owned();
        let stripped_state = if membership == "invite" || membership == "knock" {
            Some(self.stripped_state(state_after).await?)
        } else {
            None
        };
        Ok(Some(MembershipRecord {
            room_id: pdu.room_id.to_string(),
            user_id: target.clone(),
            membership,
            event_id: pdu.event_id.to_string(),
            stream,
            sender: pdu.sender.to_string(),
            stripped_state,
        }))
    }

    /// The stripped state shown to invitees and knockers (spec: "Stripped state").
    async fn stripped_state(&self, group: i64) -> Result<String> {
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let state = cache.group(store, group).await?;
        let kinds = [
            StateEventType::RoomCreate,
            StateEventType::RoomJoinRules,
            StateEventType::RoomName,
            StateEventType::RoomAvatar,
            StateEventType::RoomCanonicalAlias,
            StateEventType::RoomEncryption,
            StateEventType::RoomTopic,
        ];
        let mut events = Vec::new();
        for kind in kinds {
            if let Some(id) = state.get(&(kind, String::new()))
                && let Some(pdu) = cache.pdu(store, id).await?
            {
                events.push(serde_json::json!({
                    "type": pdu.kind.to_string(),
                    "state_key": pdu.state_key,
                    "content": pdu.content_value(),
                    "sender": pdu.sender,
                }));
            }
        }
        Ok(serde_json::Value::Array(events).to_string())
    }

    /// Sends a message or state event on behalf of a local user; idempotent per transaction.
    pub async fn send(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        draft: EventDraft,
        txn: Option<Transaction<'_>>,
    ) -> Result<OwnedEventId> {
        let txn = txn.map(|t| TxnRecord {
            localpart: sender.localpart().to_owned(),
            device_id: t.device_id.to_string(),
            txn_id: t.txn_id.to_string(),
        });
        let stream = self.tenant.stream();
        let committer = self.tenant.committer();
        // Looked up before the write lock, so senders don't read the store one after another.
        let since = committer.committed_txns();
        if let Some(txn) = &txn
            && let Some(existing) = self.tenant.store().event_id_by_txn(txn).await?
        {
            return parse_event_id(existing);
        }
        let mut writer = stream.writer().await;
        while let Some(txn) = &txn {
            match committer.txn_state(txn, since) {
                TxnState::New => break,
                TxnState::Committed(event_id) => return parse_event_id(event_id),
                TxnState::Pending(position) => {
                    // A retry while the first attempt commits: look again once it has ended.
                    drop(writer);
                    stream.settled(position).await;
                    writer = stream.writer().await;
                }
                TxnState::Unknown => match self.tenant.store().event_id_by_txn(txn).await? {
                    Some(existing) => return parse_event_id(existing),
                    None => break,
                },
            }
        }
        let joined = match self
            .tenant
            .room_heads()
            .get(self.tenant, &writer, room_id)
            .await
        {
            Ok((head, _)) => head.is_joined(sender),
            Err(Error::NotFound(_)) => false,
            Err(other) => return Err(other),
        };
        if !joined {
            return Err(not_joined(room_id));
        }
        let pdu = self
            .append(&mut writer, room_id, sender, draft, txn)
            .await?;
        writer.finish().await?;
        Ok(pdu.event_id.clone())
    }

    /// The room, when `user` is joined to it; `403` otherwise, as for a room that doesn't exist
    /// (so non-members learn nothing about it).
    async fn room_for_member(&self, user: &UserId, room_id: &RoomId) -> Result<RoomRecord> {
        let membership = self
            .tenant
            .store()
            .membership(room_id.as_str(), user.as_str())
            .await?;
        if membership.is_none_or(|m| m.membership != "join") {
            return Err(not_joined(room_id));
        }
        self.room(room_id).await
    }
}

fn parse_event_id(stored: String) -> Result<OwnedEventId> {
    OwnedEventId::try_from(stored).map_err(|_| Error::Internal("bad stored event id".into()))
}

fn not_joined(room_id: &RoomId) -> Error {
    Error::Forbidden(format!("You are not joined to {room_id}"))
}

fn relation_of(pdu: &Pdu) -> Option<RelationRecord> {
    let content = pdu.content_value();
    let relates_to = content.get("m.relates_to")?;
    let rel_type = relates_to.get("rel_type")?.as_str()?;
    let parent = relates_to.get("event_id")?.as_str()?;
    Some(RelationRecord {
        rel_type: rel_type.to_owned(),
        parent_event_id: parent.to_owned(),
    })
}
