//! Rooms (spec: Client-Server API, "Rooms"; Server-Server API, "PDUs"): the room DAG of each
//! tenant. Every event takes the one event pipeline ([`pipeline`]): built as a signed PDU (or
//! received as one), checked against the auth rules, accepted with its state and stream
//! position, then derived from by the tenant's steps and committed in batches.

pub mod admin;
pub mod auth;
pub(crate) mod build;
pub(crate) mod check;
pub mod client_format;
pub(crate) mod commit;
mod context;
mod create;
pub mod directory;
mod event;
pub(crate) mod forget;
pub(crate) mod heads;
pub mod hierarchy;
pub(crate) mod lock;
mod membership;
pub mod pdu;
pub(crate) mod pipeline;
pub(crate) mod purge;
pub mod read;
pub mod redact_user;
pub mod relations;
mod shutdown;
pub mod state;
pub(crate) mod steps;
pub mod tasks;
pub(crate) mod transactions;
mod upgrade;

use std::sync::Arc;

use ruma::room_version_rules::RoomVersionRules;
use ruma::{DeviceId, EventId, OwnedEventId, RoomId, RoomVersionId, TransactionId, UserId};

use crate::store::{RoomRecord, TxnRecord};
use crate::{Error, Result, Tenant};
use transactions::{TxnClaim, TxnState};

pub use check::Verdict;
pub use client_format::{client_event, client_events};
pub use context::Context;
pub use create::{CreateRoom, Preset};
pub use event::Event;
pub use pdu::{EventDraft, Pdu};
pub use read::{Messages, Page};
pub use relations::RelationsPage;
pub use shutdown::{RoomDeletion, ShutdownOutcome};

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

/// Whose a client transaction is, for this attempt to send it.
enum Claimed {
    /// Sent already, as this event.
    Sent(OwnedEventId),
    Ours(TxnClaim),
}

/// A client's transaction (spec: "Transaction identifiers"): its id, scoped to the device
/// that sent it and to the request path, makes a send idempotent.
#[derive(Clone, Copy, Debug)]
pub struct Transaction<'a> {
    pub device_id: &'a DeviceId,
    pub txn_id: &'a TransactionId,
    pub endpoint: TxnEndpoint,
}

/// The endpoint a transaction id was used on; with the room and the event type (or redacted
/// event) it names, the request path that scopes the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnEndpoint {
    /// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`.
    Send,
    /// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.
    Redact,
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

    /// Sends a message or state event on behalf of a local user; idempotent per transaction.
    pub async fn send(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        draft: EventDraft,
        txn: Option<Transaction<'_>>,
    ) -> Result<OwnedEventId> {
        self.tenant.check_message_rate()?;
        self.tenant.check_storage_quota().await?;
        if let Some(fake) = self.tenant.accounts().screen_send(sender, &draft).await? {
            return Ok(fake);
        }
        let claim = match txn {
            Some(txn) => match self.claim(sender, room_id, &draft, txn).await? {
                Claimed::Sent(event_id) => return Ok(event_id),
                Claimed::Ours(claim) => Some(claim),
            },
            None => None,
        };
        let mut writer = self.tenant.room_locks().lock(room_id).await;
        let joined = match self.tenant.room_heads().get(self.tenant, &writer).await {
            Ok((head, _)) => head.is_joined(sender),
            Err(Error::NotFound(_)) => false,
            Err(other) => return Err(other),
        };
        if !joined {
            return Err(not_joined(room_id));
        }
        let pdu = self.append(&mut writer, sender, draft, claim).await?;
        writer.finish().await?;
        Ok(pdu.event_id.clone())
    }

    /// Claims a client transaction for this attempt, unless it was sent already: then its
    /// event. A retry while another attempt holds it waits for that attempt.
    async fn claim(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        draft: &EventDraft,
        txn: Transaction<'_>,
    ) -> Result<Claimed> {
        let record = TxnRecord {
            localpart: sender.localpart().to_owned(),
            device_id: txn.device_id.to_string(),
            scope: txn_scope(txn.endpoint, room_id, draft),
            txn_id: txn.txn_id.to_string(),
        };
        let txns = self.tenant.transactions();
        loop {
            // Read before the store: what commits after it is still remembered in memory.
            let since = txns.committed();
            if let Some(existing) = self.tenant.store().event_id_by_txn(&record).await? {
                return parse_event_id(existing).map(Claimed::Sent);
            }
            loop {
                match txns.claim(record.clone(), since) {
                    TxnState::New(claim) => return Ok(Claimed::Ours(claim)),
                    TxnState::Committed(event_id) => {
                        return parse_event_id(event_id).map(Claimed::Sent);
                    }
                    TxnState::Pending(mut attempt) => {
                        // Ends (with an error) when the other attempt commits or gives up.
                        let _ = attempt.changed().await;
                    }
                    TxnState::Unknown => break,
                }
            }
        }
    }

    /// A stored event as the PDU other servers receive (the federation API serves these).
    pub async fn pdu(&self, event_id: &EventId) -> Result<Arc<Pdu>> {
        self.tenant
            .state_cache()
            .pdu(self.tenant.store(), event_id)
            .await?
            .ok_or_else(|| Error::NotFound("Event not found".into()))
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

/// The request path a transaction id is scoped to, as a compact JSON array of the endpoint and
/// its path parameters (stored and compared as such).
fn txn_scope(endpoint: TxnEndpoint, room_id: &RoomId, draft: &EventDraft) -> String {
    let scope = match endpoint {
        TxnEndpoint::Send => ["send", room_id.as_str(), &draft.kind.to_string()].map(str::to_owned),
        TxnEndpoint::Redact => [
            "redact",
            room_id.as_str(),
            draft.redacts.as_ref().map_or("", |id| id.as_str()),
        ]
        .map(str::to_owned),
    };
    serde_json::to_string(&scope).unwrap_or_default()
}

fn parse_event_id(stored: String) -> Result<OwnedEventId> {
    OwnedEventId::try_from(stored).map_err(|_| Error::Internal("bad stored event id".into()))
}

fn not_joined(room_id: &RoomId) -> Error {
    Error::Forbidden(format!("You are not joined to {room_id}"))
}
