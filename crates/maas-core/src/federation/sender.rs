//! The federation sender (spec: Server-Server API, "Transactions"): the event step that queues
//! each of the tenant's own events for the other servers in its room, in the event's own
//! transaction, and one task per destination that delivers the queue as transactions of at
//! most 50 PDUs and 100 EDUs, retried with backoff until the destination acknowledges them.
//! The PDU queue is stored, so neither a destination being down nor our restart loses an
//! event; so are the EDUs end-to-end encryption relies on (to-device messages, device list
//! and signing key updates). The ephemeral ones (typing, receipts, presence) wait in memory,
//! the oldest dropped first when a destination stays away.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::Mutex;
use ruma::api::federation::transactions::edu::Edu;
use ruma::api::federation::transactions::send_transaction_message;
use ruma::events::TimelineEventType;
use ruma::serde::Raw;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedServerName, OwnedTransactionId, RoomId, ServerName, UserId,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::rooms::steps::{Accepted, Derived, EventStep};
use crate::store::{NewEvent, OutboundPduRecord, QueuedEdu, QueuedPdu};
use crate::tenants::WeakTenant;
use crate::{Error, Result, Tenant, secrets};

/// The spec's bounds on PDUs and EDUs in one transaction.
const MAX_PDUS_PER_TRANSACTION: u32 = 50;
const MAX_EDUS_PER_TRANSACTION: usize = 100;
/// EDUs kept per destination at most while it is unreachable.
const MAX_QUEUED_EDUS: usize = 1000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Retries stay below the idle time after which a tenant is unloaded, so a tenant keeps
/// delivering while it has something queued. A retry of a destination that keeps failing
/// costs nothing: the network transport backs it off for up to an hour on its own.
const LAST_RETRY: Duration = Duration::from_secs(300);

/// Queues the tenant's own events for the servers of the room's members.
#[derive(Default)]
pub(crate) struct FederationStep;

#[async_trait]
impl EventStep for FederationStep {
    fn name(&self) -> &'static str {
        "federation sender"
    }

    async fn derive(&self, tenant: &Tenant, event: &Accepted, into: &mut Derived) -> Result<()> {
        let relayed = tenant.sender().take_relay(&event.new.event.event_id);
        // While the room's members are being fetched, to the servers known to be in it too.
        let partial = tenant.partial_rooms().servers(&event.room_id);
        let destinations = destinations_of(tenant.server_name(), event, relayed, partial)?;
        if destinations.is_empty() {
            return Ok(());
        }
        for destination in &destinations {
            into.outbound_pdus.push(OutboundPduRecord {
                destination: destination.to_string(),
                stream: event.new.event.stream,
                event_id: event.new.event.event_id.clone(),
            });
        }
        tenant.sender().note(destinations);
        tenant.sender().mark_pending(tenant);
        Ok(())
    }

    fn committed(&self, tenant: &Tenant, _events: &[NewEvent]) {
        tenant.sender().wake_noted(tenant);
    }
}

/// The servers an event goes to: those of the room's joined members after it, and the target
/// of a membership change (an invitee, someone leaving or banned), but never our own nor the
/// sender's. Only our own users' events, each server sending its own, and those we relay: a
/// join that came through our `send_join` reaches the room's other servers through us. `also`
/// are servers in the room whose members aren't known here yet.
fn destinations_of(
    me: &ServerName,
    event: &Accepted,
    relayed: bool,
    also: Vec<OwnedServerName>,
) -> Result<BTreeSet<OwnedServerName>> {
    let record = &event.new.event;
    let sender = UserId::parse(&record.sender)
        .map_err(|e| Error::Internal(format!("stored sender {}: {e}", record.sender)))?;
    if sender.server_name() != me && !relayed {
        return Ok(BTreeSet::new());
    }
    let mut servers: BTreeSet<OwnedServerName> = event
        .members
        .iter()
        .map(|user| user.server_name().to_owned())
        .chain(also)
        .collect();
    if record.event_type == TimelineEventType::RoomMember.to_string()
        && let Some(target) = record.state_key.as_deref()
        && let Ok(target) = UserId::parse(target)
    {
        servers.insert(target.server_name().to_owned());
    }
    servers.remove(me);
    servers.remove(sender.server_name());
    Ok(servers)
}

