//! What both backends do alike with a batch of events before writing it.

use crate::NewEvent;

/// The last event of each room in `batch`, in order of first appearance.
pub(crate) fn last_per_room(batch: &[NewEvent]) -> Vec<&NewEvent> {
    let mut last: Vec<&NewEvent> = Vec::new();
    for new in batch {
        match last
            .iter_mut()
            .find(|n| n.event.room_id == new.event.room_id)
        {
            Some(slot) => *slot = new,
            None => last.push(new),
        }
    }
    last
}
