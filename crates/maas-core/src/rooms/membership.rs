//! Room membership (spec: Client-Server API, "Room membership"): join, invite, leave, kick,
//! ban, unban, knock and forget. Each is an `m.room.member` event the auth rules decide on.

use ruma::events::StateEventType;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};

use super::{EventDraft, Rooms, check};
use crate::store::MembershipRecord;
use crate::{Error, Result};

impl Rooms<'_> {
    pub(super) fn member_draft(
        target: &UserId,
        membership: &str,
        reason: Option<&str>,
    ) -> EventDraft {
        let mut content = json!({ "membership": membership });
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            content["reason"] = json!(reason);
        }
        EventDraft::state(
            StateEventType::RoomMember.to_string().as_str(),
            target.as_str(),
            content,
        )
    }

    /// Adds the user's profile to a join (spec: members carry their display name and avatar).
    pub(super) async fn with_profile(
        &self,
        user: &UserId,
        mut draft: EventDraft,
    ) -> Result<EventDraft> {
        if user.server_name() != self.tenant.server_name() {
            return Ok(draft);
        }
        if let Some(record) = self.tenant.store().user(user.localpart()).await? {
            if let Some(name) = record.displayname {
                draft.content["displayname"] = Value::String(name);
            }
            if let Some(url) = record.avatar_url {
                draft.content["avatar_url"] = Value::String(url);
            }
        }
        Ok(draft)
    }

    async fn current_membership(
        &self,
        room_id: &RoomId,
        user: &UserId,
    ) -> Result<Option<MembershipRecord>> {
        Ok(self
            .tenant
            .store()
            .membership(room_id.as_str(), user.as_str())
            .await?)
    }

    /// Sends a membership event under the room's write lock.
    async fn send_membership(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        draft: EventDraft,
    ) -> Result<()> {
        let mut writer = self.tenant.room_locks().lock(room_id).await;
        self.append(&mut writer, sender, draft, None).await?;
        writer.finish().await
    }

    /// `POST /rooms/{roomId}/join`, `POST /join/{roomIdOrAlias}`. Joining a room one is in
    /// already changes nothing.
    pub async fn join(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<OwnedRoomId> {
        if self.tenant.store().room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("No known servers for this room".into()));
        }
        if self
            .current_membership(room_id, user)
            .await?
            .is_some_and(|m| m.membership == "join")
        {
            return Ok(room_id.to_owned());
        }
        let draft = self
            .with_profile(user, Self::member_draft(user, "join", reason))
            .await?;
        self.send_membership(user, room_id, draft).await?;
        Ok(room_id.to_owned())
    }

    /// Sends a fresh join event with the user's new profile to every room they are in, so
    /// members see the new name or avatar (spec: "Events on change of profile information").
    pub async fn propagate_profile(&self, user: &UserId) -> Result<()> {
        for room_id in self.joined_rooms(user).await? {
            let Ok(room_id) = RoomId::parse(&room_id) else {
                continue;
            };
            let draft = self
                .with_profile(user, Self::member_draft(user, "join", None))
                .await?;
            if let Err(e) = self.send_membership(user, &room_id, draft).await {
                tracing::warn!(%room_id, error = %e, "could not update the member event");
            }
        }
        Ok(())
    }

    /// `POST /rooms/{roomId}/invite`.
    pub async fn invite(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<()> {
        check::member_id(target)?;
        self.room_for_member(sender, room_id).await?;
        if target.server_name() != self.tenant.server_name() {
            return Err(Error::Forbidden(
                "Inviting users of other servers needs federation".into(),
            ));
        }
        let Some(record) = self.tenant.store().user(target.localpart()).await? else {
            return Err(Error::NotFound(format!("Unknown user {target}")));
        };
        if record.deactivated {
            return Err(Error::Forbidden(format!("{target} is deactivated")));
        }
        match self.current_membership(room_id, target).await? {
            Some(m) if m.membership == "join" => {
                return Err(Error::Forbidden(format!("{target} is already in the room")));
            }
            Some(m) if m.membership == "ban" => {
                return Err(Error::Forbidden(format!(
                    "{target} is banned from the room"
                )));
            }
            Some(m) if m.membership == "invite" => return Ok(()),
            _ => {}
        }
        let mut draft = self
            .with_profile(target, Self::member_draft(target, "invite", reason))
            .await?;
        if is_direct {
            draft.content["is_direct"] = Value::Bool(true);
        }
        self.send_membership(sender, room_id, draft).await
    }

    /// `POST /rooms/{roomId}/leave` (also rejects an invite or withdraws a knock).
    pub async fn leave(&self, user: &UserId, room_id: &RoomId, reason: Option<&str>) -> Result<()> {
        match self.current_membership(room_id, user).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => {}
            _ => return Err(Error::Forbidden(format!("You are not in {room_id}"))),
        }
        self.send_membership(user, room_id, Self::member_draft(user, "leave", reason))
            .await
    }

    /// `POST /rooms/{roomId}/kick`.
    pub async fn kick(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<()> {
        check::member_id(target)?;
        self.room_for_member(sender, room_id).await?;
        match self.current_membership(room_id, target).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => {}
            _ => return Err(Error::Forbidden(format!("{target} is not in the room"))),
        }
        self.send_membership(sender, room_id, Self::member_draft(target, "leave", reason))
            .await
    }

    /// `POST /rooms/{roomId}/ban`.
    pub async fn ban(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<()> {
        check::member_id(target)?;
        self.room_for_member(sender, room_id).await?;
        self.send_membership(sender, room_id, Self::member_draft(target, "ban", reason))
            .await
    }

    /// `POST /rooms/{roomId}/unban`.
    pub async fn unban(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<()> {
        check::member_id(target)?;
        self.room_for_member(sender, room_id).await?;
        let membership = self.current_membership(room_id, target).await?;
        if membership.is_none_or(|m| m.membership != "ban") {
            return Err(Error::Forbidden(format!("{target} is not banned")));
        }
        self.send_membership(sender, room_id, Self::member_draft(target, "leave", reason))
            .await
    }

    /// `POST /knock/{roomIdOrAlias}`: only where the room version and join rule allow it.
    pub async fn knock(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<&str>,
    ) -> Result<OwnedRoomId> {
        let room = self.room(room_id).await?;
        if !super::rules_of(&room.room_version)?.authorization.knocking {
            return Err(Error::Forbidden(
                "This room version does not support knocking".into(),
            ));
        }
        if let Some(m) = self.current_membership(room_id, user).await?
            && matches!(m.membership.as_str(), "join" | "ban")
        {
            return Err(Error::Forbidden(format!(
                "You can't knock on {room_id} now"
            )));
        }
        let draft = self
            .with_profile(user, Self::member_draft(user, "knock", reason))
            .await?;
        self.send_membership(user, room_id, draft).await?;
        Ok(room_id.to_owned())
    }

    /// `POST /rooms/{roomId}/forget`: only once the user has left. Membership events are
    /// committed after the room's lock is released; under the lock, once the room's pending
    /// events are stored, the stored membership is the last word until the forget is recorded.
    pub async fn forget(&self, user: &UserId, room_id: &RoomId) -> Result<()> {
        let writer = self.tenant.room_locks().lock(room_id).await;
        if let Some(last) = self.tenant.room_heads().last_stream(self.tenant, &writer) {
            self.tenant.stream().reached(last).await;
        }
        match self.current_membership(room_id, user).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => {
                Err(Error::Unknown("The user has not left the room".into()))
            }
            Some(_) => Ok(self
                .tenant
                .store()
                .forget_room(room_id.as_str(), user.as_str())
                .await?),
            None => Err(Error::NotFound("You were never in this room".into())),
        }
    }
}