/// The tenant's delivery tasks, one per destination with something queued.
#[derive(Default)]
pub(crate) struct Sender {
    destinations: DashMap<OwnedServerName, Arc<Destination>>,
    /// Destinations of events derived but not yet committed.
    noted: Mutex<BTreeSet<OwnedServerName>>,
    /// Events of other servers that we send on to the room's servers (joins through us).
    relays: Mutex<BTreeSet<String>>,
    /// Whether the control plane knows the tenant has something queued.
    marked: AtomicBool,
}

#[derive(Default)]
struct Destination {
    /// Whether a task delivers this destination's queue now.
    running: AtomicBool,
    /// EDUs for the next transaction, oldest first.
    edus: Mutex<VecDeque<Raw<Edu>>>,
    /// The failures of delivery in a row, for the admin API.
    retry: Mutex<RetryState>,
    /// Stream position of the newest PDU the destination took, since the tenant loaded.
    last_sent_stream: AtomicI64,
    /// Ends the wait before the next try (an admin's "reset connection").
    reset: tokio::sync::Notify,
}

/// Failures of delivery to a destination in a row, in Synapse's terms (`destinations` table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RetryState {
    /// When the first of the failures was; `None` while delivery succeeds.
    pub(crate) failure_ts: Option<i64>,
    /// When the last failed try was; 0 when the last try succeeded.
    pub(crate) retry_last_ts: i64,
    /// Milliseconds from the last failed try to the next; 0 when not retrying.
    pub(crate) retry_interval: i64,
}

/// What the tenant knows of its delivery to one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DestinationStatus {
    pub(crate) retry: RetryState,
    /// The stream position of the newest PDU it took, when one was sent since loading.
    pub(crate) last_sent_stream: Option<i64>,
}

impl Destination {
    fn push_edu(&self, edu: Raw<Edu>) {
        let mut edus = self.edus.lock();
        if edus.len() >= MAX_QUEUED_EDUS {
            edus.pop_front();
        }
        edus.push_back(edu);
    }

    fn take_edus(&self, limit: usize) -> Vec<Raw<Edu>> {
        let mut edus = self.edus.lock();
        let n = edus.len().min(limit);
        edus.drain(..n).collect()
    }

    /// Puts back EDUs whose transaction failed, ahead of newer ones.
    fn requeue_edus(&self, taken: Vec<Raw<Edu>>) {
        let mut edus = self.edus.lock();
        for edu in taken.into_iter().rev() {
            edus.push_front(edu);
        }
        edus.truncate(MAX_QUEUED_EDUS);
    }

    fn has_edus(&self) -> bool {
        !self.edus.lock().is_empty()
    }

    fn succeeded(&self) {
        *self.retry.lock() = RetryState::default();
    }

    fn failed(&self, retry_in: Duration) {
        let now = crate::now_ms();
        let mut retry = self.retry.lock();
        retry.failure_ts.get_or_insert(now);
        retry.retry_last_ts = now;
        retry.retry_interval = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    }
}

impl Sender {
    /// Has the event `event_id`, of another server, sent to the room's other servers when it
    /// is appended.
    pub(crate) fn relay(&self, event_id: &str) {
        self.relays.lock().insert(event_id.to_owned());
    }

    /// Whether `event_id` was to be relayed; forgets it either way.
    pub(crate) fn take_relay(&self, event_id: &str) -> bool {
        self.relays.lock().remove(event_id)
    }

    fn note(&self, destinations: BTreeSet<OwnedServerName>) {
        self.noted.lock().extend(destinations);
    }

    fn wake_noted(&self, tenant: &Tenant) {
        let noted = std::mem::take(&mut *self.noted.lock());
        for destination in noted {
            self.wake(tenant, destination);
        }
    }

    /// Starts delivering `destination`'s queue unless a task does already.
    pub(crate) fn wake(&self, tenant: &Tenant, destination: OwnedServerName) {
        let state = self.destination(&destination);
        if state.running.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(deliver(tenant.downgrade(), destination, state));
    }

