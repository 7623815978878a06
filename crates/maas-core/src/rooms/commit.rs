//! Group commit of room events. Events are built one after another under the tenant's write
//! lock and queue here; one task per tenant persists whatever has queued up, with the
//! notifications it causes, in one transaction, then publishes the stream positions and
//! acknowledges the senders. Building the next events overlaps with committing the last ones,
//! and with `database.durable` one fsync covers the whole batch. The commit is a pipeline of
//! two tasks: one evaluates the push rules of the events queued, the other stores what the
//! first has prepared, so rule evaluation overlaps with the previous batch's write.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{EventBatch, NewEvent, NewStateGroup, RoomRecord, TxnRecord};
use parking_lot::Mutex;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use tokio::sync::{mpsc, oneshot};

use crate::platform::runtime::Runtime;
use crate::push::{Notifications, StateInputs};
use crate::{Error, Result, Tenant};

/// Events persisted in one transaction at most: bounds the transaction while staying far above
/// what concurrent senders queue up during one commit.
const MAX_BATCH: usize = 256;

/// A client transaction, as `(localpart, device id, txn id)`.
type TxnKey = (String, String, String);

/// Committed client transactions remembered in memory, so a sender can look its transaction
/// up in the store before taking the write lock and only check here under it. It only has to
/// cover the commits during one sender's wait for the lock; past that, the sender looks in
/// the store again.
const RECENT_TXNS: usize = 256;

/// An event built under the write lock, with what its commit needs besides the event.
pub(crate) struct Built {
    pub(crate) new: NewEvent,
    pub(crate) room_id: OwnedRoomId,
    pub(crate) rules: RoomVersionRules,
    /// Joined members right after the event (with its own membership change): who its
    /// notifications are for, as the memberships stored with it say.
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

/// An event whose notifications are known, waiting to be stored.
struct Prepared {
    pending: Pending,
    notifications: Notifications,
}

/// Who waits for an event's commit.
struct Sender {
    tenant: Tenant,
    room_id: OwnedRoomId,
    rules: RoomVersionRules,
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
    txns: Mutex<Txns>,
}

/// What the committer knows of client transactions.
#[derive(Default)]
struct Txns {
    /// Queued or being committed, with their stream position.
    pending: HashMap<TxnKey, i64>,
    /// The last [`RECENT_TXNS`] committed, with their event id; `order` is oldest first.
    recent: HashMap<TxnKey, String>,
    order: VecDeque<TxnKey>,
    /// How many transactions have been committed since the tenant was loaded.
    committed: u64,
}

/// A client transaction, as seen under the write lock by a sender that looked it up in the
/// store (and didn't find it) when [`Committer::committed_txns`] said `since`.
pub(crate) enum TxnState {
    /// Not sent yet, or its attempts failed: send it.
    New,
    /// Queued or being committed at this stream position: wait for it, then look again.
    Pending(i64),
    /// Committed since, as this event.
    Committed(String),
    /// Too many transactions were committed since to tell: look in the store again.
    Unknown,
}

impl Committer {
    /// A committer and the tasks that drain its queue; they end with the tenant. With
    /// `commits_inline` (the store commits on the calling thread), batches are stored on one
    /// of the commit threads.
    pub(crate) fn start(runtime: &Runtime, commits_inline: bool) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let (prepared, to_store) = mpsc::unbounded_channel();
        if commits_inline {
            runtime.commit_threads().spawn(store(to_store));
        } else {
            tokio::spawn(store(to_store));
        }
        tokio::spawn(run(receiver, prepared));
        Self {
            queue,
            epoch: AtomicU64::new(0),
            txns: Mutex::new(Txns::default()),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A count of committed transactions, to pass to [`Committer::txn_state`]: read it before
    /// looking a transaction up in the store.
    pub(crate) fn committed_txns(&self) -> u64 {
        self.txns.lock().committed
    }

    /// Where `txn` stands, for a sender holding the write lock that didn't find it in the
    /// store when [`Committer::committed_txns`] was `since`. Anything committed after that
    /// read is still in memory, unless more than [`RECENT_TXNS`] were.
    pub(crate) fn txn_state(&self, txn: &TxnRecord, since: u64) -> TxnState {
        let txns = self.txns.lock();
        let key = txn_key(txn);
        if let Some(position) = txns.pending.get(&key) {
            return TxnState::Pending(*position);
        }
        if let Some(event_id) = txns.recent.get(&key) {
            return TxnState::Committed(event_id.clone());
        }
        if txns.committed - since > RECENT_TXNS as u64 {
            return TxnState::Unknown;
        }
        TxnState::New
    }

    /// Queues an event built under the write lock; `epoch` is the one its room head was
    /// built in.
    pub(crate) fn enqueue(&self, tenant: &Tenant, built: Built, epoch: u64) -> Result<Ticket> {
        let (done, receipt) = oneshot::channel();
        let new = built.new;
        if let Some(txn) = &new.event.txn {
            self.txns
                .lock()
                .pending
                .insert(txn_key(txn), new.event.stream);
        }
        let txn = new.event.txn.clone();
        let pending = Pending {
            new,
            creates: built.creates,
            sender: Sender {
                tenant: tenant.clone(),
                room_id: built.room_id,
                rules: built.rules,
                members: built.members,
                redacts: built.redacts,
                epoch,
                done,
            },
        };
        if self.queue.send(pending).is_err() {
            if let Some(txn) = txn {
                self.txns.lock().pending.remove(&txn_key(&txn));
            }
            return Err(Error::Internal("event committer stopped".into()));
        }
        Ok(Ticket(receipt))
    }
}

impl Txns {
    fn remember(&mut self, key: TxnKey, event_id: &str) {
        self.committed += 1;
        if self.order.len() == RECENT_TXNS
            && let Some(oldest) = self.order.pop_front()
        {
            self.recent.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.recent.insert(key, event_id.to_owned());
    }
}

fn txn_key(txn: &TxnRecord) -> TxnKey {
    (
        txn.localpart.clone(),
        txn.device_id.clone(),
        txn.txn_id.clone(),
    )
}

async fn run(
    mut queue: mpsc::UnboundedReceiver<Pending>,
    prepared: mpsc::UnboundedSender<Vec<Prepared>>,
) {
    let mut batch = Vec::new();
    let mut inputs = StateInputs::default();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut ready = Vec::with_capacity(batch.len());
        for pending in batch.drain(..) {
            ready.push(prepare(pending, &mut inputs).await);
        }
        if prepared.send(ready).is_err() {
            return;
        }
    }
}

/// Evaluates an event's push rules. Notifications are derived data: failing to compute them
/// must not lose the event.
async fn prepare(pending: Pending, inputs: &mut StateInputs) -> Prepared {
    let sender = &pending.sender;
    let notifications = match crate::push::evaluate(
        &sender.tenant,
        &sender.room_id,
        &sender.rules,
        &pending.new.event,
        &sender.members,
        inputs,
    )
    .await
    {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(
                event_id = %pending.new.event.event_id,
                error = %err,
                "push rules could not be evaluated"
            );
            Notifications::default()
        }
    };
    Prepared {
        pending,
        notifications,
    }
}

/// The second stage: stores everything prepared since its last commit as one batch.
async fn store(mut prepared: mpsc::UnboundedReceiver<Vec<Prepared>>) {
    let mut chunks = Vec::new();
    while prepared.recv_many(&mut chunks, MAX_BATCH).await > 0 {
        let mut batch: Vec<Prepared> = chunks.drain(..).flatten().collect();
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_BATCH));
            commit(batch).await;
            batch = rest;
        }
    }
}

