//! Push evaluation as a step of the event pipeline: the notifications an event causes are
//! derived before it is stored, and stored in its transaction, so unread counts never lag
//! behind the timeline nor lose an event's notifications.

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::evaluation::{StateInputs, evaluate};
use crate::rooms::steps::{Accepted, Derived, EventStep};
use crate::{Result, Tenant};

/// The step of one tenant; what it keeps of the room state carries from one event to the
/// next (they are derived one at a time, in commit order).
#[derive(Default)]
pub(crate) struct PushStep {
    inputs: Mutex<StateInputs>,
}

#[async_trait]
impl EventStep for PushStep {
    fn name(&self) -> &'static str {
        "push evaluation"
    }

    async fn derive(&self, tenant: &Tenant, event: &Accepted, into: &mut Derived) -> Result<()> {
        let mut inputs = self.inputs.lock().await;
        let found = evaluate(
            tenant,
            &event.room_id,
            &event.rules,
            &event.new.event,
            &event.members,
            &mut inputs,
        )
        .await?;
        into.push_actions.extend(found.users);
        into.room_push_actions.extend(found.room);
        Ok(())
    }
}
