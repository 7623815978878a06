//! Room heads: what the next event of a room builds on (its version, current state group,
//! forward extremities and joined members), kept in memory for the rooms being written to.
//! Events are committed after the room's write lock is released, so the store may lag behind;
//! under the lock, the head is the truth.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedUserId, RoomId, UInt};

use super::lock::RoomWriter;
use super::pdu::Pdu;
use crate::{Error, Result, Tenant};

/// Heads kept at most before those of committed rooms are dropped (they reload from the store).
const MAX_HEADS: usize = 4096;

#[derive(Clone)]
pub(crate) struct RoomHead {
    pub(crate) room_version: String,
    pub(crate) state_group: i64,
    pub(crate) extremities: Vec<Arc<Pdu>>,
    /// Joined members, sorted.
    pub(crate) joined: Arc<Vec<OwnedUserId>>,
    /// Stream position of the room's newest event.
    pub(crate) last_stream: i64,
}

impl RoomHead {
    pub(crate) fn is_joined(&self, user: &ruma::UserId) -> bool {
        self.joined
            .binary_search_by(|m| m.as_str().cmp(user.as_str()))
            .is_ok()
    }

    /// Records a membership change of `user`.
    pub(crate) fn set_membership(&mut self, user: &ruma::UserId, membership: &str) {
        let joined = Arc::make_mut(&mut self.joined);
        match joined.binary_search_by(|m| m.as_str().cmp(user.as_str())) {
            Ok(at) if membership != "join" => {
                joined.remove(at);
            }
            Err(at) if membership == "join" => joined.insert(at, user.to_owned()),
            _ => {}
        }
    }
}

#[derive(Default)]
pub(crate) struct RoomHeads {
    inner: Mutex<Heads>,
    /// `origin_server_ts` of the tenant's newest create event.
    last_create_ts: AtomicU64,
}

#[derive(Default)]
struct Heads {
    /// The committer epoch these heads were built in.
    epoch: u64,
    rooms: HashMap<String, RoomHead>,
}

impl RoomHeads {
    /// A timestamp for a create event: now, or just after the tenant's previous one, even
    /// when rooms are created at the same time.
    pub(crate) fn next_create_ts(&self) -> MilliSecondsSinceUnixEpoch {
        let now = u64::from(MilliSecondsSinceUnixEpoch::now().get());
        let previous = self
            .last_create_ts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or_default();
        let ts = now.max(previous + 1);
        MilliSecondsSinceUnixEpoch(UInt::new_saturating(ts))
    }

    /// The stream position of the newest event built on the writer's room, when it is
    /// known in memory (it may not be committed yet).
    pub(crate) fn last_stream(&self, tenant: &Tenant, writer: &RoomWriter) -> Option<i64> {
        let heads = self.current(tenant);
        heads
            .rooms
            .get(writer.room_id().as_str())
            .map(|h| h.last_stream)
    }

    /// Whether a head exists for `room_id` (a room being written to, committed or not).
    pub(crate) fn contains(&self, room_id: &RoomId) -> bool {
        self.inner.lock().rooms.contains_key(room_id.as_str())
    }

    /// The head of the writer's room and the committer epoch it belongs to; `writer` proves
    /// the caller holds the room's write lock.
    pub(crate) async fn get(
        &self,
        tenant: &Tenant,
        writer: &RoomWriter,
    ) -> Result<(RoomHead, u64)> {
        let room_id = writer.room_id();
        let epoch = tenant.committer().epoch();
        if let Some(head) = self.current(tenant).rooms.get(room_id.as_str()) {
            return Ok((head.clone(), epoch));
        }
        Ok((load(tenant, room_id).await?, epoch))
    }

    /// A snapshot of `room_id`'s head, for readers: the room's lock is taken only to read it,
    /// so it may be outdated as soon as it returns.
    pub(crate) async fn snapshot(&self, tenant: &Tenant, room_id: &RoomId) -> Result<RoomHead> {
        let writer = tenant.room_locks().lock(room_id).await;
        Ok(self.get(tenant, &writer).await?.0)
    }

    /// Replaces the head of the writer's room after an event built in `epoch` was queued on
    /// it.
    pub(crate) fn set(&self, tenant: &Tenant, writer: &RoomWriter, head: RoomHead, epoch: u64) {
        let room_id = writer.room_id();
        let mut heads = self.current(tenant);
        if heads.epoch != epoch {
            // The event is stale already: it will fail, and so must not be built on.
            return;
        }
        if heads.rooms.len() >= MAX_HEADS {
            // Rooms whose newest event is visible to readers are committed: the store has them.
            let committed = tenant.stream().current();
            heads.rooms.retain(|_, h| h.last_stream > committed);
        }
        heads.rooms.insert(room_id.as_str().to_owned(), head);
    }

    /// Drops the head of a room being created whose first events will never be stored.
    pub(crate) fn forget(&self, tenant: &Tenant, room_id: &RoomId) {
        self.current(tenant).rooms.remove(room_id.as_str());
    }

    /// The heads, emptied first when a batch failed since they were built: they may cite
    /// events that were never stored.
    fn current(&self, tenant: &Tenant) -> parking_lot::MutexGuard<'_, Heads> {
        let mut heads = self.inner.lock();
        let now = tenant.committer().epoch();
        if heads.epoch != now {
            heads.rooms.clear();
            heads.epoch = now;
            tenant.state_cache().clear();
        }
        heads
    }
}

/// A room's head as stored; only called for rooms with no uncommitted events.
async fn load(tenant: &Tenant, room_id: &RoomId) -> Result<RoomHead> {
    let store = tenant.store();
    let room = store
        .room(room_id.as_str())
        .await?
        .ok_or_else(|| Error::NotFound("Room not found".into()))?;
    let mut extremities = Vec::new();
    for id in store.forward_extremities(room_id.as_str()).await? {
        let id = OwnedEventId::try_from(id.as_str())
            .map_err(|_| Error::Internal("bad extremity".into()))?;
        if let Some(pdu) = tenant.state_cache().pdu(store, &id).await? {
            extremities.push(pdu);
        }
    }
    let mut joined: Vec<OwnedUserId> = store
        .room_members(room_id.as_str(), Some("join"))
        .await?
        .into_iter()
        .filter_map(|m| OwnedUserId::try_from(m.user_id).ok())
        .collect();
    joined.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(RoomHead {
        room_version: room.room_version,
        state_group: room.state_group,
        extremities,
        joined: Arc::new(joined),
        last_stream: 0,
    })
}
