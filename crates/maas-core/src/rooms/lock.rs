//! The write lock of each room. Events of one room are built one after another on its head,
//! so their prev events and state never race; events of different rooms are built at the same
//! time (inbound federation writes to many rooms at once). Committing happens after the lock is
//! released, so the next event builds on the last one while it is being stored.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use ruma::{OwnedRoomId, RoomId};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::commit::Ticket;
use crate::Result;

/// Room locks kept before the unused ones are swept out of the map.
const SWEEP_AT: usize = 1024;

/// The locks of the rooms being written to; a lock lives as long as someone holds or awaits it.
#[derive(Default)]
pub(crate) struct RoomLocks {
    locks: Mutex<HashMap<OwnedRoomId, Weak<AsyncMutex<()>>>>,
}

impl RoomLocks {
    /// Waits for the write lock of `room_id`.
    pub(crate) async fn lock(&self, room_id: &RoomId) -> RoomWriter {
        let lock = self.lock_of(room_id);
        RoomWriter {
            room_id: room_id.to_owned(),
            guard: lock.lock_owned().await,
            tickets: Vec::new(),
        }
    }

    fn lock_of(&self, room_id: &RoomId) -> Arc<AsyncMutex<()>> {
        let mut locks = self.locks.lock();
        if let Some(lock) = locks.get(room_id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() >= SWEEP_AT {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(AsyncMutex::new(()));
        locks.insert(room_id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// Holder of one room's write lock, and of the commits of the events appended under it.
pub(crate) struct RoomWriter {
    room_id: OwnedRoomId,
    guard: OwnedMutexGuard<()>,
    tickets: Vec<Ticket>,
}

impl RoomWriter {
    pub(crate) fn room_id(&self) -> &RoomId {
        &self.room_id
    }

    /// Keeps the receipt of an event handed to the committer; [`RoomWriter::finish`] waits
    /// for it.
    pub(crate) fn hand_over(&mut self, ticket: Ticket) {
        self.tickets.push(ticket);
    }

    /// Releases the lock, then waits until every event appended under it is durable: the
    /// next writer of the room builds on them meanwhile, so commits batch up.
    pub(crate) async fn finish(self) -> Result<()> {
        let Self { tickets, guard, .. } = self;
        drop(guard);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ruma::room_id;

    use super::*;

    #[tokio::test]
    async fn one_writer_per_room_and_rooms_apart() {
        let locks = RoomLocks::default();
        let first = locks.lock(room_id!("!a:example.org")).await;
        // Another room's lock is free…
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock(room_id!("!b:x")))
            .await
            .expect("another room's lock is free");
        drop(other);
        // …the same room's is not, until the first writer is done.
        let second = locks.lock(room_id!("!a:example.org"));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err()
        );
        first.finish().await.expect("finish");
        tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .expect("free once the first finished");
    }

    /// The next writer builds on the last one's events while they are stored: the lock is
    /// free before their commits end.
    #[tokio::test]
    async fn finishing_releases_the_lock_before_waiting_for_commits() {
        let locks = Arc::new(RoomLocks::default());
        let room = room_id!("!a:example.org");
        let mut first = locks.lock(room).await;
        let (committed, ticket) = Ticket::pending();
        first.hand_over(ticket);
        let finishing = tokio::spawn(first.finish());
        let second = tokio::time::timeout(Duration::from_secs(1), locks.lock(room))
            .await
            .expect("the lock is free while the commit is pending");
        assert!(!finishing.is_finished(), "finish waits for the commit");
        committed.send(Ok(())).expect("send");
        finishing.await.expect("task").expect("committed");
        drop(second);
    }

    #[tokio::test]
    async fn unused_locks_are_swept() {
        let locks = RoomLocks::default();
        for n in 0..SWEEP_AT + 10 {
            let room = OwnedRoomId::try_from(format!("!r{n}:x")).expect("room id");
            locks.lock(&room).await.finish().await.expect("finish");
        }
        assert!(locks.locks.lock().len() <= SWEEP_AT);
    }
}
