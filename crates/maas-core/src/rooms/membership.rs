//! Room membership (spec: Client-Server API, "Room membership"): join, invite, leave, kick,
//! ban, unban, knock and forget. Each is an `m.room.member` event the auth rules decide on.

use ruma::events::StateEventType;
use ruma::{OwnedRoomId, OwnedServerName, RoomId, UserId};
use serde_json::{Value, json};

use super::lock::RoomWriter;
use super::pipeline::Received;
use super::{EventDraft, Rooms, check};
use crate::federation::{events, invite, joining, knocking, leaving, partial_state};
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
    /// already changes nothing. A room none of our users is in is joined through the servers
    /// in `via` (and the one its id names), over federation.
    pub async fn join(
        &self,
        user: &UserId,
        room_id: &RoomId,
        via: &[OwnedServerName],
        reason: Option<&str>,
    ) -> Result<OwnedRoomId> {
        self.tenant
            .accounts()
            .ensure_not_suspended(
                user,
                "Joining rooms while account is suspended is not allowed.",
            )
            .await?;
        let current = self.current_membership(room_id, user).await?;
        if current.as_ref().is_some_and(|m| m.membership == "join") {
            return Ok(room_id.to_owned());
        }
        self.admin().ensure_not_blocked(room_id).await?;
        let draft = self
            .with_profile(user, Self::member_draft(user, "join", reason))
            .await?;
        let mut via = via.to_vec();
        // An invite's sender's server is in the room.
        if let Some(invite) = current.filter(|m| m.membership == "invite")
            && let Ok(inviter) = UserId::parse(&invite.sender)
        {
            via.push(inviter.server_name().to_owned());
        }
        let servers = joining::candidates(self.tenant, room_id, &via);
        let mut writer = self.tenant.room_locks().lock(room_id).await;
        if !servers.is_empty() && !self.is_resident(&writer).await? {
            // The lock is held through the exchange: our other users joining at the same time
            // wait and then join on the room as it starts here.
            let mut joined =
                joining::join(self.tenant, &servers, user, room_id, &draft.content).await?;
            for missed in std::mem::take(&mut joined.missed) {
                let event_id = missed.pdu.event_id.clone();
                match self.append_missed(&mut writer, missed).await {
                    Ok(Received::Stored | Received::AlreadyKnown) => {}
                    Ok(other) => tracing::info!(%event_id, ?other, "a missed event left out"),
                    Err(e) => tracing::info!(%event_id, error = %e, "a missed event refused"),
                }
            }
            let partial = self.append_joined(&mut writer, joined).await?;
            // Known as partial before the room's lock is released: events received for it
            // from now on are checked as such.
            let partial_rooms = self.tenant.partial_rooms();
            if let Some(record) = &partial {
                partial_rooms.insert(record)?;
            }
            if let Err(e) = writer.finish().await {
                partial_rooms.remove(room_id);
                return Err(e);
            }
            if partial.is_some() {
                partial_state::resync_in_background(self.tenant, room_id);
            }
            return Ok(room_id.to_owned());
        }
        if !self.is_known(room_id) && self.tenant.store().room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("No known servers for this room".into()));
        }
        self.append(&mut writer, user, draft, None).await?;
        writer.finish().await?;
        Ok(room_id.to_owned())
    }

    /// Whether one of our users is joined to the writer's room.
    async fn is_resident(&self, writer: &RoomWriter) -> Result<bool> {
        let room_id = writer.room_id();
        if !self.is_known(room_id) && self.tenant.store().room(room_id.as_str()).await?.is_none() {
            return Ok(false);
        }
        let (head, _) = self.tenant.room_heads().get(self.tenant, writer).await?;
        let ours = self.tenant.server_name();
        Ok(head
            .joined
            .iter()
            .any(|member| member.server_name() == ours))
    }

    /// Whether the room has a head here (created or written to, maybe not committed yet).
    fn is_known(&self, room_id: &RoomId) -> bool {
        self.tenant.room_heads().contains(room_id)
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

    /// `POST /rooms/{roomId}/invite`. A user of another server is invited through their
    /// server, which signs the invite before it goes into the room.
    pub async fn invite(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<()> {
        let accounts = self.tenant.accounts();
        // A shadow-banned user's invite looks sent and reaches nobody, as in Synapse.
        if accounts.is_shadow_banned(sender).await? {
            return Ok(());
        }
        accounts
            .ensure_not_suspended(
                sender,
                "Sending invites while account is suspended is not allowed.",
            )
            .await?;
        check::member_id(target)?;
        self.room_for_member(sender, room_id).await?;
        self.admin().ensure_not_blocked(room_id).await?;
        let remote = target.server_name() != self.tenant.server_name();
        if !remote {
            let Some(record) = self.tenant.store().user(target.localpart()).await? else {
                return Err(Error::NotFound(format!("Unknown user {target}")));
            };
            if record.deactivated {
                return Err(Error::Forbidden(format!("{target} is deactivated")));
            }
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
        if remote {
            return self.invite_remote(sender, room_id, target, draft).await;
        }
        self.send_membership(sender, room_id, draft).await
    }

    /// Our invite of another server's user: built on the room's head, signed by their server
    /// (which keeps it for them), then appended; the room's lock is held throughout, so the
    /// head it was built on is still the room's.
    async fn invite_remote(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        draft: EventDraft,
    ) -> Result<()> {
        let mut writer = self.tenant.room_locks().lock(room_id).await;
        let prepared = self.prepare(&writer, sender, draft).await?;
        let stripped = self.stripped_pdus(prepared.state()).await?;
        let signed = invite::countersign(
            self.tenant,
            prepared.rules(),
            prepared.room_version(),
            prepared.pdu(),
            target,
            events::raws_of(&stripped)?,
        )
        .await?;
        self.append_countersigned(&mut writer, prepared, signed)
            .await?;
        writer.finish().await
    }

    /// `POST /rooms/{roomId}/leave` (also rejects an invite or withdraws a knock). An invite
    /// to a room none of our users is in is rejected through the inviting server.
    pub async fn leave(&self, user: &UserId, room_id: &RoomId, reason: Option<&str>) -> Result<()> {
        let current = match self.current_membership(room_id, user).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => m,
            _ => return Err(Error::Forbidden(format!("You are not in {room_id}"))),
        };
        if current.membership != "join" {
            let writer = self.tenant.room_locks().lock(room_id).await;
            if !self.is_resident(&writer).await? {
                drop(writer);
                leaving::reject(self.tenant, user, room_id, &current, reason).await?;
                // Kept outside the room's timeline, where the step forgetting rooms looks.
                super::forget::left_outside_timeline(self.tenant, room_id);
                return Ok(());
            }
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

    /// `POST /knock/{roomIdOrAlias}`: only where the room version and join rule allow it. A
    /// room none of our users is in is knocked on through the servers in `via` (and the one
    /// its id names), over federation.
    pub async fn knock(
        &self,
        user: &UserId,
        room_id: &RoomId,
        via: &[OwnedServerName],
        reason: Option<&str>,
    ) -> Result<OwnedRoomId> {
        self.tenant
            .accounts()
            .ensure_not_suspended(
                user,
                "Knocking on rooms while account is suspended is not allowed.",
            )
            .await?;
        self.admin().ensure_not_blocked(room_id).await?;
        let servers = joining::candidates(self.tenant, room_id, via);
        if !servers.is_empty() {
            let writer = self.tenant.room_locks().lock(room_id).await;
            if !self.is_resident(&writer).await? {
                drop(writer);
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
                knocking::knock(self.tenant, &servers, user, room_id, &draft.content).await?;
                return Ok(room_id.to_owned());
            }
        }
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
