//! Ephemeral events of a joined room in a sync: who is typing, and the read receipts that
//! changed in range.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Builder;
use crate::store::ReceiptRecord;

impl Builder<'_> {
    /// Typing and receipts of a room that changed in range; `receipts` are the room's, in
    /// stream order.
    pub(super) fn ephemeral(&self, room_id: &str, receipts: &[ReceiptRecord]) -> Vec<Value> {
        let mut events = Vec::new();
        if let Some(users) = self
            .tenant
            .typing()
            .changed_since(room_id, self.range().after)
        {
            events.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
        }
        if let Some(receipt) = self.receipt_event(receipts) {
            events.push(receipt);
        }
        events
    }

    /// One `m.receipt` event for all of `receipts` that the user may see, if any.
    fn receipt_event(&self, receipts: &[ReceiptRecord]) -> Option<Value> {
        let mut content: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for receipt in receipts {
            // Private receipts are only ever shown to their owner.
            if receipt.receipt_type == "m.read.private" && receipt.user_id != self.user.as_str() {
                continue;
            }
            let mut data = json!({ "ts": receipt.ts });
            if let Some(thread) = &receipt.thread_id {
                data["thread_id"] = json!(thread);
            }
            let by_type = content.entry(&receipt.event_id).or_default();
            let users = by_type
                .entry(receipt.receipt_type.clone())
                .or_insert_with(|| json!({}));
            users[receipt.user_id.as_str()] = data;
        }
        (!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content }))
    }
}