    /// The delivery state of `destination`, when a delivery to it ran since the tenant loaded.
    pub(crate) fn status(&self, destination: &ServerName) -> Option<DestinationStatus> {
        let state = self.destinations.get(destination)?.clone();
        let last = state.last_sent_stream.load(Ordering::Acquire);
        Some(DestinationStatus {
            retry: *state.retry.lock(),
            last_sent_stream: (last > 0).then_some(last),
        })
    }

    /// Forgets `destination`'s failures and tries it again now: the waiting delivery wakes,
    /// and the transport's backoff is cleared.
    pub(crate) fn reset(&self, tenant: &Tenant, destination: &ServerName) {
        tenant.federation().transports().reset_backoff(destination);
        let state = self.destination(destination);
        state.succeeded();
        state.reset.notify_waiters();
        self.wake(tenant, destination.to_owned());
    }

    fn destination(&self, destination: &ServerName) -> Arc<Destination> {
        self.destinations
            .entry(destination.to_owned())
            .or_default()
            .clone()
    }

    /// Sends an EDU (`edu_type` and `content`) to `destination` with its next transaction.
    pub(crate) async fn send_edu(
        &self,
        tenant: &Tenant,
        destination: &ServerName,
        edu_type: &str,
        content: serde_json::Value,
    ) -> Result<()> {
        self.queue_edu(tenant, vec![destination.to_owned()], edu_type, content)
            .await
    }

    /// Queues an EDU for `destinations`: stored when it must survive a restart, in memory
    /// otherwise; then wakes their delivery.
    async fn queue_edu(
        &self,
        tenant: &Tenant,
        destinations: Vec<OwnedServerName>,
        edu_type: &str,
        content: serde_json::Value,
    ) -> Result<()> {
        let edu = edu_of(edu_type, content)?;
        if is_durable(edu_type) {
            let names: Vec<String> = destinations.iter().map(ToString::to_string).collect();
            tenant.store().queue_edu(&names, edu.json().get()).await?;
            self.mark_pending(tenant);
        } else {
            for destination in &destinations {
                self.destination(destination).push_edu(edu.clone());
            }
        }
        for destination in destinations {
            self.wake(tenant, destination);
        }
        Ok(())
    }

    /// Sends an EDU about our `user` (their devices, their keys) to every server of someone
    /// sharing a room with them.
    pub(crate) async fn send_edu_to_sharing(
        &self,
        tenant: &Tenant,
        user: &UserId,
        edu_type: &str,
        content: serde_json::Value,
    ) -> Result<()> {
        let store = tenant.store();
        let mut servers = BTreeSet::new();
        for membership in store.memberships_of_user(user.as_str()).await? {
            if membership.membership != "join" {
                continue;
            }
            // While a room's members are being fetched, the servers known to be in it.
            if let Ok(room_id) = RoomId::parse(&membership.room_id) {
                let partial = tenant.partial_rooms().servers(&room_id);
                servers.extend(partial.into_iter().filter(|s| s != tenant.server_name()));
            }
            for member in store
                .room_members(&membership.room_id, Some("join"))
                .await?
            {
                if let Ok(member) = UserId::parse(&member.user_id)
                    && member.server_name() != tenant.server_name()
                {
                    servers.insert(member.server_name().to_owned());
                }
            }
        }
        if servers.is_empty() {
            return Ok(());
        }
        self.queue_edu(tenant, servers.into_iter().collect(), edu_type, content)
            .await
    }

    /// Sends an EDU about `room_id` (`edu_type` and `content`) to the servers of the room's
    /// other members, with their next transaction.
    pub(crate) async fn send_edu_to_room(
        &self,
        tenant: &Tenant,
        room_id: &RoomId,
        edu_type: &str,
        content: serde_json::Value,
    ) -> Result<()> {
        let head = tenant.room_heads().snapshot(tenant, room_id).await?;
        let partial = tenant.partial_rooms().servers(room_id);
        let servers: BTreeSet<&ServerName> = head
            .joined
            .iter()
            .map(|user| user.server_name())
            .chain(partial.iter().map(|server| &**server))
            .filter(|server| *server != tenant.server_name())
            .collect();
        if servers.is_empty() {
            return Ok(());
        }
        let edu = edu_of(edu_type, content)?;
        for server in servers {
            self.destination(server).push_edu(edu.clone());
            self.wake(tenant, server.to_owned());
        }
        Ok(())
    }

