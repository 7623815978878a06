//! `/sync` (spec: Client-Server API, "Syncing"): what changed for a user between two positions
//! of the tenant's stream. Long-polls wait on the tenant's notifier, never by polling, and
//! read the store only for positions whose audience may include their user; an incremental
//! sync only reads what changed in its range.
//!
//! Reads are batched across rooms: the timelines, state, bundled aggregations, unread counts,
//! receipts and summaries of all rooms in a response each come from one query (`SyncStore`),
//! so a response costs a handful of round trips to the database however many rooms it holds.

mod account;
mod ephemeral;
mod joined;
mod others;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ruma::UserId;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::accounts::AuthedUser;
use crate::e2ee::device_keys::{device_list_delta_of, joined_rooms};
use crate::filter::Filter;
use crate::store::{MembershipRecord, ReceiptRecord, StreamRange};
use crate::{Error, Result, Tenant};

use joined::RoomPlan;

/// Longest a client may make a sync wait.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SyncRequest {
    pub since: Option<i64>,
    /// `set_presence`: `online` unless the client says otherwise.
    pub set_presence: Option<String>,
    pub timeout: Duration,
    pub full_state: bool,
    pub filter: Filter,
}

/// Sync tokens are stream positions: `s<position>`.
pub fn token(position: i64) -> String {
    format!("s{position}")
}

/// A `/messages` token: a stream position, below 0 in backfilled history.
pub fn parse_page_token(token: &str) -> Result<i64> {
    token
        .strip_prefix('s')
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(|| Error::InvalidParam(format!("Invalid pagination token {token:?}")))
}

pub fn parse_token(token: &str) -> Result<i64> {
    token
        .strip_prefix('s')
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| Error::InvalidParam(format!("Invalid stream token {token:?}")))
}

/// One sync response under construction.
struct Builder<'a> {
    tenant: &'a Tenant,
    viewer: &'a AuthedUser,
    user: &'a UserId,
    since: Option<i64>,
    up_to: i64,
    full_state: bool,
    filter: &'a Filter,
}

impl Tenant {
    /// `GET /sync`.
    pub async fn sync(&self, user: &AuthedUser, req: SyncRequest) -> Result<Value> {
        let presence = req.set_presence.as_deref().unwrap_or("online");
        self.mark_presence_from_sync(user, presence).await?;
        let mut positions = self.stream().subscribe();
        let mut shutting_down = self.shutting_down();
        let deadline = Instant::now() + req.timeout.min(MAX_TIMEOUT);
        let mut expired = false;
        // After a look that found nothing: the rooms the user has a membership in, and the
        // position looked up to. Later positions whose audience leaves the user out are
        // passed over without reading the store.
        let mut watched: Option<(HashSet<String>, i64)> = None;
        loop {
            let up_to = *positions.borrow_and_update();
            let since = req.since.map(|s| s.min(up_to));
            let initial = since.is_none() || req.full_state;
            // With no time left to wait (`timeout=0`), nothing new is answered at once rather
            // than after a timer that can only fire on its next tick.
            let out_of_time = Instant::now() >= deadline;
            let news = since.is_some_and(|s| s < up_to)
                && watched.as_ref().is_none_or(|(rooms, looked)| {
                    self.stream()
                        .concerns(*looked, up_to, user.user_id.as_str(), rooms)
                });
            if initial || expired || out_of_time || news {
                let builder = Builder {
                    tenant: self,
                    viewer: user,
                    user: &user.user_id,
                    since,
                    up_to,
                    full_state: req.full_state,
                    filter: &req.filter,
                };
                let turn = self.work().await?;
                let (response, changed, rooms) = builder.build().await?;
                drop(turn);
                if initial || changed || expired || Instant::now() >= deadline {
                    return Ok(response);
                }
                watched = Some((rooms, up_to));
            } else if let Some((_, looked)) = watched.as_mut() {
                *looked = up_to;
            }
            // Past the deadline, one last (usually empty) response goes out: it still carries
            // the device's key counts. A shutdown ends the wait the same way, so that the
            // process need not wait out the long-polls.
            expired = tokio::select! {
                changed = tokio::time::timeout_at(deadline, positions.changed()) => {
                    !matches!(changed, Ok(Ok(())))
                }
                _ = shutting_down.wait_for(|stopping| *stopping) => true,
            };
        }
    }
}

