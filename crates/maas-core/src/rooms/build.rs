//! The first stage of the event pipeline for local events: a full PDU for the room's version,
//! built on the room's head (spec: Server-Server API, "PDUs"). Its prev events are the forward
//! extremities, its auth events what the auth rules ask for from the current state; it is
//! hashed and signed with the tenant's key. Received events arrive built and signed.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::room_version_rules::RoomVersionRules;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, RoomId, UserId};

use super::heads::RoomHead;
use super::pdu::{self, EventDraft, Pdu, PduContext};
use super::state::RoomState;
use super::{auth, check};
use crate::{Error, Result, Tenant};

/// Prev events an event cites at most; more extremities are merged over several events.
const MAX_PREV_EVENTS: usize = 10;

/// A local event, built and signed.
pub(crate) struct Built {
    pub(crate) pdu: Arc<Pdu>,
    /// Its canonical JSON, the stored form.
    pub(crate) canonical: String,
    /// The PDUs of the state entries the auth rules consult for it (its auth events among
    /// them), by id.
    pub(crate) auth_pdus: HashMap<OwnedEventId, Arc<Pdu>>,
}

/// Builds `draft` by `sender` on `head`, whose state is `state`.
pub(crate) async fn event(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    head: &RoomHead,
    state: &RoomState,
    sender: &UserId,
    draft: EventDraft,
) -> Result<Built> {
    if draft.kind.to_string().is_empty() {
        return Err(Error::InvalidParam(
            "The event type must not be empty".into(),
        ));
    }
    let content = serde_json::value::to_raw_value(&draft.content)
        .map_err(|e| Error::BadJson(e.to_string()))?;
    let types = auth::auth_types(
        rules,
        &draft.kind,
        sender,
        draft.state_key.as_deref(),
        &content,
    )?;
    let auth_pdus = check::consulted(tenant, state, &types).await?;
    let auth_events: Vec<Arc<Pdu>> = auth::select_auth_events(rules, state, &types)
        .iter()
        .filter_map(|id| auth_pdus.get(id).cloned())
        .collect();
    let prev_events: Vec<Arc<Pdu>> = head
        .extremities
        .iter()
        .take(MAX_PREV_EVENTS)
        .cloned()
        .collect();
    let key = tenant.signing_key().await?;
    let ctx = PduContext {
        rules,
        server_name: tenant.server_name(),
        key: &key,
        room_id: Some(room_id),
        sender,
        prev_events: &prev_events,
        auth_events: &auth_events,
        origin_server_ts: MilliSecondsSinceUnixEpoch::now(),
    };
    let (pdu, canonical) = pdu::build(&ctx, draft)?;
    Ok(Built {
        pdu: Arc::new(pdu),
        canonical,
        auth_pdus,
    })
}

/// Builds a room's `m.room.create` event: no prev or auth events. `room_id` is `None` from
/// version 12 on, where the room id is the event's hash. Create events of a tenant get
/// strictly increasing timestamps, so two rooms created alike get different ids.
pub(crate) async fn create_event(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    room_id: Option<&RoomId>,
    sender: &UserId,
    draft: EventDraft,
) -> Result<Built> {
    let key = tenant.signing_key().await?;
    let ctx = PduContext {
        rules,
        server_name: tenant.server_name(),
        key: &key,
        room_id,
        sender,
        prev_events: &[],
        auth_events: &[],
        origin_server_ts: tenant.room_heads().next_create_ts(),
    };
    let (pdu, canonical) = pdu::build(&ctx, draft)?;
    Ok(Built {
        pdu: Arc::new(pdu),
        canonical,
        auth_pdus: HashMap::new(),
    })
}
