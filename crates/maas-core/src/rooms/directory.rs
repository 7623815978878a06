//! Room aliases and the public room directory (spec: Client-Server API, "Room aliases",
//! "Listing rooms"): local aliases of the tenant's server name, and the rooms published in its
//! directory.

use ruma::events::StateEventType;
use ruma::{OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, UserId};
use serde_json::{Value, json};

use super::{Rooms, rules_of};
use crate::accounts::AuthedUser;
use crate::store::{AliasRecord, RoomRecord, StoreError};
use crate::{Error, Result};

/// Power a member needs to change the room's aliases or directory listing, as for
/// `m.room.canonical_alias` by default.
const DIRECTORY_POWER: i64 = 50;
const MAX_PUBLIC_ROOMS_PAGE: u32 = 500;

/// One page of the public room directory.
#[derive(Debug)]
pub struct PublicRoomsPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total: u64,
}

impl Rooms<'_> {
    fn ensure_local_alias(&self, alias: &RoomAliasId) -> Result<()> {
        if alias.server_name() != self.tenant.server_name() {
            return Err(Error::InvalidParam(
                "Room alias must be on this server".into(),
            ));
        }
        Ok(())
    }

    /// The room an alias points to (`/join/{alias}`).
    pub async fn resolve_alias(&self, alias: &RoomAliasId) -> Result<OwnedRoomId> {
        Ok(self.alias(alias).await?.0)
    }

    /// `GET /directory/room/{roomAlias}`: a local alias from the directory, another server's
    /// by asking that server.
    pub async fn alias(&self, alias: &RoomAliasId) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        if alias.server_name() != self.tenant.server_name() {
            return crate::federation::query::remote_room_alias(self.tenant, alias).await;
        }
        self.local_alias(alias).await
    }

    /// A local alias's room and the servers that can join others to it.
    pub(crate) async fn local_alias(
        &self,
        alias: &RoomAliasId,
    ) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        let not_found = || Error::NotFound(format!("Room alias {alias} not found"));
        if alias.server_name() != self.tenant.server_name() {
            return Err(not_found());
        }
        let record = self
            .tenant
            .store()
            .alias(alias.as_str())
            .await?
            .ok_or_else(not_found)?;
        let room_id = RoomId::parse(&record.room_id)
            .map_err(|_| Error::Internal("bad stored room id".into()))?;
        Ok((room_id, vec![self.tenant.server_name().to_owned()]))
    }

    /// `PUT /directory/room/{roomAlias}`: by a member of the room.
    pub async fn set_alias(
        &self,
        user: &AuthedUser,
        alias: &RoomAliasId,
        room_id: &RoomId,
    ) -> Result<()> {
        self.ensure_local_alias(alias)?;
        self.room_for_member(&user.user_id, room_id).await?;
        let record = AliasRecord {
            alias: alias.to_string(),
            room_id: room_id.to_string(),
            creator: user.user_id.to_string(),
        };
        match self.tenant.store().insert_alias(&record).await {
            Err(StoreError::Conflict(_)) => Err(Error::AliasExists),
            other => Ok(other?),
        }
    }

    /// `DELETE /directory/room/{roomAlias}`: by its creator, a tenant admin, or a member with
    /// the power to change the room's aliases.
    pub async fn delete_alias(&self, user: &AuthedUser, alias: &RoomAliasId) -> Result<()> {
        self.ensure_local_alias(alias)?;
        let store = self.tenant.store();
        let not_found = || Error::NotFound(format!("Room alias {alias} not found"));
        let record = store.alias(alias.as_str()).await?.ok_or_else(not_found)?;
        let allowed = user.admin
            || record.creator == user.user_id.as_str()
            || self.power_of(&user.user_id, &record.room_id).await? >= DIRECTORY_POWER;
        if !allowed {
            return Err(Error::Forbidden("You may not delete this alias".into()));
        }
        store.delete_alias(alias.as_str()).await?;
        Ok(())
    }

    /// `GET /rooms/{roomId}/aliases`: for members of the room.
    pub async fn aliases(&self, user: &AuthedUser, room_id: &RoomId) -> Result<Vec<String>> {
        self.room_for_member(&user.user_id, room_id).await?;
        Ok(self
            .tenant
            .store()
            .aliases_of_room(room_id.as_str())
            .await?)
    }

    async fn power_of(&self, user: &UserId, room_id: &str) -> Result<i64> {
        let store = self.tenant.store();
        let Some(room) = store.room(room_id).await? else {
            return Ok(0);
        };
        let rules = rules_of(&room.room_version)?;
        let state = self
            .tenant
            .state_cache()
            .group(store, room.state_group)
            .await?;
        Ok(super::read::power_levels(self.tenant, &rules, &state)
            .await?
            .for_user(user))
    }

    /// `GET /directory/list/room/{roomId}`: whether the room is published.
    pub async fn visibility(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self.room(room_id).await?.published)
    }

    /// `PUT /directory/list/room/{roomId}`.
    pub async fn set_visibility(
        &self,
        user: &AuthedUser,
        room_id: &RoomId,
        public: bool,
    ) -> Result<()> {
        self.room_for_member(&user.user_id, room_id).await?;
        if !user.admin && self.power_of(&user.user_id, room_id.as_str()).await? < DIRECTORY_POWER {
            return Err(Error::Forbidden(
                "You may not change this room's visibility".into(),
            ));
        }
        self.tenant
            .store()
            .set_room_published(room_id.as_str(), public)
            .await?;
        Ok(())
    }

    /// `GET` / `POST /publicRooms` (local rooms).
    pub async fn public_rooms(
        &self,
        limit: Option<u32>,
        since: Option<&str>,
        filter_term: Option<&str>,
    ) -> Result<PublicRoomsPage> {
        let store = self.tenant.store();
        let total = store.count_published_rooms().await?;
        let limit = limit
            .unwrap_or(MAX_PUBLIC_ROOMS_PAGE)
            .clamp(1, MAX_PUBLIC_ROOMS_PAGE);
        let term = filter_term.map(str::to_lowercase).filter(|t| !t.is_empty());
        let since_room = match since {
            Some(token) => Some(
                token
                    .strip_prefix('r')
                    .ok_or_else(|| Error::InvalidParam(format!("Invalid since token {token:?}")))?
                    .to_owned(),
            ),
            None => None,
        };
        // One entry past the page tells whether there is a next page.
        let mut chunk = Vec::new();
        let mut cursor = since_room.clone();
        while chunk.len() <= limit as usize {
            let rooms = store.published_rooms(cursor.as_deref(), limit + 1).await?;
            let exhausted = rooms.len() <= limit as usize;
            for room in &rooms {
                cursor = Some(room.room_id.clone());
                let entry = self.directory_entry(room).await?;
                if term.as_deref().is_none_or(|t| matches_term(&entry, t)) {
                    chunk.push((room.room_id.clone(), entry));
                }
            }
            if exhausted {
                break;
            }
        }
        let next_batch = (chunk.len() > limit as usize).then(|| {
            chunk.truncate(limit as usize);
            chunk
                .last()
                .map(|(id, _)| format!("r{id}"))
                .unwrap_or_default()
        });
        let chunk = chunk.into_iter().map(|(_, entry)| entry).collect();
        Ok(PublicRoomsPage {
            chunk,
            next_batch,
            prev_batch: since_room.map(|_| "r".to_owned()),
            total,
        })
    }

    /// A room's entry in the directory (spec: `PublishedRoomsChunk`).
    async fn directory_entry(&self, room: &RoomRecord) -> Result<Value> {
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let state = cache.group(store, room.state_group).await?;
        let content_of = async |kind: StateEventType| -> Result<Option<Value>> {
            match state.get(&(kind, String::new())) {
                Some(id) => Ok(cache.pdu(store, id).await?.map(|p| p.content_value())),
                None => Ok(None),
            }
        };
        let field = |content: Option<Value>, key: &str| -> Option<Value> {
            content
                .and_then(|c| c.get(key).cloned())
                .filter(|v| !v.is_null())
        };
        let name = field(content_of(StateEventType::RoomName).await?, "name");
        let topic = field(content_of(StateEventType::RoomTopic).await?, "topic");
        let alias = field(
            content_of(StateEventType::RoomCanonicalAlias).await?,
            "alias",
        );
        let avatar = field(content_of(StateEventType::RoomAvatar).await?, "url");
        let join_rule = field(
            content_of(StateEventType::RoomJoinRules).await?,
            "join_rule",
        )
        .unwrap_or_else(|| json!("invite"));
        let history = field(
            content_of(StateEventType::RoomHistoryVisibility).await?,
            "history_visibility",
        );
        let guest = field(
            content_of(StateEventType::RoomGuestAccess).await?,
            "guest_access",
        );
        let room_type = field(content_of(StateEventType::RoomCreate).await?, "type");
        let joined = store.room_members(&room.room_id, Some("join")).await?.len();
        let mut entry = json!({
            "room_id": room.room_id,
            "num_joined_members": joined,
            "world_readable": history.as_ref().and_then(Value::as_str) == Some("world_readable"),
            "guest_can_join": guest.as_ref().and_then(Value::as_str) == Some("can_join"),
            "join_rule": join_rule,
        });
        for (key, value) in [
            ("name", name),
            ("topic", topic),
            ("canonical_alias", alias),
            ("avatar_url", avatar),
            ("room_type", room_type),
        ] {
            if let Some(value) = value {
                entry[key] = value;
            }
        }
        Ok(entry)
    }
}

fn matches_term(entry: &Value, term: &str) -> bool {
    ["name", "topic", "canonical_alias"].iter().any(|key| {
        entry
            .get(*key)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().contains(term))
    })
}
