//! Room creation (spec: Client-Server API, "Creation"): the create event, the creator's join,
//! power levels, presets, initial state, name, topic, alias and invites, in the spec's order.

use ruma::room_version_rules::RoomIdFormatVersion;
use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, RoomVersionId, UserId,
};
use serde_json::{Map, Value, json};

use super::lock::RoomWriter;
use super::pdu::EventDraft;
use super::pipeline::HeldEvents;
use super::{DEFAULT_ROOM_VERSION, Rooms, is_supported_version};
use crate::store::{AliasRecord, StoreError};
use crate::{Error, Result, secrets};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

/// A `createRoom` request, in core terms.
#[derive(Debug, Default)]
pub struct CreateRoom {
    pub room_version: Option<RoomVersionId>,
    pub preset: Option<Preset>,
    /// `visibility: public` lists the room in the directory.
    pub public: bool,
    pub room_alias_name: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    /// `(type, state_key, content)` of `initial_state`.
    pub initial_state: Vec<(String, String, Value)>,
    pub creation_content: Option<Map<String, Value>>,
    pub power_level_content_override: Option<Map<String, Value>>,
}

impl Rooms<'_> {
    /// `POST /createRoom`.
    pub async fn create(&self, creator: &UserId, mut req: CreateRoom) -> Result<OwnedRoomId> {
        let accounts = self.tenant.accounts();
        accounts
            .ensure_not_suspended(creator, crate::accounts::moderation::SENDING_SUSPENDED)
            .await?;
        // A shadow-banned user's room is created; its invites reach nobody, as in Synapse.
        if accounts.is_shadow_banned(creator).await? {
            req.invite.clear();
        }
        let version = req.room_version.clone().unwrap_or(DEFAULT_ROOM_VERSION);
        if !is_supported_version(&version) {
            return Err(Error::UnsupportedRoomVersion(version.to_string()));
        }
        let alias = match &req.room_alias_name {
            Some(name) => Some(self.free_alias(name).await?),
            None => None,
        };
        let preset = req.preset.unwrap_or(if req.public {
            Preset::PublicChat
        } else {
            Preset::PrivateChat
        });

        self.tenant.check_storage_quota().await?;
        // Held until the room's first events are stored, so the room count stays true.
        let _slot = self.tenant.room_slot().await?;
        let (mut writer, mut held) = self.create_event(creator, &version, &req).await?;
        let room_id = writer.room_id().to_owned();
        let mut drafts = vec![
            self.with_profile(creator, Self::member_draft(creator, "join", None))
                .await?,
            power_levels(&version, creator, preset, &req)?,
        ];
        if let Some(alias) = &alias {
            drafts.push(EventDraft::state(
                "m.room.canonical_alias",
                "",
                json!({ "alias": alias }),
            ));
        }
        let join_rule = if preset == Preset::PublicChat {
            "public"
        } else {
            "invite"
        };
        drafts.push(EventDraft::state(
            "m.room.join_rules",
            "",
            json!({ "join_rule": join_rule }),
        ));
        drafts.push(EventDraft::state(
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "shared" }),
        ));
        // The spec's presets: guests may join private chats, not public ones.
        let guest_access = if preset == Preset::PublicChat {
            "forbidden"
        } else {
            "can_join"
        };
        drafts.push(EventDraft::state(
            "m.room.guest_access",
            "",
            json!({ "guest_access": guest_access }),
        ));
        for (kind, state_key, content) in &req.initial_state {
            drafts.push(EventDraft::state(kind, state_key, content.clone()));
        }
        if let Some(name) = req.name.as_ref().filter(|n| !n.is_empty()) {
            drafts.push(EventDraft::state(
                "m.room.name",
                "",
                json!({ "name": name }),
            ));
        }
        if let Some(topic) = req.topic.as_ref().filter(|t| !t.is_empty()) {
            drafts.push(EventDraft::state(
                "m.room.topic",
                "",
                json!({ "topic": topic }),
            ));
        }
        // Users of other servers are invited once the room exists: their servers sign.
        let (local, remote): (Vec<&OwnedUserId>, Vec<&OwnedUserId>) = req
            .invite
            .iter()
            .partition(|u| u.server_name() == self.tenant.server_name());
        for invitee in local {
            let mut draft = self
                .with_profile(invitee, Self::member_draft(invitee, "invite", None))
                .await?;
            if req.is_direct {
                draft.content["is_direct"] = Value::Bool(true);
            }
            drafts.push(draft);
        }
        for draft in drafts {
            self.append_held(&mut writer, &mut held, creator, draft)
                .await?;
        }
        // Every first event passed its checks: the room may exist now.
        held.release(&mut writer)?;
        writer.finish().await?;
        for invitee in remote {
            // The room stands without them, as with a later invite that fails.
            if let Err(e) = self
                .invite(creator, &room_id, invitee, None, req.is_direct)
                .await
            {
                tracing::info!(%room_id, %invitee, error = %e, "inviting at creation failed");
            }
        }

        let store = self.tenant.store();
        if let Some(alias) = alias {
            let record = AliasRecord {
                alias: alias.to_string(),
                room_id: room_id.to_string(),
                creator: creator.to_string(),
            };
            store.insert_alias(&record).await.map_err(alias_conflict)?;
        }
        if req.public {
            store.set_room_published(room_id.as_str(), true).await?;
        }
        Ok(room_id)
    }

    async fn free_alias(&self, name: &str) -> Result<OwnedRoomAliasId> {
        if name.contains(':') || name.contains('#') || name.is_empty() {
            return Err(Error::InvalidParam(
                "room_alias_name must be a bare localpart".into(),
            ));
        }
        let alias = RoomAliasId::parse(format!("#{name}:{}", self.tenant.server_name()))
            .map_err(|e| Error::InvalidParam(format!("Invalid alias: {e}")))?;
        if self.tenant.store().alias(alias.as_str()).await?.is_some() {
            return Err(Error::RoomInUse);
        }
        Ok(alias)
    }

    /// The room's `m.room.create` event, stored with the room record; returns the new room's
    /// write lock.
    async fn create_event(
        &self,
        creator: &UserId,
        version: &RoomVersionId,
        req: &CreateRoom,
    ) -> Result<(RoomWriter, HeldEvents)> {
        let rules = version
            .rules()
            .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
        let mut content = req.creation_content.clone().unwrap_or_default();
        content.insert("room_version".into(), json!(version.as_str()));
        if !rules.authorization.use_room_create_sender {
            content.insert("creator".into(), json!(creator));
        }
        let draft = EventDraft::state("m.room.create", "", Value::Object(content));
        // From version 12 the room id is the create event's hash.
        let room_id = match rules.room_id_format {
            RoomIdFormatVersion::V1 => Some(
                RoomId::parse(format!(
                    "!{}:{}",
                    secrets::random_alphanumeric(18),
                    self.tenant.server_name()
                ))
                .map_err(|e| Error::Internal(format!("room id: {e}")))?,
            ),
            _ => None,
        };
        self.append_create(creator, rules, version.as_str(), room_id.as_deref(), draft)
            .await
    }
}

fn alias_conflict(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::RoomInUse,
        other => other.into(),
    }
}

/// The power levels of a new room: the spec's defaults, the preset's changes, then the
/// client's override.
fn power_levels(
    version: &RoomVersionId,
    creator: &UserId,
    preset: Preset,
    req: &CreateRoom,
) -> Result<EventDraft> {
    let rules = version
        .rules()
        .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
    let mut users = Map::new();
    // Version 12 creators have unlimited power by rule and must not be listed.
    if !rules.authorization.explicitly_privilege_room_creators {
        users.insert(creator.to_string(), json!(100));
    }
    if preset == Preset::TrustedPrivateChat {
        for invitee in &req.invite {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let mut content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    });
    if let (Some(overrides), Some(object)) =
        (&req.power_level_content_override, content.as_object_mut())
    {
        for (key, value) in overrides {
            object.insert(key.clone(), value.clone());
        }
    }
    Ok(EventDraft::state("m.room.power_levels", "", content))
}
