//! Presence (spec: Client-Server API, "Presence"; Server-Server API, "Presence"): online,
//! unavailable or offline, with a status message. Kept in memory like typing — a restart makes
//! everyone offline, which is what presence means after a restart anyway — and ordered in the
//! tenant's stream for sync. Our users' changes go to the servers sharing a room with them
//! (`m.presence` EDU); other servers' users' come from theirs.

use std::collections::HashMap;

use parking_lot::Mutex;
use ruma::UserId;
use serde_json::{Value, json};

use crate::accounts::AuthedUser;
use crate::stream::Audience;
use crate::{Error, Result, Tenant, now_ms};

/// Longest status message kept.
const MAX_STATUS_LEN: usize = 1024;

#[derive(Default)]
pub struct PresenceState {
    users: Mutex<HashMap<String, UserPresence>>,
}

#[derive(Clone, Debug)]
struct UserPresence {
    state: String,
    status_msg: Option<String>,
    last_active_ts: i64,
    position: i64,
}

impl UserPresence {
    fn content(&self, user_id: &str) -> Value {
        let mut content = json!({
            "presence": self.state,
            "last_active_ago": now_ms().saturating_sub(self.last_active_ts),
            "currently_active": self.state == "online",
        });
        if let Some(msg) = &self.status_msg {
            content["status_msg"] = json!(msg);
        }
        json!({ "type": "m.presence", "sender": user_id, "content": content })
    }
}

fn check_state(state: &str) -> Result<()> {
    if matches!(state, "online" | "offline" | "unavailable") {
        Ok(())
    } else {
        Err(Error::InvalidParam(format!(
            "Unknown presence state {state}"
        )))
    }
}

impl Tenant {
    /// `PUT /presence/{userId}/status`, and `set_presence` of `/sync`.
    pub async fn set_presence(
        &self,
        user: &AuthedUser,
        target: &UserId,
        state: &str,
        status_msg: Option<&str>,
    ) -> Result<()> {
        if user.user_id != target {
            return Err(Error::Forbidden(
                "You can only set your own presence".into(),
            ));
        }
        check_state(state)?;
        if status_msg.is_some_and(|m| m.len() > MAX_STATUS_LEN) {
            return Err(Error::InvalidParam("Status message is too long".into()));
        }
        let unchanged = self
            .presence()
            .users
            .lock()
            .get(target.as_str())
            .is_some_and(|p| p.state == state && p.status_msg.as_deref() == status_msg);
        if unchanged {
            // Refresh activity without waking every syncing client.
            if let Some(p) = self.presence().users.lock().get_mut(target.as_str()) {
                p.last_active_ts = now_ms();
            }
            return Ok(());
        }
        self.record_presence(target, state, status_msg, now_ms())
            .await?;
        self.announce_presence(target, state, status_msg).await;
        Ok(())
    }

    /// Keeps `user`'s presence at a new stream position that wakes those sharing a room.
    async fn record_presence(
        &self,
        user: &UserId,
        state: &str,
        status_msg: Option<&str>,
        last_active_ts: i64,
    ) -> Result<()> {
        let audience = Audience::sharing(self.store(), user).await?;
        let mut writer = self.stream().writer().await;
        let position = writer.next_for(audience).await?;
        self.presence().users.lock().insert(
            user.to_string(),
            UserPresence {
                state: state.to_owned(),
                status_msg: status_msg.map(str::to_owned),
                last_active_ts,
                position,
            },
        );
        writer.publish(position);
        Ok(())
    }

    /// Sends our user's new presence to the servers sharing a room with them.
    async fn announce_presence(&self, user: &UserId, state: &str, status_msg: Option<&str>) {
        let mut update = json!({
            "user_id": user,
            "presence": state,
            "last_active_ago": 0,
            "currently_active": state == "online",
        });
        if let Some(msg) = status_msg {
            update["status_msg"] = json!(msg);
        }
        let content = json!({ "push": [update] });
        let sent = self
            .sender()
            .send_edu_to_sharing(self, user, "m.presence", content)
            .await;
        if let Err(e) = sent {
            tracing::debug!(%user, error = %e, "presence not sent to other servers");
        }
    }

    /// The presence of another server's user, as its server tells it (`m.presence` EDU).
    pub(crate) async fn remote_presence(
        &self,
        user: &UserId,
        state: &str,
        status_msg: Option<&str>,
        last_active_ago: u64,
    ) -> Result<()> {
        check_state(state)?;
        let status_msg = status_msg.filter(|m| m.len() <= MAX_STATUS_LEN);
        let ago = i64::try_from(last_active_ago).unwrap_or(i64::MAX);
        self.record_presence(user, state, status_msg, now_ms().saturating_sub(ago))
            .await
    }

    /// What `/sync`'s `set_presence` does: `online` or `unavailable` marks the user so (keeping
    /// their status message), `offline` leaves their presence alone.
    pub(crate) async fn mark_presence_from_sync(
        &self,
        user: &AuthedUser,
        state: &str,
    ) -> Result<()> {
        check_state(state)?;
        if state == "offline" {
            return Ok(());
        }
        let status = self
            .presence()
            .users
            .lock()
            .get(user.user_id.as_str())
            .and_then(|p| p.status_msg.clone());
        self.set_presence(user, &user.user_id, state, status.as_deref())
            .await
    }

    /// `GET /presence/{userId}/status`: a local user, or another server's as its server last
    /// told us; offline when nothing is known.
    pub async fn presence_of(&self, target: &UserId) -> Result<Value> {
        let not_found = || Error::NotFound(format!("Unknown user {target}"));
        if target.server_name() != self.server_name() {
            let known = self.presence().users.lock().get(target.as_str()).cloned();
            return Ok(match known {
                Some(p) => p.content(target.as_str())["content"].clone(),
                None => json!({ "presence": "offline" }),
            });
        }
        let user = self
            .store()
            .user(target.localpart())
            .await?
            .ok_or_else(not_found)?;
        if user.deactivated {
            return Err(not_found());
        }
        let known = self.presence().users.lock().get(target.as_str()).cloned();
        Ok(match known {
            Some(p) => p.content(target.as_str())["content"].clone(),
            None => json!({ "presence": "offline" }),
        })
    }

    /// Presence changed after stream position `since` (everything known for an initial sync),
    /// as `(user id, m.presence event)` in stream order.
    pub(crate) fn presence_since(&self, since: Option<i64>) -> Vec<(String, Value)> {
        let known = self.presence().users.lock();
        let mut events: Vec<(i64, String, Value)> = known
            .iter()
            .filter(|(_, p)| since.is_none_or(|s| p.position > s))
            .map(|(user, p)| (p.position, user.clone(), p.content(user)))
            .collect();
        events.sort_by_key(|(position, _, _)| *position);
        events
            .into_iter()
            .map(|(_, user, event)| (user, event))
            .collect()
    }
}