/// The user's part of a sync response: the same for all their devices.
struct UserPart {
    /// Every room the user has a membership in, whatever the filter.
    rooms: HashSet<String>,
    join: Map<String, Value>,
    others: others::OtherRooms,
    /// Global account data events.
    account_data: Vec<Value>,
    presence: Vec<Value>,
    device_changed: Vec<String>,
    device_left: Vec<String>,
}

/// The device's own part of a sync response.
struct DevicePart {
    to_device: Vec<Value>,
    delivered_up_to: i64,
    otk_counts: Map<String, Value>,
    fallback_types: Vec<String>,
}

impl Builder<'_> {
    fn range(&self) -> StreamRange {
        StreamRange {
            after: self.since.unwrap_or(0),
            up_to: self.up_to,
        }
    }

    fn in_range(&self, stream: i64) -> bool {
        self.since.is_none_or(|s| stream > s) && stream <= self.up_to
    }

    /// Whether every joined room is sent whole: an initial sync or `full_state`.
    fn sends_everything(&self) -> bool {
        self.since.is_none() || self.full_state
    }

    /// The response, whether it carries anything new for the user, and the rooms the user
    /// has a membership in. Parts that don't depend on each other are read concurrently (each
    /// is a database round trip or a few): the device's own part alongside the whole chain of
    /// reads for the user's rooms.
    async fn build(&self) -> Result<(Value, bool, HashSet<String>)> {
        let (user, device) = tokio::try_join!(self.user_part(), self.device_part())?;
        let changed = !user.join.is_empty()
            || !user.others.is_empty()
            || !user.account_data.is_empty()
            || !user.presence.is_empty()
            || !device.to_device.is_empty()
            || !user.device_changed.is_empty()
            || !user.device_left.is_empty();
        let response = json!({
            "next_batch": token(device.delivered_up_to.min(self.up_to)),
            "to_device": { "events": device.to_device },
            "device_lists": { "changed": user.device_changed, "left": user.device_left },
            "device_one_time_keys_count": device.otk_counts,
            "device_unused_fallback_key_types": device.fallback_types,
            "rooms": {
                "join": user.join,
                "invite": user.others.invite,
                "leave": user.others.leave,
                "knock": user.others.knock,
            },
            "account_data": { "events": user.account_data },
            "presence": { "events": user.presence },
        });
        Ok((response, changed, user.rooms))
    }

    /// Everything but the device's own part: the rooms, global account data, presence and
    /// device list changes.
    async fn user_part(&self) -> Result<UserPart> {
        let store = self.tenant.store();
        let (all_memberships, account_data) = tokio::try_join!(
            async { Ok(store.memberships_of_user(self.user.as_str()).await?) },
            self.account_data(),
        )?;
        let memberships: Vec<&MembershipRecord> = all_memberships
            .iter()
            .filter(|m| self.filter.room.accepts_room(&m.room_id) && m.stream <= self.up_to)
            .collect();
        let joined: Vec<&MembershipRecord> = memberships
            .iter()
            .copied()
            .filter(|m| m.membership == "join")
            .collect();
        let joined_ids: Vec<String> = joined.iter().map(|m| m.room_id.clone()).collect();
        // Of every joined room, not only those the filter lets through: device lists look at
        // them all.
        let all_joined_ids = joined_rooms(&all_memberships);
        let (receipts, with_events) = tokio::try_join!(
            self.receipts(&joined_ids),
            self.rooms_with_events(&all_joined_ids),
        )?;
        let active = self.active_rooms(&joined_ids, &with_events, &receipts);

        let plans: Vec<RoomPlan> = joined
            .iter()
            .filter(|m| {
                // A membership moved into the range without an event: a partial-state room
                // completed, to send whole again.
                active.contains(&m.room_id)
                    || account_data.rooms.contains_key(&m.room_id)
                    || self.in_range(m.stream)
            })
            .map(|m| RoomPlan {
                room_id: &m.room_id,
                // A room joined within the range is new to the client: send all of it.
                fresh: self.sends_everything() || self.in_range(m.stream),
            })
            .collect();
        let e2ee = self.tenant.e2ee();
        let (join, others, presence, (device_changed, device_left)) = tokio::try_join!(
            self.joined_rooms(&plans, &account_data.rooms, &receipts),
            self.other_rooms(&memberships),
            self.presence(&joined_ids),
            async {
                match self.since {
                    Some(_) => {
                        let range = self.range();
                        device_list_delta_of(
                            &e2ee,
                            self.user,
                            range,
                            &all_memberships,
                            &with_events,
                        )
                        .await
                    }
                    None => Ok((Vec::new(), Vec::new())),
                }
            },
        )?;
        Ok(UserPart {
            rooms: all_memberships.iter().map(|m| m.room_id.clone()).collect(),
            join,
            others,
            account_data: account_data.global,
            presence,
            device_changed,
            device_left,
        })
    }

    /// What the syncing device gets for itself: to-device messages (and the position they
    /// were delivered up to), its one-time key counts and unused fallback key types.
    async fn device_part(&self) -> Result<DevicePart> {
        let store = self.tenant.store();
        let e2ee = self.tenant.e2ee();
        let localpart = self.user.localpart();
        let device = self.viewer.device_id.as_str();
        let ((to_device, delivered_up_to), otk_counts, fallback_types) = tokio::try_join!(
            e2ee.to_device_for_sync(self.viewer, self.since, self.up_to),
            async { Ok(store.count_one_time_keys(localpart, device).await?) },
            async { Ok(store.unused_fallback_key_types(localpart, device).await?) },
        )?;
        Ok(DevicePart {
            to_device,
            delivered_up_to,
            otk_counts: otk_counts
                .into_iter()
                .map(|(algorithm, count)| (algorithm, json!(count)))
                .collect(),
            fallback_types,
        })
    }

    /// Receipts of the joined rooms changed in range, by room, each room's in stream order.
    async fn receipts(&self, joined: &[String]) -> Result<HashMap<String, Vec<ReceiptRecord>>> {
        let mut by_room: HashMap<String, Vec<ReceiptRecord>> = HashMap::new();
        if joined.is_empty() {
            return Ok(by_room);
        }
        let receipts = self
            .tenant
            .store()
            .receipts_in(joined, self.range())
            .await?;
        for receipt in receipts {
            by_room
                .entry(receipt.room_id.clone())
                .or_default()
                .push(receipt);
        }
        Ok(by_room)
    }

    /// Those of `joined` with events in range; none are read for an initial sync.
    async fn rooms_with_events(&self, joined: &[String]) -> Result<Vec<String>> {
        if self.since.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .tenant
            .store()
            .rooms_with_events(joined, self.range())
            .await?)
    }

    /// The joined rooms to send: all of them when sending everything, else those with
    /// events, typing or receipts in range.
    fn active_rooms(
        &self,
        joined: &[String],
        with_events: &[String],
        receipts: &HashMap<String, Vec<ReceiptRecord>>,
    ) -> HashSet<String> {
        if self.sends_everything() {
            return joined.iter().cloned().collect();
        }
        let mut rooms: HashSet<String> = with_events.iter().cloned().collect();
        let typing = self.tenant.typing();
        rooms.extend(
            joined
                .iter()
                .filter(|id| typing.changed_since(id, self.range().after).is_some())
                .cloned(),
        );
        rooms.extend(receipts.keys().cloned());
        rooms
    }
}
