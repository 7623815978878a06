//! The user's own data in a sync: account data (global and per room) and the presence of the
//! people they share a room with.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::Builder;
use crate::Result;
use crate::push::PUSH_RULES_TYPE;

/// Account data changed in range (all of it for an initial sync), as events.
pub(super) struct AccountData {
    pub global: Vec<Value>,
    pub rooms: BTreeMap<String, Vec<Value>>,
}

impl Builder<'_> {
    /// Global and room account data, from one read.
    pub(super) async fn account_data(&self) -> Result<AccountData> {
        let records = self
            .tenant
            .store()
            .account_data_in(self.user.localpart(), self.range())
            .await?;
        let has_push_rules = records
            .iter()
            .any(|r| r.room_id.is_none() && r.data_type == PUSH_RULES_TYPE);
        let mut global = Vec::new();
        let mut rooms: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for record in records {
            match record.room_id {
                // Room account data is sent whatever the account data filter says.
                Some(room) => rooms
                    .entry(room)
                    .or_default()
                    .push(account_data_event(&record.data_type, &record.content)),
                None if self.filter.account_data.accepts_type(&record.data_type) => {
                    global.push(account_data_event(&record.data_type, &record.content));
                }
                None => {}
            }
        }
        // Clients read their push rules from account data: an initial sync always carries them,
        // the server defaults until the user changes one.
        if self.since.is_none()
            && !has_push_rules
            && self.filter.account_data.accepts_type(PUSH_RULES_TYPE)
        {
            let content = crate::push::account_data_content(self.tenant, self.user).await?;
            global.push(json!({ "type": PUSH_RULES_TYPE, "content": content }));
        }
        Ok(AccountData { global, rooms })
    }

    /// Presence of the user and of everyone sharing a joined room with them, changed in range.
    pub(super) async fn presence(&self, joined: &[String]) -> Result<Vec<Value>> {
        if !self.filter.presence.accepts_type("m.presence") {
            return Ok(Vec::new());
        }
        let known = self.tenant.presence_since(self.since);
        let others: Vec<String> = known
            .iter()
            .map(|(user, _)| user.clone())
            .filter(|user| user != self.user.as_str())
            .collect();
        // Who of them shares a room: one read for all.
        let sharing: HashSet<String> = if others.is_empty() || joined.is_empty() {
            HashSet::new()
        } else {
            self.tenant
                .store()
                .users_joined_to_any(&others, joined)
                .await?
                .into_iter()
                .collect()
        };
        Ok(known
            .into_iter()
            .filter(|(user, _)| user == self.user.as_str() || sharing.contains(user))
            .map(|(_, event)| event)
            .collect())
    }
}

fn account_data_event(data_type: &str, content: &str) -> Value {
    let content: Value = serde_json::from_str(content).unwrap_or_else(|_| json!({}));
    json!({ "type": data_type, "content": content })
}