    /// Tells the control plane the tenant has events queued, once until its queue empties.
    fn mark_pending(&self, tenant: &Tenant) {
        if !self.marked.swap(true, Ordering::AcqRel) {
            tenant
                .federation()
                .mark_pending(&tenant.record().tenant_id, true);
        }
    }

    /// Once a destination's queue emptied: clears the control plane's mark when no queue is
    /// left, marking again if an event was queued meanwhile.
    async fn unmark_if_drained(&self, tenant: &Tenant) -> Result<()> {
        if !tenant.store().outbound_destinations().await?.is_empty() {
            return Ok(());
        }
        if self.marked.swap(false, Ordering::AcqRel) {
            let tenant_id = tenant.record().tenant_id;
            tenant.federation().mark_pending(&tenant_id, false);
            if !tenant.store().outbound_destinations().await?.is_empty() {
                self.mark_pending(tenant);
            }
        }
        Ok(())
    }

    /// After loading the tenant: delivers what was queued before, for every destination.
    pub(crate) async fn resume(&self, tenant: &Tenant) -> Result<()> {
        let destinations = tenant.store().outbound_destinations().await?;
        if destinations.is_empty() {
            // Marked before a restart, delivered since: nothing left to wait for.
            let tenant_id = tenant.record().tenant_id;
            tenant.federation().mark_pending(&tenant_id, false);
            return Ok(());
        }
        self.marked.store(true, Ordering::Release);
        for name in destinations {
            match ServerName::parse(&name) {
                Ok(destination) => self.wake(tenant, destination),
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e, "queued for an invalid server name")
                }
            }
        }
        Ok(())
    }
}

/// EDUs a client was told are sent (to-device messages) or that other servers' view of our
/// users' devices depends on: stored until delivered.
fn is_durable(edu_type: &str) -> bool {
    matches!(
        edu_type,
        "m.direct_to_device" | "m.device_list_update" | "m.signing_key_update"
    )
}

fn edu_of(edu_type: &str, content: serde_json::Value) -> Result<Raw<Edu>> {
    let json = serde_json::json!({ "edu_type": edu_type, "content": content });
    let raw =
        serde_json::value::to_raw_value(&json).map_err(|e| Error::Internal(format!("EDU: {e}")))?;
    Ok(Raw::from_json(raw))
}

