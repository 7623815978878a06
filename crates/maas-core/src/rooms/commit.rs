//! Group commit of room events, the last stages of the event pipeline. Accepted events queue
//! here; one task per tenant runs the tenant's steps over whatever has queued up (deriving
//! what they store with the events, such as push actions), the next stores the batch in one
//! transaction, then publishes the stream positions, answers the senders and tells the steps.
//! Building the next events overlaps with committing the last ones, step derivation with the
//! previous batch's write, and with `database.durable` one fsync covers the whole batch.

use std::sync::atomic::{AtomicU64, Ordering};

use ruma::OwnedEventId;
use tokio::sync::{mpsc, oneshot};

use super::steps::{Accepted, Derived, Steps};
use super::transactions::TxnClaim;
use crate::platform::runtime::Runtime;
use crate::store::EventBatch;
use crate::{Error, Result, Tenant};

/// Events persisted in one transaction at most: bounds the transaction while staying far above
/// what concurrent senders queue up during one commit.
const MAX_BATCH: usize = 256;

/// An event waiting for its commit, and who waits for it.
struct Pending {
    accepted: Accepted,
    tenant: Tenant,
    /// The committer epoch its room head was built in.
    epoch: u64,
    txn: Option<TxnClaim>,
    done: oneshot::Sender<Result<()>>,
}

/// An event whose steps have derived their rows, waiting to be stored.
struct Prepared {
    pending: Pending,
    derived: Derived,
}

/// The sender's receipt for an event handed to the committer.
pub(crate) struct Ticket(oneshot::Receiver<Result<()>>);

impl Ticket {
    /// A receipt and the sender that resolves it, for tests of those who wait.
    #[cfg(test)]
    pub(crate) fn pending() -> (oneshot::Sender<Result<()>>, Self) {
        let (done, receipt) = oneshot::channel();
        (done, Self(receipt))
    }

    /// Resolves once the event is durable (or failed to be persisted).
    pub(crate) async fn wait(self) -> Result<()> {
        self.0
            .await
            .unwrap_or_else(|_| Err(Error::Internal("event commit was abandoned".into())))
    }
}

/// The per-tenant side of group commit: the queue, and the epoch the room heads are built in.
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
    /// Advances when a batch fails: events built on top of it (same or older epoch) fail too,
    /// and the in-memory room heads built from them are dropped.
    epoch: AtomicU64,
}

impl Committer {
    /// A committer and the tasks that drain its queue; they end with the tenant. With
    /// `commits_inline` (the store commits on the calling thread), batches are stored on one
    /// of the platform's commit threads.
    pub(crate) fn start(runtime: &Runtime, commits_inline: bool, steps: Steps) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let (prepared, to_store) = mpsc::unbounded_channel();
        if commits_inline {
            runtime
                .commit_threads()
                .spawn(store(to_store, steps.clone()));
        } else {
            tokio::spawn(store(to_store, steps.clone()));
        }
        tokio::spawn(derive(receiver, prepared, steps));
        Self {
            queue,
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Queues an accepted event whose room head was built in `epoch`, with the client
    /// transaction it answers; once queued, its stream position is the commit's to settle,
    /// stored or failed.
    pub(crate) fn enqueue(
        &self,
        tenant: &Tenant,
        accepted: Accepted,
        epoch: u64,
        txn: Option<TxnClaim>,
    ) -> Result<Ticket> {
        let (done, receipt) = oneshot::channel();
        let pending = Pending {
            accepted,
            tenant: tenant.clone(),
            epoch,
            txn,
            done,
        };
        if self.queue.send(pending).is_err() {
            return Err(Error::Internal("event committer stopped".into()));
        }
        Ok(Ticket(receipt))
    }
}

/// The first stage: runs the steps' derivations over every queued event, in order.
async fn derive(
    mut queue: mpsc::UnboundedReceiver<Pending>,
    prepared: mpsc::UnboundedSender<Vec<Prepared>>,
    steps: Steps,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut ready = Vec::with_capacity(batch.len());
        for pending in batch.drain(..) {
            let derived = steps.derive(&pending.tenant, &pending.accepted).await;
            ready.push(Prepared { pending, derived });
        }
        if prepared.send(ready).is_err() {
            return;
        }
    }
}

