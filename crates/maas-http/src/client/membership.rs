//! Room membership (spec: "Room membership"; ruma `membership`): joining, knocking, inviting,
//! leaving, kicking, banning and forgetting, and listing rooms and members. Knocking (ruma
//! `knock`) is here too: the spec counts it as membership, and it resolves aliases as joining
//! does.

use std::collections::BTreeMap;

use maas_core::Tenant;
use maas_core::rooms::Event;
use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::invite_user::v3::InvitationRecipient;
use ruma::api::client::membership::{
    ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
    join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room, unban_user,
};
use ruma::{OwnedRoomId, OwnedRoomOrAliasId, OwnedServerName, OwnedUserId};
use serde_json::Value;

use super::convert::client_event_raw;
use super::room::threepid_unsupported;
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<join_room_by_id::v3::Request, _, _>(router, join_room_by_id);
    let router =
        route::<join_room_by_id_or_alias::v3::Request, _, _>(router, join_room_by_id_or_alias);
    let router = route::<knock_room::v3::Request, _, _>(router, knock_room);
    let router = route::<invite_user::v3::Request, _, _>(router, invite_user);
    let router = route::<leave_room::v3::Request, _, _>(router, leave_room);
    let router = route::<kick_user::v3::Request, _, _>(router, kick_user);
    let router = route::<ban_user::v3::Request, _, _>(router, ban_user);
    let router = route::<unban_user::v3::Request, _, _>(router, unban_user);
    let router = route::<forget_room::v3::Request, _, _>(router, forget_room);
    let router = route::<joined_rooms::v3::Request, _, _>(router, joined_rooms);
    let router = route::<joined_members::v3::Request, _, _>(router, joined_members);
    route::<get_member_events::v3::Request, _, _>(router, get_member_events)
}

