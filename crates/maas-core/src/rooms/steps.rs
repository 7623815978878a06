//! The steps of the event pipeline that consumers of events register, as a list the tenant
//! owns. Every event that passes its checks, local or received, goes through the same list:
//! each step may derive rows that are stored in the same transaction as the event (so they are
//! never lost nor seen before it), and is told once the event is durable. Push evaluation and
//! the federation sender are steps; the application service sender will register here too,
//! never as a second write path.

use std::sync::Arc;

use async_trait::async_trait;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};

use crate::store::{
    EventBatch, MembershipRecord, NewEvent, NewStateGroup, OutboundPduRecord, OutlierRecord,
    PartialStateRecord, PushActionRecord, RoomPushActionRecord, RoomRecord,
};
use crate::{Result, Tenant};

/// An event that passed its checks, with everything its commit stores and what the steps
/// need to know about it.
pub(crate) struct Accepted {
    pub(crate) new: NewEvent,
    pub(crate) room_id: OwnedRoomId,
    pub(crate) rules: RoomVersionRules,
    /// Joined members right after the event (with its own membership change): who its
    /// notifications are for, as the memberships stored with it say.
    pub(crate) members: Arc<Vec<OwnedUserId>>,
    /// The event this one redacts, whose cached PDU changes with the commit.
    pub(crate) redacts: Option<OwnedEventId>,
    /// For a room's first event here (its create event, or our join of a room of other
    /// servers): what the room starts with.
    pub(crate) starts: Option<RoomStart>,
    /// State groups the event needs stored before it besides its own (a received fork's state
    /// before it, the room's resolved state).
    pub(crate) state_groups: Vec<NewStateGroup>,
}

/// What a room starts with besides its first event here, stored with that event.
pub(crate) struct RoomStart {
    /// The room's row; `None` for a room known already (joined again over federation).
    pub(crate) room: Option<RoomRecord>,
    /// The state before the first event: empty for a new room, the room's state for a join.
    pub(crate) state_group: NewStateGroup,
    /// For a join over federation: the events of that state and their auth chain.
    pub(crate) outliers: Vec<OutlierRecord>,
    /// For a join over federation: the memberships that state holds, positioned with the join.
    pub(crate) memberships: Vec<MembershipRecord>,
    /// For a join with members omitted: what is left to fetch.
    pub(crate) partial_state: Option<PartialStateRecord>,
}

impl RoomStart {
    /// What a new room starts with: its row and its empty state.
    pub(crate) fn created(room: RoomRecord, empty: NewStateGroup) -> Self {
        Self {
            room: Some(room),
            state_group: empty,
            outliers: Vec::new(),
            memberships: Vec::new(),
            partial_state: None,
        }
    }

    /// Moves the room's start into the batch about to be stored.
    pub(crate) fn into_batch(self, batch: &mut EventBatch) {
        batch.rooms.extend(self.room);
        batch.state_groups.push(self.state_group);
        batch.outliers.extend(self.outliers);
        batch.memberships.extend(self.memberships);
        batch.partial_states.extend(self.partial_state);
    }
}

/// What steps derive from a batch of events, stored with it in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Derived {
    pub(crate) push_actions: Vec<PushActionRecord>,
    pub(crate) room_push_actions: Vec<RoomPushActionRecord>,
    pub(crate) outbound_pdus: Vec<OutboundPduRecord>,
}

impl Derived {
    /// Moves what was derived into the batch about to be stored.
    pub(crate) fn into_batch(self, batch: &mut EventBatch) {
        batch.push_actions.extend(self.push_actions);
        batch.room_push_actions.extend(self.room_push_actions);
        batch.outbound_pdus.extend(self.outbound_pdus);
    }
}

/// One consumer of accepted events.
#[async_trait]
pub(crate) trait EventStep: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;

    /// Derives what `event` adds to its batch, before the batch is stored. Called for each
    /// event of a tenant in commit order, one at a time. Derived data must never cost the
    /// event: an error is logged and the event stored without it.
    async fn derive(&self, _tenant: &Tenant, _event: &Accepted, _into: &mut Derived) -> Result<()> {
        Ok(())
    }

    /// Called once `events` are durable, in stream order within each room.
    fn committed(&self, _tenant: &Tenant, _events: &[NewEvent]) {}
}

/// The steps of one tenant, in the order they run.
#[derive(Clone, Default)]
pub(crate) struct Steps(Arc<Vec<Arc<dyn EventStep>>>);

impl Steps {
    pub(crate) fn new(steps: Vec<Arc<dyn EventStep>>) -> Self {
        Self(Arc::new(steps))
    }

    /// Every step's derivation for `event`.
    pub(crate) async fn derive(&self, tenant: &Tenant, event: &Accepted) -> Derived {
        let mut derived = Derived::default();
        for step in self.0.iter() {
            if let Err(err) = step.derive(tenant, event, &mut derived).await {
                tracing::warn!(
                    step = step.name(),
                    event_id = %event.new.event.event_id,
                    error = %err,
                    "an event step failed; the event is stored without what it derives"
                );
            }
        }
        derived
    }

    /// Tells every step that `events` are durable.
    pub(crate) fn committed(&self, tenant: &Tenant, events: &[NewEvent]) {
        for step in self.0.iter() {
            step.committed(tenant, events);
        }
    }
}
