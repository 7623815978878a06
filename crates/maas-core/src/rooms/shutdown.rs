//! A room's shutdown, the first part of its deletion by an admin (Synapse's
//! `RoomShutdownHandler`): blocking it if asked, taking it out of the directory, making every
//! local member leave (and join a new room, when one is asked for, where a notice says why),
//! and moving the room's local aliases to that new room.

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tasks::TaskRun;
use super::{CreateRoom, EventDraft, Preset};
use crate::store::{AliasRecord, BlockedRoomRecord};
use crate::{Error, Result, Tenant, now_ms};

/// Synapse's defaults for the new room and its notice.
pub const DEFAULT_ROOM_NAME: &str = "Content Violation Notification";
pub const DEFAULT_MESSAGE: &str = "Sharing illegal content on this server is not permitted and \
                                   rooms in violation will be blocked.";

/// What an admin asks of a room's deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomDeletion {
    /// The local user who creates a new room the members are moved to.
    pub new_room_user_id: Option<OwnedUserId>,
    pub room_name: Option<String>,
    /// The first message of the new room.
    pub message: Option<String>,
    /// Keep local users out of the room from now on.
    pub block: bool,
    /// Remove the room's rows once its members are out.
    pub purge: bool,
    /// Purge even while a local user is still joined.
    pub force_purge: bool,
}

impl RoomDeletion {
    /// The deletion as a task's parameters, under Synapse's names.
    pub(crate) fn params(&self, requester: &UserId) -> Value {
        json!({
            "new_room_user_id": self.new_room_user_id,
            "new_room_name": self.room_name,
            "message": self.message,
            "requester_user_id": requester,
            "block": self.block,
            "purge": self.purge,
            "force_purge": self.force_purge,
        })
    }

    pub(crate) fn from_params(params: &Value) -> Self {
        let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
        let flag = |key: &str| params.get(key).and_then(Value::as_bool) == Some(true);
        Self {
            new_room_user_id: text("new_room_user_id").and_then(|u| UserId::parse(u).ok()),
            room_name: text("new_room_name"),
            message: text("message"),
            block: flag("block"),
            purge: flag("purge"),
            force_purge: flag("force_purge"),
        }
    }
}

/// What a shutdown did (Synapse: `shutdown_room` of a deletion's status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownOutcome {
    pub kicked_users: Vec<String>,
    pub failed_to_kick_users: Vec<String>,
    /// The local aliases moved to the new room.
    pub local_aliases: Vec<String>,
    pub new_room_id: Option<String>,
}

/// Shuts the room down as `deletion` asks, recording what it did in `outcome` as it goes;
/// members `outcome` names as handled already (a resumed task) are left as they are.
pub(crate) async fn shut_down(
    tenant: &Tenant,
    room_id: &RoomId,
    requester: &str,
    deletion: &RoomDeletion,
    outcome: &mut ShutdownOutcome,
    run: &mut TaskRun<'_>,
) -> Result<()> {
    let store = tenant.store();
    if deletion.block {
        let record = BlockedRoomRecord {
            room_id: room_id.to_string(),
            user_id: requester.to_owned(),
            blocked_ts: now_ms(),
        };
        store.block_room(&record).await?;
    }
    if store.room(room_id.as_str()).await?.is_none() {
        // A room unknown here can only be blocked.
        return Ok(());
    }
    store.set_room_published(room_id.as_str(), false).await?;
    let new_room = match &deletion.new_room_user_id {
        Some(creator) => Some(new_room(tenant, creator, deletion, outcome, run).await?),
        None => None,
    };
    for user in local_members(tenant, room_id).await? {
        if outcome.kicked_users.contains(&user) {
            continue;
        }
        match move_member(tenant, room_id, &user, new_room.as_deref()).await {
            Ok(()) => {
                outcome.failed_to_kick_users.retain(|u| *u != user);
                outcome.kicked_users.push(user);
            }
            Err(e) => {
                tracing::warn!(%room_id, %user, error = %e, "a member of a deleted room not moved");
                if !outcome.failed_to_kick_users.contains(&user) {
                    outcome.failed_to_kick_users.push(user);
                }
            }
        }
        run.progress(outcome).await?;
    }
    if let (Some(creator), Some(new_room)) = (&deletion.new_room_user_id, &new_room) {
        let message = deletion
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(DEFAULT_MESSAGE);
        let notice = EventDraft::message(
            "m.room.message",
            json!({ "body": message, "msgtype": "m.text" }),
        );
        tenant.rooms().send(creator, new_room, notice, None).await?;
        outcome.local_aliases = move_aliases(tenant, room_id, new_room, requester).await?;
        run.progress(outcome).await?;
    }
    Ok(())
}

