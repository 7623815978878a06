//! Joining, knocking on and leaving the tenant's rooms from other servers, and invites of its
//! users (spec: Server-Server API, "Joining Rooms", "Knocking upon a room", "Leaving Rooms",
//! "Inviting to a room"; ruma `membership`): `make_join`, `send_join` v2, `make_knock`,
//! `send_knock`, `make_leave`, `send_leave` v2 and `invite` v2.

use maas_core::federation::{invite, membership};
use ruma::api::federation::membership::{
    RawStrippedState, create_invite, create_join_event, create_knock_event, create_leave_event,
    prepare_join_event, prepare_knock_event, prepare_leave_event,
};

use super::authentication::Origin;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<prepare_join_event::v1::Request, _, _>(router, make_join);
    let router = route::<create_join_event::v2::Request, _, _>(router, send_join);
    let router = route::<prepare_leave_event::v1::Request, _, _>(router, make_leave);
    let router = route::<create_leave_event::v2::Request, _, _>(router, send_leave);
    let router = route::<prepare_knock_event::v1::Request, _, _>(router, make_knock);
    let router = route::<create_knock_event::v1::Request, _, _>(router, send_knock);
    route::<create_invite::v2::Request, _, _>(router, invite)
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`
async fn make_join(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<prepare_join_event::v1::Request>,
) -> Result<RumaResponse<prepare_join_event::v1::Response>> {
    let template =
        membership::make_join(&tenant, &origin, &req.room_id, &req.user_id, &req.ver).await?;
    let mut response = prepare_join_event::v1::Response::new(template.event);
    response.room_version = Some(template.room_version);
    Ok(response.into())
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
async fn send_join(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<create_join_event::v2::Request>,
) -> Result<RumaResponse<create_join_event::v2::Response>> {
    let joined = membership::send_join(
        &tenant,
        &origin,
        &req.room_id,
        &req.event_id,
        &req.pdu,
        req.omit_members,
    )
    .await?;
    let mut room_state = create_join_event::v2::RoomState::new();
    room_state.state = joined.state;
    room_state.auth_chain = joined.auth_chain;
    room_state.servers_in_room = Some(joined.servers_in_room);
    room_state.members_omitted = joined.members_omitted;
    Ok(create_join_event::v2::Response::new(room_state).into())
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
async fn make_leave(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<prepare_leave_event::v1::Request>,
) -> Result<RumaResponse<prepare_leave_event::v1::Response>> {
    let template = membership::make_leave(&tenant, &origin, &req.room_id, &req.user_id).await?;
    let response =
        prepare_leave_event::v1::Response::new(Some(template.room_version), template.event);
    Ok(response.into())
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
async fn send_leave(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<create_leave_event::v2::Request>,
) -> Result<RumaResponse<create_leave_event::v2::Response>> {
    membership::send_leave(&tenant, &origin, &req.room_id, &req.event_id, &req.pdu).await?;
    Ok(create_leave_event::v2::Response::new().into())
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`
async fn make_knock(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<prepare_knock_event::v1::Request>,
) -> Result<RumaResponse<prepare_knock_event::v1::Response>> {
    let template =
        membership::make_knock(&tenant, &origin, &req.room_id, &req.user_id, &req.ver).await?;
    Ok(prepare_knock_event::v1::Response::new(template.room_version, template.event).into())
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
async fn send_knock(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<create_knock_event::v1::Request>,
) -> Result<RumaResponse<create_knock_event::v1::Response>> {
    let stripped =
        membership::send_knock(&tenant, &origin, &req.room_id, &req.event_id, &req.pdu).await?;
    let state = stripped.into_iter().map(RawStrippedState::Pdu).collect();
    Ok(create_knock_event::v1::Response::new(state).into())
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
async fn invite(
    ForTenant(tenant): ForTenant,
    Origin(origin): Origin,
    Ruma(req): Ruma<create_invite::v2::Request>,
) -> Result<RumaResponse<create_invite::v2::Response>> {
    let event = invite::receive(
        &tenant,
        &origin,
        &req.room_id,
        &req.event_id,
        &req.room_version,
        &req.event,
        &req.invite_room_state,
    )
    .await?;
    Ok(create_invite::v2::Response::new(event).into())
}