/// The room a room id or an alias names, with the servers the alias's directory says can
/// join others to it.
async fn resolve(
    tenant: &Tenant,
    room_id_or_alias: OwnedRoomOrAliasId,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    match OwnedRoomId::try_from(room_id_or_alias) {
        Ok(room_id) => Ok((room_id, Vec::new())),
        Err(alias) => Ok(tenant.rooms().alias(&alias).await?),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`
async fn join_room_by_id(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<join_room_by_id::v3::Request>,
) -> Result<RumaResponse<join_room_by_id::v3::Response>> {
    if req.third_party_signed.is_some() {
        return Err(threepid_unsupported());
    }
    let room_id = tenant
        .rooms()
        .join(&user.user_id, &req.room_id, &[], req.reason.as_deref())
        .await?;
    Ok(join_room_by_id::v3::Response::new(room_id).into())
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`
async fn join_room_by_id_or_alias(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<RumaResponse<join_room_by_id_or_alias::v3::Response>> {
    if req.third_party_signed.is_some() {
        return Err(threepid_unsupported());
    }
    let (room_id, mut via) = resolve(&tenant, req.room_id_or_alias).await?;
    via.splice(0..0, req.via);
    let room_id = tenant
        .rooms()
        .join(&user.user_id, &room_id, &via, req.reason.as_deref())
        .await?;
    Ok(join_room_by_id_or_alias::v3::Response::new(room_id).into())
}

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}`
async fn knock_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<knock_room::v3::Request>,
) -> Result<RumaResponse<knock_room::v3::Response>> {
    let (room_id, mut via) = resolve(&tenant, req.room_id_or_alias).await?;
    via.splice(0..0, req.via);
    let room_id = tenant
        .rooms()
        .knock(&user.user_id, &room_id, &via, req.reason.as_deref())
        .await?;
    Ok(knock_room::v3::Response::new(room_id).into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`
async fn invite_user(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<invite_user::v3::Request>,
) -> Result<RumaResponse<invite_user::v3::Response>> {
    let InvitationRecipient::UserId(invitee) = &req.recipient else {
        return Err(threepid_unsupported());
    };
    tenant
        .rooms()
        .invite(
            &user.user_id,
            &req.room_id,
            &invitee.user_id,
            invitee.reason.as_deref(),
            false,
        )
        .await?;
    Ok(invite_user::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`
async fn leave_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<leave_room::v3::Request>,
) -> Result<RumaResponse<leave_room::v3::Response>> {
    tenant
        .rooms()
        .leave(&user.user_id, &req.room_id, req.reason.as_deref())
        .await?;
    Ok(leave_room::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`
async fn kick_user(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<kick_user::v3::Request>,
) -> Result<RumaResponse<kick_user::v3::Response>> {
    tenant
        .rooms()
        .kick(
            &user.user_id,
            &req.room_id,
            &req.user_id,
            req.reason.as_deref(),
        )
        .await?;
    Ok(kick_user::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/ban`
async fn ban_user(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<ban_user::v3::Request>,
) -> Result<RumaResponse<ban_user::v3::Response>> {
    tenant
        .rooms()
        .ban(
            &user.user_id,
            &req.room_id,
            &req.user_id,
            req.reason.as_deref(),
        )
        .await?;
    Ok(ban_user::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unban`
async fn unban_user(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<unban_user::v3::Request>,
) -> Result<RumaResponse<unban_user::v3::Response>> {
    tenant
        .rooms()
        .unban(
            &user.user_id,
            &req.room_id,
            &req.user_id,
            req.reason.as_deref(),
        )
        .await?;
    Ok(unban_user::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`
async fn forget_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<forget_room::v3::Request>,
) -> Result<RumaResponse<forget_room::v3::Response>> {
    tenant.rooms().forget(&user.user_id, &req.room_id).await?;
    Ok(forget_room::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/joined_rooms`
async fn joined_rooms(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<joined_rooms::v3::Request>,
) -> Result<RumaResponse<joined_rooms::v3::Response>> {
    let rooms = tenant.rooms().joined_rooms(&user.user_id).await?;
    let rooms = rooms
        .iter()
        .filter_map(|id| OwnedRoomId::try_from(id.as_str()).ok())
        .collect();
    Ok(joined_rooms::v3::Response::new(rooms).into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
async fn joined_members(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<joined_members::v3::Request>,
) -> Result<RumaResponse<joined_members::v3::Response>> {
    let members = tenant
        .rooms()
        .joined_members(&user.user_id, &req.room_id)
        .await?;
    let mut joined = BTreeMap::new();
    for pdu in members {
        let Some(user_id) = pdu
            .state_key
            .as_deref()
            .and_then(|key| OwnedUserId::try_from(key).ok())
        else {
            continue;
        };
        let content = pdu.content_value();
        let text = |key: &str| content.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut member = joined_members::v3::RoomMember::new();
        member.display_name = text("displayname");
        member.avatar_url = text("avatar_url").map(Into::into);
        joined.insert(user_id, member);
    }
    Ok(joined_members::v3::Response::new(joined).into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`
async fn get_member_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_member_events::v3::Request>,
) -> Result<RumaResponse<get_member_events::v3::Response>> {
    let at = req
        .at
        .as_deref()
        .map(maas_core::sync::parse_token)
        .transpose()?;
    let mut members = tenant
        .rooms()
        .members(&user.user_id, &req.room_id, at)
        .await?;
    members.sort_by_key(Event::stream);
    let mut chunk = Vec::with_capacity(members.len());
    for event in &members {
        let content = event.content();
        let membership = content
            .get("membership")
            .and_then(Value::as_str)
            .unwrap_or("leave");
        if req
            .membership
            .as_ref()
            .is_some_and(|m| m.as_str() != membership)
            || req
                .not_membership
                .as_ref()
                .is_some_and(|m| m.as_str() == membership)
        {
            continue;
        }
        chunk.push(client_event_raw(&tenant, event, &user).await?);
    }
    Ok(get_member_events::v3::Response::new(chunk).into())
}
