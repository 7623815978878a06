//! The tenant's single stream: every change sync must see (events, account data, receipts,
//! typing, …) takes the next position, and sync tokens are positions in it. Positions are
//! handed out in order under one lock but may become durable out of order (events commit in
//! batches, after the lock is released), so readers only ever see the positions below the
//! oldest one still in flight: a reader that saw `n` never later finds an unseen change ≤ `n`.

use std::collections::BTreeSet;
use std::sync::Arc;

use maas_store::TenantStore;
use parking_lot::Mutex as SyncMutex;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::Result;
use crate::rooms::commit::Ticket;

/// Positions are reserved in the store in blocks, so a restart never hands out a position a
/// client may already hold, without a write per position.
const RESERVE_BLOCK: i64 = 1000;

pub struct Stream {
    counter: Mutex<Counter>,
    /// Positions handed out but neither published nor abandoned yet.
    in_flight: SyncMutex<InFlight>,
    current: watch::Sender<i64>,
    store: Arc<dyn TenantStore>,
}

struct Counter {
    /// Positions up to this one are reserved in the store.
    reserved: i64,
}

struct InFlight {
    /// The last position handed out.
    last: i64,
    positions: BTreeSet<i64>,
}

impl Stream {
    pub(crate) async fn load(store: Arc<dyn TenantStore>) -> Result<Self> {
        let reserved = store.stream_reserved().await?;
        let (current, _) = watch::channel(reserved);
        Ok(Self {
            counter: Mutex::new(Counter { reserved }),
            in_flight: SyncMutex::new(InFlight {
                last: reserved,
                positions: BTreeSet::new(),
            }),
            current,
            store,
        })
    }

    /// The newest position below which everything is committed.
    pub fn current(&self) -> i64 {
        *self.current.borrow()
    }

    /// Wakes on every published position.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.current.subscribe()
    }

    /// Takes the tenant's write lock: positions are handed out under it in order.
    pub(crate) async fn writer(&self) -> StreamWriter<'_> {
        StreamWriter {
            counter: Some(self.counter.lock().await),
            stream: self,
            taken: Vec::new(),
            tickets: Vec::new(),
        }
    }

    /// Whether `position` was handed out and is still neither published nor abandoned.
    pub(crate) fn in_flight(&self, position: i64) -> bool {
        self.in_flight.lock().positions.contains(&position)
    }

    /// Waits until `position` is published or abandoned.
    pub(crate) async fn settled(&self, position: i64) {
        let mut changes = self.subscribe();
        while self.in_flight(position) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ends `position`: published once its change is durable, abandoned when it failed.
    /// Either way readers may now move past it.
    pub(crate) fn settle(&self, position: i64) {
        let visible = {
            let mut in_flight = self.in_flight.lock();
            in_flight.positions.remove(&position);
            match in_flight.positions.first() {
                Some(oldest) => oldest - 1,
                None => in_flight.last,
            }
        };
        // Wake waiters even when the visible position stays: `settled` watches single ones.
        self.current.send_modify(|current| {
            if visible > *current {
                *current = visible;
            }
        });
    }
}

/// Holder of the tenant's write lock, and of the positions and event commits taken under it.
pub(crate) struct StreamWriter<'a> {
    counter: Option<MutexGuard<'a, Counter>>,
    stream: &'a Stream,
    /// Positions taken and not yet settled or handed to the event committer.
    taken: Vec<i64>,
    /// Events appended under this writer, committed in the background.
    tickets: Vec<Ticket>,
}

impl StreamWriter<'_> {
    /// The next position; publish it with [`StreamWriter::publish`] once what it orders is
    /// durable.
    pub(crate) async fn next(&mut self) -> Result<i64> {
        let Some(counter) = self.counter.as_mut() else {
            return Err(crate::Error::Internal(
                "stream writer already released".into(),
            ));
        };
        let next = self.stream.in_flight.lock().last + 1;
        if next > counter.reserved {
            let reserved = counter.reserved + RESERVE_BLOCK;
            self.stream.store.reserve_stream(reserved).await?;
            counter.reserved = reserved;
        }
        {
            let mut in_flight = self.stream.in_flight.lock();
            in_flight.last = next;
            in_flight.positions.insert(next);
        }
        self.taken.push(next);
        Ok(next)
    }

    /// Makes `position` visible to readers (once older positions are) and wakes them.
    pub(crate) fn publish(&mut self, position: i64) {
        self.taken.retain(|p| *p != position);
        self.stream.settle(position);
    }

    /// Hands an event's position to the committer, which settles it; the writer waits for the
    /// commit in [`StreamWriter::finish`].
    pub(crate) fn hand_over(&mut self, position: i64, ticket: Ticket) {
        self.taken.retain(|p| *p != position);
        self.tickets.push(ticket);
    }

    /// Releases the write lock, then waits until every event appended under it is durable:
    /// the next writer builds on them meanwhile, so commits batch up.
    pub(crate) async fn finish(mut self) -> Result<()> {
        self.counter = None;
        let tickets = std::mem::take(&mut self.tickets);
        let mut result = Ok(());
        for ticket in tickets {
            if let Err(err) = ticket.wait().await
                && result.is_ok()
            {
                result = Err(err);
            }
        }
        result
    }
}

impl Drop for StreamWriter<'_> {
    fn drop(&mut self) {
        // A writer that failed between taking a position and publishing it must not hold
        // readers back forever.
        for position in std::mem::take(&mut self.taken) {
            self.stream.settle(position);
        }
    }
}
