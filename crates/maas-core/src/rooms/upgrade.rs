//! Room upgrades (spec: Client-Server API, "Room upgrades"): a new room in the new version with
//! the old room's important state, a tombstone in the old room pointing at it, the old room
//! locked down, and local aliases moved over.

use ruma::events::StateEventType;
use ruma::{OwnedRoomId, RoomId, RoomVersionId};
use serde_json::{Map, Value, json};

use super::create::CreateRoom;
use super::{EventDraft, Rooms, is_supported_version, rules_of};
use crate::accounts::AuthedUser;
use crate::{Error, Result};

/// State carried into the replacement room.
const CARRIED_STATE: &[&str] = &[
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
];

impl Rooms<'_> {
    /// `POST /rooms/{roomId}/upgrade`.
    pub async fn upgrade(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        version: &RoomVersionId,
    ) -> Result<OwnedRoomId> {
        if !is_supported_version(version) {
            return Err(Error::UnsupportedRoomVersion(version.to_string()));
        }
        let room = self.room_for_member(&user.user_id, room_id).await?;
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let old_rules = rules_of(&room.room_version)?;
        let state = cache.group(store, room.state_group).await?;
        let levels = super::read::power_levels(self.tenant, &old_rules, &state).await?;
        if levels.for_user(&user.user_id) < levels.for_event("m.room.tombstone", true) {
            return Err(Error::Forbidden(
                "You don't have permission to upgrade this room".into(),
            ));
        }

        let content_of = async |kind: &str| -> Result<Option<Value>> {
            match state.get(&(StateEventType::from(kind), String::new())) {
                Some(id) => Ok(cache.pdu(store, id).await?.map(|p| p.content_value())),
                None => Ok(None),
            }
        };
        let mut initial_state = Vec::new();
        for kind in CARRIED_STATE {
            if let Some(content) = content_of(kind).await? {
                initial_state.push(((*kind).to_owned(), String::new(), content));
            }
        }
        let mut creation_content = Map::new();
        creation_content.insert("predecessor".into(), json!({ "room_id": room_id }));
        if let Some(Value::Object(create)) = content_of("m.room.create").await? {
            for key in ["type", "m.federate"] {
                if let Some(value) = create.get(key) {
                    creation_content.insert(key.to_owned(), value.clone());
                }
            }
        }
        let mut power_levels = content_of("m.room.power_levels")
            .await?
            .and_then(|v| v.as_object().cloned());
        let new_rules = version
            .rules()
            .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
        if let Some(Value::Object(users)) = power_levels.as_mut().and_then(|l| l.get_mut("users")) {
            if new_rules.authorization.explicitly_privilege_room_creators {
                // The upgrader creates the new room and so has unlimited power there.
                users.remove(user.user_id.as_str());
            } else {
                users.insert(user.user_id.to_string(), json!(100));
            }
        }
        let new_room = self
            .create(
                &user.user_id,
                CreateRoom {
                    room_version: Some(version.clone()),
                    initial_state,
                    creation_content: Some(creation_content),
                    power_level_content_override: power_levels,
                    ..CreateRoom::default()
                },
            )
            .await?;

        let tombstone =
            json!({ "body": "This room has been replaced", "replacement_room": new_room });
        self.send(
            &user.user_id,
            room_id,
            EventDraft::state("m.room.tombstone", "", tombstone),
            None,
        )
        .await?;
        self.lock_down(&user.user_id, room_id, &state).await?;
        self.move_aliases(room_id, &new_room).await?;
        Ok(new_room)
    }

    /// Raises the power needed to speak and invite in the old room, as the spec suggests.
    async fn lock_down(
        &self,
        user: &ruma::UserId,
        room_id: &RoomId,
        state: &super::state::RoomState,
    ) -> Result<()> {
        let store = self.tenant.store();
        let Some(id) = state.get(&(StateEventType::RoomPowerLevels, String::new())) else {
            return Ok(());
        };
        let Some(pdu) = self.tenant.state_cache().pdu(store, id).await? else {
            return Ok(());
        };
        let mut content = pdu.content_value();
        let users_default = content
            .get("users_default")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let restricted = (users_default + 1).max(50);
        for key in ["events_default", "invite"] {
            let current = content.get(key).and_then(Value::as_i64).unwrap_or(0);
            content[key] = json!(current.max(restricted));
        }
        let draft = EventDraft::state("m.room.power_levels", "", content);
        // Locking down is best effort: the upgrade itself already happened.
        if let Err(e) = self.send(user, room_id, draft, None).await {
            tracing::warn!(room_id = %room_id, error = %e, "could not restrict the upgraded room");
        }
        Ok(())
    }

    async fn move_aliases(&self, old: &RoomId, new: &RoomId) -> Result<()> {
        let store = self.tenant.store();
        for alias in store.aliases_of_room(old.as_str()).await? {
            let Some(record) = store.alias(&alias).await? else {
                continue;
            };
            store.delete_alias(&alias).await?;
            store
                .insert_alias(&crate::store::AliasRecord {
                    room_id: new.to_string(),
                    ..record
                })
                .await?;
        }
        Ok(())
    }
}