/// The second stage: stores everything prepared since its last commit as one batch.
async fn store(mut prepared: mpsc::UnboundedReceiver<Vec<Prepared>>, steps: Steps) {
    let mut chunks = Vec::new();
    while prepared.recv_many(&mut chunks, MAX_BATCH).await > 0 {
        let mut batch: Vec<Prepared> = chunks.drain(..).flatten().collect();
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_BATCH));
            commit(batch, &steps).await;
            batch = rest;
        }
    }
}

/// Persists one batch, all or nothing, and tells every sender and step.
async fn commit(batch: Vec<Prepared>, steps: &Steps) {
    let Some(tenant) = batch.first().map(|p| p.pending.tenant.clone()) else {
        return;
    };
    let epoch = tenant.committer().epoch();
    let (live, stale): (Vec<Prepared>, Vec<Prepared>) =
        batch.into_iter().partition(|p| p.pending.epoch == epoch);
    let stale = stale.into_iter().map(|p| Waiter::of(p.pending).0).collect();
    settle(
        &tenant,
        stale,
        &Err("an event it builds on failed to be stored".into()),
    );
    if live.is_empty() {
        return;
    }
    let mut batch = EventBatch::default();
    let mut waiters = Vec::with_capacity(live.len());
    for Prepared { pending, derived } in live {
        let (waiter, accepted) = Waiter::of(pending);
        if let Some(start) = accepted.starts {
            start.into_batch(&mut batch);
        }
        batch.state_groups.extend(accepted.state_groups);
        batch.events.push(accepted.new);
        derived.into_batch(&mut batch);
        waiters.push(waiter);
    }
    let outcome = match tenant.store().persist_events(&batch).await {
        Ok(()) => {
            let events_groups = batch
                .events
                .iter()
                .filter_map(|e| e.new_state_group.as_ref());
            let groups = batch.state_groups.iter().chain(events_groups);
            tenant.state_cache().stored(groups.map(|g| g.id));
            for id in waiters.iter().filter_map(|w| w.redacts.as_ref()) {
                // A reader may have cached the unredacted form while the commit ran.
                tenant.state_cache().forget(id);
            }
            steps.committed(&tenant, &batch.events);
            Ok(())
        }
        Err(err) => {
            tracing::error!(error = %err, events = batch.events.len(), "storing events failed");
            tenant.committer().epoch.fetch_add(1, Ordering::AcqRel);
            Err(err.to_string())
        }
    };
    settle(&tenant, waiters, &outcome);
}

/// What is left of an event once it went into its batch: who waits for it.
struct Waiter {
    event_id: String,
    stream: i64,
    redacts: Option<OwnedEventId>,
    txn: Option<TxnClaim>,
    done: oneshot::Sender<Result<()>>,
}

impl Waiter {
    fn of(pending: Pending) -> (Self, Accepted) {
        let event = &pending.accepted.new.event;
        let waiter = Waiter {
            event_id: event.event_id.clone(),
            stream: event.stream,
            redacts: pending.accepted.redacts.clone(),
            txn: pending.txn,
            done: pending.done,
        };
        (waiter, pending.accepted)
    }
}

/// Releases the events' positions and client transactions (published when they were stored,
/// abandoned otherwise) and answers their senders.
fn settle(tenant: &Tenant, waiters: Vec<Waiter>, outcome: &std::result::Result<(), String>) {
    for waiter in waiters {
        if let (Some(claim), Ok(())) = (waiter.txn, outcome) {
            claim.committed(&waiter.event_id);
        }
        tenant.stream().settle(waiter.stream);
        // The sender may have gone away (client disconnected); the outcome stands regardless.
        let _ = waiter.done.send(outcome.clone().map_err(Error::Internal));
    }
}
