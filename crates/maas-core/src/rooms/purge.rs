//! Removing a room, or the old part of its history, from the tenant's database (Synapse:
//! "purge room", "purge history"). Each runs under the room's write lock once the room's
//! pending events are stored, so nothing is built on what goes; the store removes the rows in
//! transactions of bounded size, and the tenant's caches then forget what they held of them.
//!
//! Only this server's copy goes: a room other servers take part in lives on there. Before
//! our copy goes, what we still had to tell them (our users' leaves) is given time to reach
//! them.

use std::time::Duration;

use ruma::{EventId, RoomId, UserId};

use crate::store::HistoryPurge;
use crate::{Error, Result, Tenant};

/// How often a purge waiting for the room's queued PDUs to go out looks again.
const DELIVERY_POLL: Duration = Duration::from_secs(5);

/// Who asks for a room's purge, which decides when it may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoomPurge {
    /// A tenant admin: refused while a local user is joined, unless `force`d (Synapse's
    /// `force_purge`).
    Admin { force: bool },
    /// The room's last local member left: it goes only while no local user is joined,
    /// invited or knocking.
    Forgotten,
}

impl RoomPurge {
    /// How long the room's PDUs queued for other servers are waited for: an admin's purge
    /// goes ahead soon; a forgotten room waits long, since purging it first would keep our
    /// users' leaves from the servers still in the room.
    fn patience(self) -> Duration {
        match self {
            RoomPurge::Admin { .. } => Duration::from_secs(60),
            RoomPurge::Forgotten => Duration::from_secs(3600),
        }
    }
}

/// What became of a room's purge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purged {
    /// The room's rows are gone.
    Room,
    /// Nothing went: the room is not known here, or (forgotten) a local user is in it again.
    Nothing,
}

/// Purges the room's rows from the tenant's database, as `how` allows.
pub(crate) async fn purge_room(
    tenant: &Tenant,
    room_id: &RoomId,
    how: RoomPurge,
) -> Result<Purged> {
    wait_for_delivery(tenant, room_id, how.patience()).await?;
    let writer = tenant.room_locks().lock(room_id).await;
    if let Some(last) = tenant.room_heads().last_stream(tenant, &writer) {
        tenant.stream().reached(last).await;
    }
    let store = tenant.store();
    if store.room(room_id.as_str()).await?.is_none() {
        return Ok(Purged::Nothing);
    }
    let local = local_memberships(tenant, room_id).await?;
    match how {
        RoomPurge::Admin { force: false } if local.iter().any(|m| m == "join") => {
            return Err(Error::Unknown("Users are still joined to this room".into()));
        }
        RoomPurge::Forgotten
            if local
                .iter()
                .any(|m| matches!(m.as_str(), "join" | "invite" | "knock")) =>
        {
            return Ok(Purged::Nothing);
        }
        _ => {}
    }
    let removed = store.purge_room(room_id.as_str()).await?;
    tenant.room_heads().forget(tenant, room_id);
    tenant.partial_rooms().remove(room_id);
    forget_events(tenant, &removed);
    drop(writer);
    tracing::info!(%room_id, events = removed.len(), "room purged");
    Ok(Purged::Room)
}

/// Purges the room's timeline events at a depth below `before_depth` (state events, the
/// room's newest events and, unless `delete_local_events`, our users' events stay); returns
/// how many went.
pub(crate) async fn purge_history(
    tenant: &Tenant,
    room_id: &RoomId,
    before_depth: i64,
    delete_local_events: bool,
) -> Result<usize> {
    let writer = tenant.room_locks().lock(room_id).await;
    if let Some(last) = tenant.room_heads().last_stream(tenant, &writer) {
        tenant.stream().reached(last).await;
    }
    let purge = HistoryPurge {
        room_id: room_id.to_string(),
        before_depth,
        keep_local_of: (!delete_local_events).then(|| tenant.server_name().to_string()),
    };
    let removed = tenant.store().purge_history(&purge).await?;
    forget_events(tenant, &removed);
    drop(writer);
    tracing::info!(%room_id, events = removed.len(), "room history purged");
    Ok(removed.len())
}

/// Whether the room is known here and none of our users is joined, invited or knocking.
pub(crate) async fn is_left_by_local_users(tenant: &Tenant, room_id: &RoomId) -> Result<bool> {
    if tenant.store().room(room_id.as_str()).await?.is_none() {
        return Ok(false);
    }
    let local = local_memberships(tenant, room_id).await?;
    Ok(!local
        .iter()
        .any(|m| matches!(m.as_str(), "join" | "invite" | "knock")))
}

/// The memberships our users have in the room.
async fn local_memberships(tenant: &Tenant, room_id: &RoomId) -> Result<Vec<String>> {
    let ours = tenant.server_name();
    Ok(tenant
        .store()
        .room_members(room_id.as_str(), None)
        .await?
        .into_iter()
        .filter(|m| UserId::parse(&m.user_id).is_ok_and(|u| u.server_name() == ours))
        .map(|m| m.membership)
        .collect())
}

/// Waits, at most `patience`, until none of the room's PDUs is queued for another server.
async fn wait_for_delivery(tenant: &Tenant, room_id: &RoomId, patience: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let queued = tenant
            .store()
            .outbound_pdus_of_room(room_id.as_str())
            .await?;
        if queued == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::info!(%room_id, queued, "purging before every server got the room's last events");
            return Ok(());
        }
        // A tenant with work under way is not unloaded meanwhile.
        tenant.touch();
        tokio::time::sleep(DELIVERY_POLL).await;
    }
}

/// Drops the cached PDUs of removed events and the cached states of groups (some of which
/// went with them).
fn forget_events(tenant: &Tenant, event_ids: &[String]) {
    let cache = tenant.state_cache();
    for id in event_ids {
        if let Ok(id) = EventId::parse(id) {
            cache.forget(&id);
        }
    }
    cache.forget_stored_groups();
}