/// Persists one batch, all or nothing, and tells every sender.
async fn commit(batch: Vec<Prepared>) {
    let Some(tenant) = batch.first().map(|p| p.pending.sender.tenant.clone()) else {
        return;
    };
    let epoch = tenant.committer().epoch();
    let (live, stale): (Vec<Prepared>, Vec<Prepared>) = batch
        .into_iter()
        .partition(|p| p.pending.sender.epoch == epoch);
    let (stale_events, stale_senders): (Vec<NewEvent>, Vec<Sender>) = stale
        .into_iter()
        .map(|p| (p.pending.new, p.pending.sender))
        .unzip();
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
    for Prepared {
        pending,
        notifications,
    } in live
    {
        if let Some((room, group)) = pending.creates {
            batch.rooms.push(room);
            batch.state_groups.push(group);
        }
        batch.events.push(pending.new);
        batch.push_actions.extend(notifications.users);
        batch.room_push_actions.extend(notifications.room);
        senders.push(pending.sender);
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
            let mut txns = committer.txns.lock();
            let key = txn_key(txn);
            txns.pending.remove(&key);
            if outcome.is_ok() {
                txns.remember(key, &new.event.event_id);
            }
        }
        tenant.stream().settle(new.event.stream);
        // The sender may have gone away (client disconnected); the outcome stands regardless.
        let _ = sender.done.send(outcome.clone().map_err(Error::Internal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: &str) -> TxnRecord {
        TxnRecord {
            localpart: "alice".into(),
            device_id: "DEV".into(),
            txn_id: id.into(),
        }
    }

    fn state(committer: &Committer, id: &str, since: u64) -> String {
        match committer.txn_state(&txn(id), since) {
            TxnState::New => "new".into(),
            TxnState::Pending(position) => format!("pending {position}"),
            TxnState::Committed(event_id) => format!("committed {event_id}"),
            TxnState::Unknown => "unknown".into(),
        }
    }

    #[tokio::test]
    async fn transactions_are_pending_then_committed_then_looked_up_again() {
        let committer = Committer::start(&Runtime::start(false), false);
        let since = committer.committed_txns();
        committer.txns.lock().pending.insert(txn_key(&txn("a")), 7);
        assert_eq!(state(&committer, "a", since), "pending 7");
        assert_eq!(state(&committer, "b", since), "new");

        {
            let mut txns = committer.txns.lock();
            txns.pending.remove(&txn_key(&txn("a")));
            txns.remember(txn_key(&txn("a")), "$a");
        }
        assert_eq!(state(&committer, "a", since), "committed $a");

        // Once more commits than it remembers happened since the sender's store lookup, an
        // unknown transaction may have been among the forgotten ones: the store must tell.
        for n in 0..RECENT_TXNS {
            committer
                .txns
                .lock()
                .remember(txn_key(&txn(&n.to_string())), "$n");
        }
        assert_eq!(state(&committer, "a", since), "unknown");
        assert_eq!(state(&committer, "zzz", since), "unknown");
        let later = committer.committed_txns();
        assert_eq!(state(&committer, "zzz", later), "new");
        assert_eq!(committer.txns.lock().recent.len(), RECENT_TXNS);
    }
}
