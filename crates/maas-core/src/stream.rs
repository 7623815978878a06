//! The tenant's single stream: every change sync must see (events, account data, receipts,
//! typing, …) takes the next position, and sync tokens are positions in it. Writers take
//! positions under one lock and publish them only once committed, so a reader that saw
//! position `n` can never later find an unseen change at or below `n`.

use std::sync::Arc;

use maas_store::TenantStore;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::Result;

/// Positions are reserved in the store in blocks, so a restart never hands out a position a
/// client may already hold, without a write per position.
const RESERVE_BLOCK: i64 = 1000;

pub struct Stream {
    counter: Mutex<Counter>,
    current: watch::Sender<i64>,
    store: Arc<dyn TenantStore>,
}

struct Counter {
    /// The last position handed out.
    last: i64,
    /// Positions up to this one are reserved in the store.
    reserved: i64,
}

impl Stream {
    pub(crate) async fn load(store: Arc<dyn TenantStore>) -> Result<Self> {
        let reserved = store.stream_reserved().await?;
        let (current, _) = watch::channel(reserved);
        Ok(Self {
            counter: Mutex::new(Counter {
                last: reserved,
                reserved,
            }),
            current,
            store,
        })
    }

    /// The newest committed position.
    pub fn current(&self) -> i64 {
        *self.current.borrow()
    }

    /// Wakes on every published position.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.current.subscribe()
    }

    /// Takes the tenant's write lock: positions handed out under it are published in order.
    pub(crate) async fn writer(&self) -> StreamWriter<'_> {
        StreamWriter {
            counter: self.counter.lock().await,
            stream: self,
        }
    }
}

/// Holder of the tenant's write lock.
pub(crate) struct StreamWriter<'a> {
    counter: MutexGuard<'a, Counter>,
    stream: &'a Stream,
}

impl StreamWriter<'_> {
    /// The next position; publish it with [`StreamWriter::publish`] once what it orders is
    /// durable.
    pub(crate) async fn next(&mut self) -> Result<i64> {
        let next = self.counter.last + 1;
        if next > self.counter.reserved {
            let reserved = self.counter.reserved + RESERVE_BLOCK;
            self.stream.store.reserve_stream(reserved).await?;
            self.counter.reserved = reserved;
        }
        self.counter.last = next;
        Ok(next)
    }

    /// Makes everything up to `position` visible to readers and wakes them.
    pub(crate) fn publish(&self, position: i64) {
        self.stream.current.send_if_modified(|current| {
            let advanced = position > *current;
            if advanced {
                *current = position;
            }
            advanced
        });
    }
}
