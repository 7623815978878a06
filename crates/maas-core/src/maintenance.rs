//! Pruning what would otherwise only grow: a pass over the loaded tenants every
//! `retention.interval_secs` (an unloaded tenant writes nothing, so it has nothing new to
//! prune; it is pruned on a pass while it is loaded).
//!
//! What goes, and why it is safe:
//! - **A user's own notifications** (`event_push_actions`) that their newest unthreaded read
//!   receipt in the room covers: unread counts only count what follows that receipt. They stay
//!   `retention.notifications_secs` (30 days) first, for `GET /notifications`, which lists read
//!   notifications too. Unread ones stay until read, whatever their age: they are what the
//!   counts are made of. (Synapse also deletes push actions once read, keeping highlights for a
//!   month; it folds unread ones into a summary table, which these counts don't need.)
//! - **Room-wide notifications** (`room_push_actions`) that every joined local member has read
//!   or joined after, with the same delay: nobody's count includes them, and a member who joins
//!   later counts only what follows the join.
//! - **Device list changes** older than `retention.device_lists_secs` (30 days). Sync tokens
//!   are positions, held by clients, so no server record says which are still out there; a
//!   client syncing with a token from before the pruned positions gets every user it shares a
//!   room with as changed (`DeviceListChanges::complete`), so it re-queries their keys: correct,
//!   only more work, and only for clients that were away longer than the retention.
//! - **Stream marks**, beyond what the retentions need.
//! - **Received federation transaction ids** after a week: they only make an origin's retry
//!   of the same transaction harmless, and origins retry within hours; the events themselves
//!   are recognised by their ids anyway.
//!
//! Retention is in time but the tables are keyed by stream positions; each pass marks the
//! position the stream has reached (`RetentionStore::mark_stream`), and "older than N days"
//! becomes "at or below the newest position marked N days ago". A tenant that has not had
//! marks for that long prunes nothing yet.

use std::sync::Weak;
use std::time::Duration;

use crate::config::RetentionConfig;
use crate::{Platform, Result, Tenant, now_ms};

/// What one pass removed from one tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub push_actions: u64,
    pub room_push_actions: u64,
    pub device_list_changes: u64,
    pub stream_marks: u64,
    pub received_transactions: u64,
    /// Media ids created for uploads whose bytes never came in time.
    pub expired_media_ids: u64,
}

/// How long a received federation transaction is remembered, in seconds.
const RECEIVED_TRANSACTIONS_SECS: u64 = 7 * 24 * 3600;

/// Runs a pass every `interval_secs`, for as long as the platform lives.
pub(crate) fn spawn(platform: Weak<Platform>, interval_secs: u64) {
    if interval_secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(interval_secs));
        interval.tick().await;
        loop {
            interval.tick().await;
            let Some(platform) = platform.upgrade() else {
                return;
            };
            prune_loaded(&platform).await;
        }
    });
}

/// One pass over the loaded tenants, one after the other so that pruning never takes more
/// than one tenant's database at a time.
async fn prune_loaded(platform: &Platform) {
    let retention = platform.config().retention.clone();
    for tenant in platform.loaded_handles() {
        match prune_tenant(&tenant, &retention, now_ms()).await {
            Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                server_name = %tenant.server_name(),
                push_actions = pruned.push_actions,
                room_push_actions = pruned.room_push_actions,
                device_list_changes = pruned.device_list_changes,
                stream_marks = pruned.stream_marks,
                received_transactions = pruned.received_transactions,
                "tenant pruned"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                server_name = %tenant.server_name(),
                error = %e,
                "pruning failed; the next pass tries again"
            ),
        }
    }
}

/// Marks the tenant's stream position at `now` and prunes what the retention lets go.
pub async fn prune_tenant(
    tenant: &Tenant,
    retention: &RetentionConfig,
    now: i64,
) -> Result<Pruned> {
    let store = tenant.store();
    store.mark_stream(tenant.stream().current(), now).await?;
    let mut pruned = Pruned::default();
    if let Some(up_to) = store
        .stream_marked_by(before(now, retention.notifications_secs))
        .await?
    {
        pruned.push_actions = store.prune_read_push_actions(up_to).await?;
        pruned.room_push_actions = store
            .prune_room_push_actions(up_to, tenant.server_name().as_str())
            .await?;
    }
    if let Some(up_to) = store
        .stream_marked_by(before(now, retention.device_lists_secs))
        .await?
    {
        pruned.device_list_changes = store.prune_device_list_changes(up_to).await?;
    }
    let longest = retention
        .notifications_secs
        .max(retention.device_lists_secs);
    pruned.stream_marks = store.prune_stream_marks(before(now, longest)).await?;
    pruned.received_transactions = store
        .prune_received_transactions(before(now, RECEIVED_TRANSACTIONS_SECS))
        .await?;
    pruned.expired_media_ids = tenant.media().expire_pending().await?;
    Ok(pruned)
}

/// `secs` seconds before `now`, in milliseconds.
fn before(now: i64, secs: u64) -> i64 {
    now.saturating_sub(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
}
