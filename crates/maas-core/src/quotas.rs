//! A tenant's quotas besides users and media bytes (`tenants::Quotas`): the rooms it holds, the
//! bytes it stores (database and media together) and the rate its users send events at; and
//! the usage that `maas tenant show` reports, the checks read and the metrics show.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Bucket;
use crate::ratelimit::RateLimiter;
use crate::{Error, Result, Tenant};

/// How long a measured usage serves the storage check: storage grows slowly, and measuring it
/// costs queries that the send path should not pay each time.
const USAGE_TTL: Duration = Duration::from_secs(10);

/// What a tenant holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub users: u64,
    pub rooms: u64,
    /// The tenant's database on disk.
    pub database_bytes: u64,
    /// The media its users uploaded.
    pub media_bytes: u64,
}

impl Usage {
    /// What `max_storage_bytes` bounds.
    pub fn storage_bytes(&self) -> u64 {
        self.database_bytes.saturating_add(self.media_bytes)
    }
}

/// A tenant's quota bookkeeping, in memory: lost on unload, which only means measuring again.
pub(crate) struct QuotaState {
    recent: Mutex<Option<(Instant, Usage)>>,
    /// One bucket, `messages`, for the tenant's users together; on whatever `rate_limits`
    /// says, since the operator set the quota for this tenant.
    messages: RateLimiter,
    /// Held from counting rooms to storing a new one while `max_rooms` is set, so that
    /// concurrent creations can't pass the count together.
    new_rooms: tokio::sync::Mutex<()>,
}

impl Default for QuotaState {
    fn default() -> Self {
        Self {
            recent: Mutex::new(None),
            messages: RateLimiter::new(true),
            new_rooms: tokio::sync::Mutex::new(()),
        }
    }
}

/// Permission to store one new room under `max_rooms`; dropping it lets the next creation
/// count.
pub(crate) struct RoomSlot<'a> {
    _held: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Tenant {
    /// The tenant's usage, measured now.
    pub async fn usage(&self) -> Result<Usage> {
        let store = self.store();
        let usage = Usage {
            users: store.count_users().await?,
            rooms: store.count_rooms().await?,
            database_bytes: store.database_bytes().await?,
            media_bytes: store.media_usage(None).await?,
        };
        *self.quota_state().recent.lock() = Some((Instant::now(), usage));
        Ok(usage)
    }

    /// The usage measured at most `USAGE_TTL` ago.
    pub async fn recent_usage(&self) -> Result<Usage> {
        let recent = *self.quota_state().recent.lock();
        match recent {
            Some((at, usage)) if at.elapsed() < USAGE_TTL => Ok(usage),
            _ => self.usage().await,
        }
    }

    /// Refuses new content once the tenant stores `max_storage_bytes` or more. The usage may
    /// be `USAGE_TTL` old, so a tenant can pass its quota by what it stores in that time.
    pub(crate) async fn check_storage_quota(&self) -> Result<()> {
        let Some(max) = self.settings().quotas.max_storage_bytes else {
            return Ok(());
        };
        if self.recent_usage().await?.storage_bytes() >= max {
            return Err(self.resource_limit("This homeserver has used all of its storage"));
        }
        Ok(())
    }

    /// Takes one event from the tenant's `max_messages_per_second` bucket.
    pub(crate) fn check_message_rate(&self) -> Result<()> {
        let Some(rate) = self.settings().quotas.max_messages_per_second else {
            return Ok(());
        };
        let bucket = Bucket {
            per_second: f64::from(rate),
            burst: rate.max(1),
        };
        self.quota_state().messages.take("messages", bucket)
    }

    /// Room for one more room under `max_rooms`, held until the room is stored.
    pub(crate) async fn room_slot(&self) -> Result<RoomSlot<'_>> {
        if self.settings().quotas.max_rooms.is_none() {
            return Ok(RoomSlot { _held: None });
        }
        let guard = self.quota_state().new_rooms.lock().await;
        // Read again under the lock: the quota may have changed while waiting.
        self.check_room_quota().await?;
        Ok(RoomSlot { _held: Some(guard) })
    }

    /// Refuses a new room once the tenant holds `max_rooms`. Without a `RoomSlot` (a join over
    /// federation, which takes too long to hold one), concurrent joins may pass it together.
    pub(crate) async fn check_room_quota(&self) -> Result<()> {
        let Some(max) = self.settings().quotas.max_rooms else {
            return Ok(());
        };
        if self.store().count_rooms().await? >= max {
            return Err(self.resource_limit("This homeserver has reached its room limit"));
        }
        Ok(())
    }

    /// The spec's answer to a homeserver's own limit: `M_RESOURCE_LIMIT_EXCEEDED`, with where
    /// its users can ask for more (the tenant's site).
    pub(crate) fn resource_limit(&self, message: &str) -> Error {
        Error::ResourceLimitExceeded {
            message: message.to_owned(),
            admin_contact: format!("https://{}/", self.primary_host()),
        }
    }
}
