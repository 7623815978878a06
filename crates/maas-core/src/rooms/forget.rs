//! Forgetting rooms the tenant's users are done with (tenant setting `rooms.forget_empty_rooms`,
//! on by default): once the last local member of a room left, or was kicked or banned, and no
//! local user is invited or knocking, the room is purged from the tenant's database. A room
//! other servers take part in lives on there; this server just no longer has a copy, and one
//! of our users joining it again starts from the room as those servers have it.
//!
//! A pipeline step notices our users leaving; once the leave is stored, the room's purge is
//! scheduled as an admin task (`purge_room`) that runs `forget_empty_rooms_after_secs` later
//! (the members' clients see the leave meanwhile, and a leave by mistake can be undone). The
//! purge checks again, under the room's lock, that nobody of ours came back.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use ruma::{OwnedRoomId, RoomId, UserId};

use super::steps::{Accepted, Derived, EventStep};
use crate::tenants::WeakTenant;
use crate::{Result, Tenant};

/// The pipeline step that notices the last local member leaving a room.
#[derive(Default)]
pub(crate) struct ForgetStep {
    /// Rooms a purge is being considered for: one at a time per room.
    considering: Arc<Mutex<HashSet<OwnedRoomId>>>,
}

#[async_trait]
impl EventStep for ForgetStep {
    fn name(&self) -> &'static str {
        "forget empty rooms"
    }

    async fn derive(&self, tenant: &Tenant, event: &Accepted, _into: &mut Derived) -> Result<()> {
        let Some(membership) = &event.new.membership else {
            return Ok(());
        };
        if matches!(membership.membership.as_str(), "join" | "invite" | "knock") {
            return Ok(());
        }
        let local = UserId::parse(&membership.user_id)
            .is_ok_and(|u| u.server_name() == tenant.server_name());
        if !local || !tenant.settings().rooms.forget_empty_rooms {
            return Ok(());
        }
        if !self.considering.lock().insert(event.room_id.clone()) {
            return Ok(());
        }
        tokio::spawn(consider(
            tenant.downgrade(),
            event.room_id.clone(),
            event.new.event.stream,
            self.considering.clone(),
        ));
        Ok(())
    }
}

/// Once the leave at `stream` is stored, schedules the room's purge if our users are all
/// gone from it.
async fn consider(
    tenant: WeakTenant,
    room_id: OwnedRoomId,
    stream: i64,
    considering: Arc<Mutex<HashSet<OwnedRoomId>>>,
) {
    if let Some(tenant) = tenant.upgrade() {
        tenant.stream().reached(stream).await;
        if let Err(e) = super::tasks::schedule_forget(&tenant, &room_id).await {
            tracing::warn!(%room_id, error = %e, "a room its users left was not forgotten");
        }
    }
    considering.lock().remove(&room_id);
}

/// Our user's invite or knock ended outside the room's timeline (a room none of our users is
/// joined to, which no pipeline step sees): the room may be left by all of them now.
pub(crate) fn left_outside_timeline(tenant: &Tenant, room_id: &RoomId) {
    let weak = tenant.downgrade();
    let room_id = room_id.to_owned();
    tokio::spawn(async move {
        let Some(tenant) = weak.upgrade() else {
            return;
        };
        if let Err(e) = super::tasks::schedule_forget(&tenant, &room_id).await {
            tracing::warn!(%room_id, error = %e, "a room its users left was not forgotten");
        }
    });
}
