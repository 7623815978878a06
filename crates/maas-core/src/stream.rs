//! The tenant's single stream: every change sync must see (events, account data, receipts,
//! typing, …) takes the next position, and sync tokens are positions in it. Positions are
//! handed out in order under one lock but may become durable out of order (events commit in
//! batches, after the lock is released), so readers only ever see the positions below the
//! oldest one still in flight: a reader that saw `n` never later finds an unseen change ≤ `n`.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex as SyncMutex;
use ruma::UserId;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::Result;
use crate::e2ee::device_keys::joined_rooms;
use crate::store::TenantStore;

/// Positions are reserved in the store in blocks, so a restart never hands out a position a
/// client may already hold, without a write per position.
const RESERVE_BLOCK: i64 = 1000;

/// How many of the newest positions keep their audience. A waiting sync checks the positions
/// published since its last wake-up, a handful even at thousands of events a second; one that
/// fell further behind looks whatever they were.
const AUDIENCE_LOG: usize = 1024;

/// Who a position's change is for, so that a waiting sync builds a response only when
/// something may concern its user: otherwise every event of a tenant would make every one of
/// its waiting syncs read the store.
#[derive(Clone, Debug)]
pub(crate) enum Audience {
    /// `user` and whoever shares one of `rooms` with them (presence, device lists): the
    /// rooms `user` was joined to when the change was made.
    Sharing { user: String, rooms: Vec<String> },
    /// Whoever has a membership in the room, and `user`, the target of a membership event,
    /// who may have none yet (an invite).
    Room {
        room_id: String,
        user: Option<String>,
    },
    /// These users only (account data, to-device messages), by user id.
    Users(Vec<String>),
}

impl Audience {
    /// `user` and everyone sharing a room with them, as their memberships stand now. A room
    /// joined concurrently may be missed; its members' syncs then show the change at their
    /// next look, at the latest when their long-poll times out.
    pub(crate) async fn sharing(store: &dyn TenantStore, user: &UserId) -> Result<Self> {
        let memberships = store.memberships_of_user(user.as_str()).await?;
        Ok(Audience::Sharing {
            user: user.to_string(),
            rooms: joined_rooms(&memberships),
        })
    }

    fn includes(&self, user_id: &str, rooms: &HashSet<String>) -> bool {
        match self {
            Audience::Room { room_id, user } => {
                rooms.contains(room_id) || user.as_deref() == Some(user_id)
            }
            Audience::Users(users) => users.iter().any(|u| u == user_id),
            Audience::Sharing {
                user,
                rooms: theirs,
            } => user == user_id || theirs.iter().any(|room| rooms.contains(room)),
        }
    }
}

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
    audiences: AudienceLog,
}

/// The audiences of the newest positions handed out.
struct AudienceLog {
    /// Oldest first: every position handed out after `logged_after`.
    entries: VecDeque<(i64, Audience)>,
    logged_after: i64,
}

impl AudienceLog {
    /// A log of the positions handed out after `last`.
    fn after(last: i64) -> Self {
        Self {
            entries: VecDeque::new(),
            logged_after: last,
        }
    }

    fn record(&mut self, position: i64, audience: Audience) {
        if self.entries.len() == AUDIENCE_LOG
            && let Some((oldest, _)) = self.entries.pop_front()
        {
            self.logged_after = oldest;
        }
        self.entries.push_back((position, audience));
    }

    /// See [`Stream::concerns`].
    fn concerns(&self, after: i64, up_to: i64, user_id: &str, rooms: &HashSet<String>) -> bool {
        if after < self.logged_after {
            return true;
        }
        self.entries
            .iter()
            .rev()
            .take_while(|(position, _)| *position > after)
            .filter(|(position, _)| *position <= up_to)
            .any(|(_, audience)| audience.includes(user_id, rooms))
    }
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
                audiences: AudienceLog::after(reserved),
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

    /// Takes the tenant's position lock, for a change that is written while it is held:
    /// positions are handed out under it in order.
    pub(crate) async fn writer(&self) -> StreamWriter<'_> {
        StreamWriter {
            counter: self.counter.lock().await,
            stream: self,
            taken: Vec::new(),
        }
    }

    /// The next position, for a room event that its room's writer queues for the event
    /// committer, which settles it once stored. The position lock is held only to hand it out,
    /// so events of different rooms are built concurrently.
    pub(crate) async fn position(&self, audience: Audience) -> Result<Position<'_>> {
        let mut counter = self.counter.lock().await;
        let position = self.take(&mut counter, audience).await?;
        Ok(Position {
            stream: self,
            position: Some(position),
        })
    }

    /// Hands out the next position under the position lock, reserving a block in the store
    /// when the reserved ones run out.
    async fn take(&self, counter: &mut Counter, audience: Audience) -> Result<i64> {
        let next = self.in_flight.lock().last + 1;
        if next > counter.reserved {
            let reserved = counter.reserved + RESERVE_BLOCK;
            self.store.reserve_stream(reserved).await?;
            counter.reserved = reserved;
        }
        let mut in_flight = self.in_flight.lock();
        in_flight.last = next;
        in_flight.positions.insert(next);
        in_flight.audiences.record(next, audience);
        Ok(next)
    }

    /// Whether a change at a position in `(after, up_to]` may concern `user_id`, whose
    /// memberships are in `rooms`. Without the audience of every position there, it may.
    pub(crate) fn concerns(
        &self,
        after: i64,
        up_to: i64,
        user_id: &str,
        rooms: &HashSet<String>,
    ) -> bool {
        self.in_flight
            .lock()
            .audiences
            .concerns(after, up_to, user_id, rooms)
    }

    /// Waits until every position up to `position` is published or abandoned.
    pub(crate) async fn reached(&self, position: i64) {
        let mut changes = self.subscribe();
        while self.current() < position {
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
        self.current.send_if_modified(|current| {
            let advanced = visible > *current;
            if advanced {
                *current = visible;
            }
            advanced
        });
    }
}

