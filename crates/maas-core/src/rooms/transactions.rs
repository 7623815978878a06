//! Client transactions (spec: "Transaction identifiers"): an event sent again under the same
//! transaction id from the same device is stored once, and the retry answers with the first
//! attempt's event id. A sender claims its transaction before building the event, so two
//! attempts never both build one, whichever rooms they name; committed transactions are
//! remembered for a while so a retry during a commit needn't read the store again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::store::TxnRecord;

/// Committed client transactions remembered in memory. A sender looks its transaction up in
/// the store before claiming it; this only has to cover the commits in between.
const RECENT_TXNS: usize = 256;

/// A client transaction, as `(localpart, device id, scope, txn id)`.
type TxnKey = (String, String, String, String);

/// The transactions of one tenant that are claimed or were committed lately.
#[derive(Clone, Default)]
pub(crate) struct Transactions(Arc<Mutex<Txns>>);

#[derive(Default)]
struct Txns {
    /// Claimed and not yet committed or abandoned; the receiver wakes when that changes.
    pending: HashMap<TxnKey, watch::Receiver<()>>,
    /// The last [`RECENT_TXNS`] committed, with their event id; `order` is oldest first.
    recent: HashMap<TxnKey, String>,
    order: VecDeque<TxnKey>,
    /// How many transactions have been committed since the tenant was loaded.
    committed: u64,
}

/// Where a transaction stands for a sender that looked it up in the store (and didn't find
/// it) when [`Transactions::committed`] said `since`.
pub(crate) enum TxnState {
    /// Not sent yet, or its attempts failed: the sender holds it now and sends it.
    New(TxnClaim),
    /// Another attempt holds it: wait until this changes, then ask again.
    Pending(watch::Receiver<()>),
    /// Committed since, as this event.
    Committed(String),
    /// Too many transactions were committed since to tell: look in the store again.
    Unknown,
}

/// A sender's hold on a transaction. Dropped without [`TxnClaim::committed`] (the event failed
/// or was never built), it lets the next attempt have it.
pub(crate) struct TxnClaim {
    txns: Transactions,
    record: TxnRecord,
    /// Dropping it wakes whoever waits for this attempt.
    _done: watch::Sender<()>,
}

impl Transactions {
    /// A count of committed transactions, to pass to [`Transactions::claim`]: read it before
    /// looking a transaction up in the store.
    pub(crate) fn committed(&self) -> u64 {
        self.0.lock().committed
    }

    /// Claims `txn` unless another attempt holds it or it was committed after `since`.
    pub(crate) fn claim(&self, txn: TxnRecord, since: u64) -> TxnState {
        let key = key_of(&txn);
        let mut txns = self.0.lock();
        if let Some(pending) = txns.pending.get(&key) {
            return TxnState::Pending(pending.clone());
        }
        if let Some(event_id) = txns.recent.get(&key) {
            return TxnState::Committed(event_id.clone());
        }
        if txns.committed - since > RECENT_TXNS as u64 {
            return TxnState::Unknown;
        }
        let (done, waiters) = watch::channel(());
        txns.pending.insert(key, waiters);
        TxnState::New(TxnClaim {
            txns: self.clone(),
            record: txn,
            _done: done,
        })
    }
}

impl TxnClaim {
    pub(crate) fn record(&self) -> &TxnRecord {
        &self.record
    }

    /// The transaction was stored as `event_id`: later attempts answer with it.
    pub(crate) fn committed(self, event_id: &str) {
        let mut txns = self.txns.0.lock();
        txns.committed += 1;
        if txns.order.len() == RECENT_TXNS
            && let Some(oldest) = txns.order.pop_front()
        {
            txns.recent.remove(&oldest);
        }
        let key = key_of(&self.record);
        txns.order.push_back(key.clone());
        txns.recent.insert(key, event_id.to_owned());
    }
}

impl Drop for TxnClaim {
    fn drop(&mut self) {
        self.txns.0.lock().pending.remove(&key_of(&self.record));
    }
}

fn key_of(txn: &TxnRecord) -> TxnKey {
    (
        txn.localpart.clone(),
        txn.device_id.clone(),
        txn.scope.clone(),
        txn.txn_id.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: &str) -> TxnRecord {
        TxnRecord {
            localpart: "alice".into(),
            device_id: "DEV".into(),
            scope: r#"["send","!r:x","m.room.message"]"#.into(),
            txn_id: id.into(),
        }
    }

    fn state(txns: &Transactions, id: &str, since: u64) -> (String, Option<TxnClaim>) {
        match txns.claim(txn(id), since) {
            TxnState::New(claim) => ("new".into(), Some(claim)),
            TxnState::Pending(_) => ("pending".into(), None),
            TxnState::Committed(event_id) => (format!("committed {event_id}"), None),
            TxnState::Unknown => ("unknown".into(), None),
        }
    }

    #[tokio::test]
    async fn a_transaction_is_claimed_once_then_committed_then_looked_up_again() {
        let txns = Transactions::default();
        let since = txns.committed();
        let (first, claim) = state(&txns, "a", since);
        assert_eq!(first, "new");
        let claim = claim.expect("claim");
        let mut waiting = match txns.claim(txn("a"), since) {
            TxnState::Pending(waiting) => waiting,
            _ => panic!("a second attempt must wait for the first"),
        };
        assert_eq!(state(&txns, "b", since).0, "new", "another transaction");

        claim.committed("$a");
        assert!(waiting.changed().await.is_err(), "the waiter wakes");
        assert_eq!(state(&txns, "a", since).0, "committed $a");

        // Once more commits than it remembers happened since the sender's store lookup, an
        // unknown transaction may have been among the forgotten ones: the store must tell.
        for n in 0..RECENT_TXNS {
            if let (_, Some(claim)) = state(&txns, &n.to_string(), txns.committed()) {
                claim.committed("$n");
            }
        }
        assert_eq!(state(&txns, "a", since).0, "unknown");
        assert_eq!(state(&txns, "zzz", since).0, "unknown");
        assert_eq!(state(&txns, "zzz", txns.committed()).0, "new");
        assert_eq!(txns.0.lock().recent.len(), RECENT_TXNS);
    }

    #[tokio::test]
    async fn an_abandoned_claim_frees_the_transaction() {
        let txns = Transactions::default();
        let (_, claim) = state(&txns, "a", 0);
        let mut waiting = match txns.claim(txn("a"), 0) {
            TxnState::Pending(waiting) => waiting,
            _ => panic!("pending"),
        };
        drop(claim);
        assert!(waiting.changed().await.is_err(), "the waiter wakes");
        assert_eq!(
            state(&txns, "a", 0).0,
            "new",
            "the next attempt may send it"
        );
    }
}
