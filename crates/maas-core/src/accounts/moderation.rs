//! What an admin restricts about a user and what the send path checks for it: suspension
//! (MSC3823), shadow-bans, and the user's own message rate. Read on every send, so kept per
//! tenant in a cache that every admin change invalidates.

use ruma::events::TimelineEventType;
use ruma::{OwnedEventId, UserId};

use super::Accounts;
use crate::cache::GuardedLru;
use crate::config::Bucket;
use crate::ratelimit::{RateLimiter, override_bucket};
use crate::rooms::EventDraft;
use crate::{Error, Result, secrets};

/// Synapse's refusal of a suspended user's message (and of anything else it builds for them,
/// such as a new room's first event).
pub(crate) const SENDING_SUSPENDED: &str =
    "Sending messages while account is suspended is not allowed.";

/// Users whose restrictions are cached per tenant at most.
const CACHED_USERS: usize = 4096;

/// What an admin set about one user that their sends must obey.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Restrictions {
    pub(crate) suspended: bool,
    pub(crate) shadow_banned: bool,
    /// The user's own message rate (an admin's override); `None`: no limit of their own.
    pub(crate) message_rate: Option<Bucket>,
}

/// A tenant's cache of restrictions, and the buckets of the users with a rate of their own.
/// The buckets count whatever `rate_limits.enabled` says: an admin set this user's rate.
pub(crate) struct Moderation {
    cache: GuardedLru<String, Restrictions>,
    messages: RateLimiter,
}

impl Default for Moderation {
    fn default() -> Self {
        Self {
            cache: GuardedLru::new(CACHED_USERS),
            messages: RateLimiter::new(true),
        }
    }
}

impl Moderation {
    /// Forgets every cached restriction; call after an admin's change is stored.
    pub(crate) fn invalidate(&self) {
        self.cache.invalidate();
    }
}

/// The event id a shadow-banned user's send gets: the shape of a room version 4+ id, of an
/// event that exists nowhere.
pub(crate) fn fake_event_id() -> Result<OwnedEventId> {
    let id = format!("${}", secrets::random_alphanumeric(43));
    OwnedEventId::try_from(id).map_err(|e| Error::Internal(format!("fake event id: {e}")))
}

impl Accounts<'_> {
    /// What restricts `user`'s sends; nothing for users of other servers or unknown ones.
    pub(crate) async fn restrictions(&self, user: &UserId) -> Result<Restrictions> {
        if user.server_name() != self.tenant.server_name() {
            return Ok(Restrictions::default());
        }
        let moderation = self.tenant.moderation();
        let localpart = user.localpart();
        if let Some(cached) = moderation.cache.get(localpart) {
            return Ok(cached);
        }
        let generation = moderation.cache.generation();
        let store = self.tenant.store();
        let Some(record) = store.user(localpart).await? else {
            return Ok(Restrictions::default());
        };
        let message_rate = store
            .ratelimit_override(localpart)
            .await?
            .and_then(|o| override_bucket(o.messages_per_second, o.burst_count));
        let restrictions = Restrictions {
            suspended: record.suspended,
            shadow_banned: record.shadow_banned,
            message_rate,
        };
        moderation
            .cache
            .put(generation, localpart.to_owned(), restrictions);
        Ok(restrictions)
    }

    /// Takes one message from the user's own bucket, when an admin gave them a rate.
    pub(crate) fn take_message(&self, user: &UserId, restrictions: &Restrictions) -> Result<()> {
        let Some(bucket) = restrictions.message_rate else {
            return Ok(());
        };
        self.tenant
            .moderation()
            .messages
            .take(user.localpart(), bucket)
    }

    /// `403 M_USER_SUSPENDED` with `message` when the user is suspended.
    pub(crate) async fn ensure_not_suspended(&self, user: &UserId, message: &str) -> Result<()> {
        if self.restrictions(user).await?.suspended {
            return Err(Error::UserSuspended(message.to_owned()));
        }
        Ok(())
    }

    /// Screens an event a local user sends (not one of the server's own doing): `Some` fake
    /// event id when the user is shadow-banned (the event is dropped, as Synapse drops it;
    /// membership changes are not), `403 M_USER_SUSPENDED` for what a suspended user may not
    /// send (only redactions of their own events and leaving), `429` past their own rate.
    pub(crate) async fn screen_send(
        &self,
        sender: &UserId,
        draft: &EventDraft,
    ) -> Result<Option<OwnedEventId>> {
        let restrictions = self.restrictions(sender).await?;
        let membership = draft.kind == TimelineEventType::RoomMember;
        if restrictions.shadow_banned && !membership {
            return fake_event_id().map(Some);
        }
        if restrictions.suspended {
            self.allowed_while_suspended(sender, draft).await?;
        }
        self.take_message(sender, &restrictions)?;
        Ok(None)
    }

    /// Synapse's "corrective" actions a suspended user may still take.
    async fn allowed_while_suspended(&self, sender: &UserId, draft: &EventDraft) -> Result<()> {
        match draft.kind {
            TimelineEventType::RoomRedaction => {
                let Some(redacts) = &draft.redacts else {
                    return Ok(());
                };
                let event = self.tenant.store().event(redacts.as_str()).await?;
                if event.is_some_and(|e| e.sender != sender.as_str()) {
                    return Err(Error::UserSuspended(
                        "You can only redact your own events while account is suspended.".into(),
                    ));
                }
                Ok(())
            }
            TimelineEventType::RoomMember => {
                if draft.content.get("membership").and_then(|m| m.as_str()) != Some("leave") {
                    return Err(Error::UserSuspended(
                        "Changing membership while account is suspended is not allowed.".into(),
                    ));
                }
                Ok(())
            }
            _ => Err(Error::UserSuspended(SENDING_SUSPENDED.into())),
        }
    }

    /// Whether what the user sends should look accepted and reach nobody.
    pub(crate) async fn is_shadow_banned(&self, user: &UserId) -> Result<bool> {
        Ok(self.restrictions(user).await?.shadow_banned)
    }
}