/// The new room the members move to: created by `creator` (once: a resumed task finds it in
/// `outcome`), public to join, where members may not speak (Synapse's settings).
async fn new_room(
    tenant: &Tenant,
    creator: &UserId,
    deletion: &RoomDeletion,
    outcome: &mut ShutdownOutcome,
    run: &mut TaskRun<'_>,
) -> Result<OwnedRoomId> {
    if let Some(id) = &outcome.new_room_id {
        return RoomId::parse(id).map_err(|_| Error::Internal(format!("new room id {id}")));
    }
    let name = deletion
        .room_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_ROOM_NAME.to_owned());
    let overrides = json!({ "users_default": -10 });
    let request = CreateRoom {
        preset: Some(Preset::PublicChat),
        name: Some(name),
        power_level_content_override: overrides.as_object().cloned(),
        ..CreateRoom::default()
    };
    let room_id = tenant.rooms().create(creator, request).await?;
    outcome.new_room_id = Some(room_id.to_string());
    run.progress(outcome).await?;
    Ok(room_id)
}

/// Our users who are invited or knocking, then those joined, each in a stable order: while
/// one of ours is still joined, an invite is declined in the room itself.
async fn local_members(tenant: &Tenant, room_id: &RoomId) -> Result<Vec<String>> {
    let ours = tenant.server_name();
    let mut members: Vec<(bool, String)> = tenant
        .store()
        .room_members(room_id.as_str(), None)
        .await?
        .into_iter()
        .filter(|m| matches!(m.membership.as_str(), "join" | "invite" | "knock"))
        .filter(|m| UserId::parse(&m.user_id).is_ok_and(|u| u.server_name() == ours))
        .map(|m| (m.membership == "join", m.user_id))
        .collect();
    members.sort();
    Ok(members.into_iter().map(|(_, user)| user).collect())
}

/// The member leaves (as themselves, as in Synapse), forgets the room, and joins the new one.
async fn move_member(
    tenant: &Tenant,
    room_id: &RoomId,
    user: &str,
    new_room: Option<&RoomId>,
) -> Result<()> {
    let user = UserId::parse(user).map_err(|e| Error::Internal(format!("member {user}: {e}")))?;
    let rooms = tenant.rooms();
    rooms.leave(&user, room_id, None).await?;
    if let Err(e) = rooms.forget(&user, room_id).await {
        tracing::debug!(%room_id, %user, error = %e, "the deleted room not forgotten");
    }
    if let Some(new_room) = new_room {
        rooms.join(&user, new_room, &[], None).await?;
    }
    Ok(())
}

/// Points the room's local aliases at the new room; returns them.
async fn move_aliases(
    tenant: &Tenant,
    room_id: &RoomId,
    new_room: &RoomId,
    requester: &str,
) -> Result<Vec<String>> {
    let store = tenant.store();
    let aliases = store.aliases_of_room(room_id.as_str()).await?;
    for alias in &aliases {
        store.delete_alias(alias).await?;
        let record = AliasRecord {
            alias: alias.clone(),
            room_id: new_room.to_string(),
            creator: requester.to_owned(),
        };
        store.insert_alias(&record).await?;
    }
    Ok(aliases)
}
