//! Typing notifications (spec: Client-Server API, "Typing notifications"): ephemeral, kept in
//! memory only, but ordered in the tenant's stream so sync sees changes like any other.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use ruma::{RoomId, UserId};
use tokio::time::Instant;

use crate::stream::Audience;
use crate::{Error, Result, Tenant};

/// Longest a typing notice lasts without being renewed.
const MAX_TYPING: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct TypingState {
    rooms: Mutex<HashMap<String, RoomTyping>>,
}

#[derive(Default)]
struct RoomTyping {
    users: HashMap<String, Instant>,
    /// Stream position of the last change.
    position: i64,
}

impl TypingState {
    /// The users typing in `room_id`, if that changed after stream position `since`.
    pub fn changed_since(&self, room_id: &str, since: i64) -> Option<Vec<String>> {
        let rooms = self.rooms.lock();
        let room = rooms.get(room_id)?;
        if room.position <= since {
            return None;
        }
        let now = Instant::now();
        let mut users: Vec<String> = room
            .users
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(u, _)| u.clone())
            .collect();
        users.sort();
        Some(users)
    }
}

impl Tenant {
    /// `PUT /rooms/{roomId}/typing/{userId}`, for a member of the room.
    pub async fn set_typing(
        &self,
        user: &UserId,
        room_id: &RoomId,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let membership = self
            .store()
            .membership(room_id.as_str(), user.as_str())
            .await?;
        if membership.is_none_or(|m| m.membership != "join") {
            return Err(Error::Forbidden(format!("You are not joined to {room_id}")));
        }
        let mut writer = self.stream().writer().await;
        let position = writer.next_for(typing_audience(room_id.as_str())).await?;
        {
            let mut rooms = self.typing().rooms.lock();
            let room = rooms.entry(room_id.to_string()).or_default();
            match timeout {
                Some(timeout) => {
                    let until = Instant::now() + timeout.min(MAX_TYPING);
                    room.users.insert(user.to_string(), until);
                }
                None => {
                    room.users.remove(user.as_str());
                }
            }
            room.position = position;
        }
        writer.publish(position);
        drop(writer);
        if let Some(timeout) = timeout {
            self.expire_typing_later(user, room_id, timeout.min(MAX_TYPING));
        }
        self.tell_other_servers(user, room_id, timeout.is_some())
            .await;
        Ok(())
    }

    /// Sends our user's typing notice to the room's other servers (`m.typing` EDU); theirs
    /// came from their servers and go nowhere.
    async fn tell_other_servers(&self, user: &UserId, room_id: &RoomId, typing: bool) {
        if user.server_name() != self.server_name() {
            return;
        }
        let content = serde_json::json!({
            "room_id": room_id,
            "user_id": user,
            "typing": typing,
        });
        if let Err(e) = self
            .sender()
            .send_edu_to_room(self, room_id, "m.typing", content)
            .await
        {
            tracing::debug!(%room_id, error = %e, "typing notice not sent to other servers");
        }
    }

    /// Announces the end of a typing notice that was not renewed.
    fn expire_typing_later(&self, user: &UserId, room_id: &RoomId, after: Duration) {
        let tenant = self.clone();
        let (user, room_id) = (user.to_string(), room_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let expired = {
                let rooms = tenant.typing().rooms.lock();
                rooms
                    .get(&room_id)
                    .and_then(|r| r.users.get(&user))
                    .is_some_and(|until| *until <= Instant::now())
            };
            if !expired {
                return;
            }
            let mut writer = tenant.stream().writer().await;
            let Ok(position) = writer.next_for(typing_audience(&room_id)).await else {
                return;
            };
            if let Some(room) = tenant.typing().rooms.lock().get_mut(&room_id) {
                room.users.remove(&user);
                room.position = position;
            }
            writer.publish(position);
            drop(writer);
            if let (Ok(user), Ok(room_id)) = (UserId::parse(&user), RoomId::parse(&room_id)) {
                tenant.tell_other_servers(&user, &room_id, false).await;
            }
        });
    }
}

/// Typing concerns the room's members.
fn typing_audience(room_id: &str) -> Audience {
    Audience::Room {
        room_id: room_id.to_owned(),
        user: None,
    }
}
