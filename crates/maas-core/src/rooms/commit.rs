//! Group commit of room events. Events are built one after another under the tenant's write
//! lock and queue here; one task per tenant persists whatever has queued up, with the
//! notifications it causes, in one transaction, then publishes the stream positions and
//! acknowledges the senders. Building the next events overlaps with committing the last ones,
//! and with `database.durable` one fsync covers the whole batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use maas_store::{EventBatch, NewEvent, NewStateGroup, RoomRecord, TxnRecord};
use parking_lot::Mutex;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result, Tenant};

/// Events persisted in one transaction at most: bounds the transaction while staying far above
/// what concurrent senders queue up during one commit.
const MAX_BATCH: usize = 256;

/// A client transaction, as `(localpart, device id, txn id)`.
type TxnKey = (String, String, String);

/// An event built under the write lock, with what its commit needs besides the event.
pub(crate) struct Built {
    pub(crate) new: NewEvent,
    pub(crate) room_id: OwnedRoomId,
    /// Joined members when the event was sent: who its notifications are for.
    pub(crate) members: Arc<Vec<OwnedUserId>>,
    /// The event this one redacts, whose cached PDU changes with the commit.
    pub(crate) redacts: Option<OwnedEventId>,
    /// For a room's create event: the room row and its empty state group.
    pub(crate) creates: Option<(RoomRecord, NewStateGroup)>,
}

/// An event waiting for its commit.
struct Pending {
    new: NewEvent,
    creates: Option<(RoomRecord, NewStateGroup)>,
    sender: Sender,
}

/// Who waits for an event's commit.
struct Sender {
    tenant: Tenant,
    room_id: OwnedRoomId,
    members: Arc<Vec<OwnedUserId>>,
    redacts: Option<OwnedEventId>,
    epoch: u64,
    done: oneshot::Sender<Result<()>>,
}

/// The sender's receipt for an event handed to the committer.
pub(crate) struct Ticket(oneshot::Receiver<Result<()>>);

impl Ticket {
    /// Resolves once the event is durable (or failed to be persisted).
    pub(crate) async fn wait(self) -> Result<()> {
        self.0
            .await
            .unwrap_or_else(|_| Err(Error::Internal("event commit was abandoned".into())))
    }
}

/// The per-tenant side of group commit: the queue, and what the write lock's holder needs to
/// know about events not committed yet.
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
    /// Advances when a batch fails: events built on top of it (same or older epoch) fail too,
    /// and the in-memory room heads built from them are dropped.
    epoch: AtomicU64,
    /// Client transactions queued or being committed, with their stream position.
    txns: Mutex<HashMap<TxnKey, i64>>,
}

impl Committer {
    /// A committer and the task that drains its queue; the task ends with the tenant.
    pub(crate) fn start() -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(receiver));
        Self {
            queue,
            epoch: AtomicU64::new(0),
            txns: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stream position of a queued, not yet committed event of this client transaction.
    pub(crate) fn pending_txn(&self, txn: &TxnRecord) -> Option<i64> {
        self.txns.lock().get(&txn_key(txn)).copied()
    }

    /// Queues an event built under the write lock; `epoch` is the one its room head was
    /// built in.
    pub(crate) fn enqueue(&self, tenant: &Tenant, built: Built, epoch: u64) -> Result<Ticket> {
        let (done, receipt) = oneshot::channel();
        let new = built.new;
        if let Some(txn) = &new.event.txn {
            self.txns.lock().insert(txn_key(txn), new.event.stream);
        }
        let txn = new.event.txn.clone();
        let pending = Pending {
            new,
            creates: built.creates,
            sender: Sender {
                tenant: tenant.clone(),
                room_id: built.room_id,
                members: built.members,
                redacts: built.redacts,
                epoch,
                done,
            },
        };
        if self.queue.send(pending).is_err() {
            if let Some(txn) = txn {
                self.txns.lock().remove(&txn_key(&txn));
            }
            return Err(Error::Internal("event committer stopped".into()));
        }
        Ok(Ticket(receipt))
    }
}

fn txn_key(txn: &TxnRecord) -> TxnKey {
    (
        txn.localpart.clone(),
        txn.device_id.clone(),
        txn.txn_id.clone(),
    )
}

async fn run(mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(std::mem::take(&mut batch)).await;
    }
}

/// Persists one batch, all or nothing, and tells every sender.
async fn commit(batch: Vec<Pending>) {
    let Some(tenant) = batch.first().map(|p| p.sender.tenant.clone()) else {
        return;
    };
    let epoch = tenant.committer().epoch();
    let (live, stale): (Vec<Pending>, Vec<Pending>) =
        batch.into_iter().partition(|p| p.sender.epoch == epoch);
    let (stale_events, stale_senders): (Vec<NewEvent>, Vec<Sender>) =
        stale.into_iter().map(|p| (p.new, p.sender)).unzip();
    settle(
        &tenant,
        &stale_events,
        stale_senders,
        Err("an event it builds on failed to be stored".into()),
    );
    if live.is_empty() {
        return;
    }
    let mut batch = EventBatch::default();
    let mut senders = Vec::with_capacity(live.len());
    for pending in live {
        if let Some((room, group)) = pending.creates {
            batch.rooms.push(room);
            batch.state_groups.push(group);
        }
        batch.events.push(pending.new);
        senders.push(pending.sender);
    }
    for (new, sender) in batch.events.iter().zip(&senders) {
        // Notifications are derived data: failing to compute them must not lose the event.
        match crate::push::push_actions(&tenant, &sender.room_id, &new.event, &sender.members).await
        {
            Ok(found) => batch.push_actions.extend(found),
            Err(err) => tracing::warn!(
                event_id = %new.event.event_id,
                error = %err,
                "push rules could not be evaluated"
            ),
        }
    }
    let outcome = match tenant.store().persist_events(&batch).await {
        Ok(()) => {
            for id in senders.iter().filter_map(|s| s.redacts.as_ref()) {
                // A reader may have cached the unredacted form while the commit ran.
                tenant.state_cache().forget(id);
            }
            Ok(())
        }
        Err(err) => {
            tracing::error!(error = %err, events = batch.events.len(), "storing events failed");
            tenant.committer().epoch.fetch_add(1, Ordering::AcqRel);
            Err(err.to_string())
        }
    };
    settle(&tenant, &batch.events, senders, outcome);
}

/// Releases the events' positions and client transactions (published when they were stored,
/// abandoned otherwise) and answers their senders.
fn settle(
    tenant: &Tenant,
    events: &[NewEvent],
    senders: Vec<Sender>,
    outcome: std::result::Result<(), String>,
) {
    let committer = tenant.committer();
    for (new, sender) in events.iter().zip(senders) {
        if let Some(txn) = &new.event.txn {
            committer.txns.lock().remove(&txn_key(txn));
        }
        tenant.stream().settle(new.event.stream);
        // The sender may have gone away (client disconnected); the outcome stands regardless.
        let _ = sender.done.send(outcome.clone().map_err(Error::Internal));
    }
}
