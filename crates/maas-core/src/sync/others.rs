//! Rooms the user is invited to, knocked on or left, in a sync.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Builder, token};
use crate::Result;
use crate::filter::DEFAULT_TIMELINE_LIMIT;
use crate::rooms::client_format::client_events_of;
use crate::store::{Direction, EventRecord, MembershipRecord, StreamRange};

/// The `invite`, `knock` and `leave` sections of a response.
#[derive(Default)]
pub(super) struct OtherRooms {
    pub invite: Map<String, Value>,
    pub knock: Map<String, Value>,
    pub leave: Map<String, Value>,
}

impl OtherRooms {
    pub fn is_empty(&self) -> bool {
        self.invite.is_empty() && self.knock.is_empty() && self.leave.is_empty()
    }
}

impl Builder<'_> {
    pub(super) async fn other_rooms(
        &self,
        memberships: &[&MembershipRecord],
    ) -> Result<OtherRooms> {
        let store = self.tenant.store();
        let mut rooms = OtherRooms::default();
        // Invites and knocks are sent when new, and all of them in an initial sync.
        let pending: Vec<&MembershipRecord> = memberships
            .iter()
            .copied()
            .filter(|m| matches!(m.membership.as_str(), "invite" | "knock"))
            .filter(|m| self.in_range(m.stream) || self.since.is_none())
            .collect();
        if !pending.is_empty() {
            let ids: Vec<String> = pending.iter().map(|m| m.event_id.clone()).collect();
            let events: HashMap<String, EventRecord> = store
                .events(&ids)
                .await?
                .into_iter()
                .map(|e| (e.event_id.clone(), e))
                .collect();
            for membership in pending {
                let stripped = stripped(membership, events.get(&membership.event_id));
                let (section, key) = match membership.membership.as_str() {
                    "invite" => (&mut rooms.invite, "invite_state"),
                    _ => (&mut rooms.knock, "knock_state"),
                };
                section.insert(
                    membership.room_id.clone(),
                    json!({ key: { "events": stripped } }),
                );
            }
        }
        for membership in memberships {
            let new = self.in_range(membership.stream);
            let left = matches!(membership.membership.as_str(), "leave" | "ban");
            let wanted = (new && self.since.is_some())
                || (self.filter.room.include_leave && self.since.is_none());
            if !left || !wanted {
                continue;
            }
            if store
                .is_forgotten(&membership.room_id, self.user.as_str())
                .await?
            {
                continue;
            }
            rooms.leave.insert(
                membership.room_id.clone(),
                self.left_room(membership).await?,
            );
        }
        Ok(rooms)
    }

    /// A room the user left: its timeline up to the leave.
    async fn left_room(&self, membership: &MembershipRecord) -> Result<Value> {
        let limit = self.filter.room.timeline.limit_or(DEFAULT_TIMELINE_LIMIT);
        let range = StreamRange {
            after: self.range().after,
            up_to: membership.stream,
        };
        let store = self.tenant.store();
        let mut events = store
            .room_events(&membership.room_id, range, Direction::Backward, limit + 1)
            .await?;
        let limited = events.len() > limit as usize;
        events.truncate(limit as usize);
        events.reverse();
        let refs: Vec<&EventRecord> = events.iter().collect();
        let mut timeline = client_events_of(self.tenant, &refs, Some(self.viewer)).await?;
        for event in &mut timeline {
            if let Some(object) = event.as_object_mut() {
                object.remove("room_id");
            }
        }
        let prev_batch = events.first().map_or(membership.stream, |e| e.stream - 1);
        Ok(json!({
            "timeline": { "events": timeline, "limited": limited, "prev_batch": token(prev_batch) },
            "state": { "events": [] },
            "account_data": { "events": [] },
        }))
    }
}

/// The stripped state of an invite or knock, with the membership event itself when stored.
fn stripped(membership: &MembershipRecord, event: Option<&EventRecord>) -> Vec<Value> {
    let mut events: Vec<Value> = membership
        .stripped_state
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    if let Some(event) = event {
        let pdu: Value = serde_json::from_str(&event.pdu).unwrap_or_else(|_| json!({}));
        events.push(json!({
            "type": event.event_type,
            "state_key": event.state_key,
            "sender": event.sender,
            "content": pdu.get("content").cloned().unwrap_or_else(|| json!({})),
        }));
    }
    events
}