/// Holder of the tenant's position lock, and of the positions taken under it.
pub(crate) struct StreamWriter<'a> {
    counter: MutexGuard<'a, Counter>,
    stream: &'a Stream,
    /// Positions taken and not yet published.
    taken: Vec<i64>,
}

impl StreamWriter<'_> {
    /// The next position, for a change that concerns `audience` only; publish it with
    /// [`StreamWriter::publish`] once what it orders is durable.
    pub(crate) async fn next_for(&mut self, audience: Audience) -> Result<i64> {
        let next = self.stream.take(&mut self.counter, audience).await?;
        self.taken.push(next);
        Ok(next)
    }

    /// Makes `position` visible to readers (once older positions are) and wakes them.
    pub(crate) fn publish(&mut self, position: i64) {
        self.taken.retain(|p| *p != position);
        self.stream.settle(position);
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

/// A position handed out for a room event, settled when dropped unless the event committer
/// took it over (it settles it once the event is stored or has failed).
pub(crate) struct Position<'a> {
    stream: &'a Stream,
    position: Option<i64>,
}

impl Position<'_> {
    pub(crate) fn get(&self) -> i64 {
        self.position.unwrap_or_default()
    }

    /// Leaves settling the position to whoever stores its event.
    pub(crate) fn hand_over(mut self) -> i64 {
        self.position.take().unwrap_or_default()
    }
}

impl Drop for Position<'_> {
    fn drop(&mut self) {
        if let Some(position) = self.position.take() {
            self.stream.settle(position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "@carol:example.org";

    fn room(id: &str, user: Option<&str>) -> Audience {
        Audience::Room {
            room_id: id.to_owned(),
            user: user.map(str::to_owned),
        }
    }

    #[test]
    fn a_position_concerns_its_rooms_members_target_and_users() {
        let mut log = AudienceLog::after(10);
        log.record(11, room("!other", None));
        log.record(12, room("!mine", None));
        log.record(13, room("!other", Some(CAROL)));
        log.record(14, Audience::Users(vec!["@dave:example.org".into()]));
        log.record(15, Audience::Users(vec![CAROL.into()]));
        log.record(
            16,
            Audience::Users(vec![CAROL.into(), "@dave:example.org".into()]),
        );
        let sharing = |user: &str, rooms: &[&str]| Audience::Sharing {
            user: user.to_owned(),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        };
        log.record(17, sharing("@dave:example.org", &["!other"]));
        log.record(18, sharing("@dave:example.org", &["!other", "!mine"]));
        log.record(19, sharing(CAROL, &[]));
        let rooms: HashSet<String> = ["!mine".to_owned()].into();
        let concerns = |after, up_to| log.concerns(after, up_to, CAROL, &rooms);

        assert!(!concerns(10, 11), "another room's event");
        assert!(concerns(10, 12), "an event of her room");
        assert!(!concerns(12, 12), "nothing in an empty range");
        assert!(concerns(12, 13), "a membership event about her");
        assert!(!concerns(13, 14), "someone else's account data");
        assert!(concerns(14, 15), "her own");
        assert!(concerns(15, 16), "hers among others'");
        assert!(
            !concerns(16, 17),
            "presence of someone she shares no room with"
        );
        assert!(concerns(17, 18), "of someone she shares a room with");
        assert!(concerns(18, 19), "her own");
        assert!(!concerns(19, 20), "positions not handed out yet");
    }

    #[test]
    fn positions_older_than_the_log_concern_everyone() {
        let mut log = AudienceLog::after(100);
        let rooms = HashSet::new();
        assert!(log.concerns(99, 100, CAROL, &rooms), "before the log began");
        for position in 101..=100 + AUDIENCE_LOG as i64 + 2 {
            log.record(position, room("!other", None));
        }
        let last = 100 + AUDIENCE_LOG as i64 + 2;
        assert!(
            log.concerns(101, last, CAROL, &rooms),
            "fell out of the log"
        );
        assert!(!log.concerns(102, last, CAROL, &rooms), "still in it");
    }
}