/// Delivers `destination`'s queue until it is empty, then ends; retries with backoff on
/// failure. Holds the tenant only while sending, and marks it used each time, so it stays
/// loaded while it has something to deliver; if it is unloaded all the same (the loaded
/// tenants are at their limit), its queue stays stored and resumes when it loads again.
async fn deliver(tenant: WeakTenant, destination: OwnedServerName, state: Arc<Destination>) {
    let mut retry = FIRST_RETRY;
    loop {
        let Some(handle) = tenant.upgrade() else {
            state.running.store(false, Ordering::Release);
            return;
        };
        handle.touch();
        match send_next(&handle, &destination, &state).await {
            Ok(true) => {
                state.succeeded();
                retry = FIRST_RETRY;
            }
            Ok(false) => {
                state.running.store(false, Ordering::Release);
                // An event committed (or an EDU queued) between the last read and now found
                // the task running and did not start another: look once more.
                let store = handle.store();
                let pdus = store.queued_pdus(destination.as_str(), 1).await;
                let edus = store.queued_edus(destination.as_str(), 1).await;
                let more = matches!(pdus, Ok(ref q) if !q.is_empty())
                    || matches!(edus, Ok(ref q) if !q.is_empty())
                    || state.has_edus();
                if !more {
                    if let Err(e) = handle.sender().unmark_if_drained(&handle).await {
                        tracing::debug!(error = %e, "federation queue mark not cleared");
                    }
                    return;
                }
                if state.running.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            Err(e) => {
                tracing::info!(%destination, error = %e, retry_in_s = retry.as_secs(), "federation transaction failed");
                state.failed(retry);
                drop(handle);
                tokio::select! {
                    () = tokio::time::sleep(retry) => retry = (retry * 2).min(LAST_RETRY),
                    () = state.reset.notified() => retry = FIRST_RETRY,
                }
            }
        }
    }
}

/// Sends the oldest queued PDUs and EDUs as one transaction; `false` when nothing was queued.
async fn send_next(tenant: &Tenant, destination: &ServerName, state: &Destination) -> Result<bool> {
    let store = tenant.store();
    let queued = store
        .queued_pdus(destination.as_str(), MAX_PDUS_PER_TRANSACTION)
        .await?;
    let stored_edus = store
        .queued_edus(destination.as_str(), MAX_EDUS_PER_TRANSACTION as u32)
        .await?;
    let edus = state.take_edus(MAX_EDUS_PER_TRANSACTION - stored_edus.len());
    if queued.is_empty() && stored_edus.is_empty() && edus.is_empty() {
        return Ok(false);
    }
    let request = transaction(tenant, &queued, &stored_edus, edus.clone())?;
    let response = match tenant
        .federation()
        .send_signed(tenant, destination, request)
        .await
    {
        Ok(response) => response,
        Err(e) => {
            state.requeue_edus(edus);
            return Err(e);
        }
    };
    for (event_id, result) in &response.pdus {
        if let Err(reason) = result {
            // The destination refused the event (it may lack its room's state); it will
            // fetch what it misses from us. Nothing to retry.
            tracing::info!(%destination, %event_id, %reason, "a PDU was refused");
        }
    }
    if let Some(last) = queued.last() {
        store
            .acknowledge_pdus(destination.as_str(), last.stream)
            .await?;
        state.last_sent_stream.store(last.stream, Ordering::Release);
    }
    if let Some(last) = stored_edus.last() {
        store
            .acknowledge_edus(destination.as_str(), last.id)
            .await?;
    }
    Ok(true)
}

fn transaction(
    tenant: &Tenant,
    queued: &[QueuedPdu],
    stored_edus: &[QueuedEdu],
    edus: Vec<Raw<Edu>>,
) -> Result<send_transaction_message::v1::Request> {
    let now = MilliSecondsSinceUnixEpoch::now();
    let txn_id = transaction_id(queued, stored_edus, !edus.is_empty());
    let mut request =
        send_transaction_message::v1::Request::new(txn_id, tenant.server_name().to_owned(), now);
    for pdu in queued {
        let raw = RawJsonValue::from_string(pdu.pdu.clone())
            .map_err(|e| Error::Internal(format!("stored PDU {}: {e}", pdu.event_id)))?;
        request.pdus.push(raw);
    }
    for edu in stored_edus {
        let raw = RawJsonValue::from_string(edu.edu.clone())
            .map_err(|e| Error::Internal(format!("stored EDU {}: {e}", edu.id)))?;
        request.edus.push(Raw::from_json(raw));
    }
    request.edus.extend(edus);
    Ok(request)
}

/// The same stored PDUs and EDUs are retried under the same id (their positions in the queue,
/// never handed out twice), so a destination that got them before answers without applying
/// them twice; a transaction with ephemeral EDUs, which are not retried as they were, gets a
/// fresh one.
fn transaction_id(
    queued: &[QueuedPdu],
    stored_edus: &[QueuedEdu],
    ephemeral: bool,
) -> OwnedTransactionId {
    let mut parts = Vec::with_capacity(3);
    if let (Some(first), Some(last)) = (queued.first(), queued.last()) {
        parts.push(format!("p{}-{}", first.stream, last.stream));
    }
    if let (Some(first), Some(last)) = (stored_edus.first(), stored_edus.last()) {
        parts.push(format!("e{}-{}", first.id, last.id));
    }
    if ephemeral || parts.is_empty() {
        parts.push(secrets::random_alphanumeric(16));
    }
    parts.join(".").into()
}
