//! Rooms (spec: "Rooms" → "Creation", "Getting events for a room"; ruma `room`): creating a
//! room, and finding one of its events by id or by time.

use maas_core::rooms::{CreateRoom, Preset};
use ruma::api::client::room::{Visibility, create_room, get_event_by_timestamp, get_room_event};
use ruma::serde::Raw;
use ruma::{EventId, MilliSecondsSinceUnixEpoch, UInt};
use serde_json::{Map, Value};

use super::convert::{client_event_raw, direction, raw_value};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<create_room::v3::Request, _, _>(router, create_room);
    let router = route::<get_room_event::v3::Request, _, _>(router, get_room_event);
    route::<get_event_by_timestamp::v1::Request, _, _>(router, get_event_by_timestamp)
}

/// Third-party invites need an identity server, which this server does not talk to.
pub(crate) fn threepid_unsupported() -> HttpError {
    HttpError::new(
        http::StatusCode::BAD_REQUEST,
        "M_UNRECOGNIZED",
        "3pid invites not supported",
    )
}

fn preset(preset: &create_room::v3::RoomPreset) -> Result<Preset> {
    use create_room::v3::RoomPreset as P;
    match preset {
        P::PrivateChat => Ok(Preset::PrivateChat),
        P::PublicChat => Ok(Preset::PublicChat),
        P::TrustedPrivateChat => Ok(Preset::TrustedPrivateChat),
        other => Err(HttpError::bad_json(format!(
            "Unknown preset {:?}",
            other.as_str()
        ))),
    }
}

/// A JSON object given as a `Raw` field.
fn object<T>(raw: &Raw<T>, field: &str) -> Result<Map<String, Value>> {
    match raw_value(raw)? {
        Value::Object(map) => Ok(map),
        _ => Err(HttpError::bad_json(format!("{field} must be an object"))),
    }
}

/// One `initial_state` entry as `(type, state_key, content)`.
fn initial_state_event<T>(raw: &Raw<T>) -> Result<(String, String, Value)> {
    let event = object(raw, "initial_state entries")?;
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::bad_json("initial_state entries need a `type`"))?;
    let state_key = match event.get("state_key") {
        None | Some(Value::Null) => "",
        Some(Value::String(key)) => key.as_str(),
        Some(_) => return Err(HttpError::bad_json("state_key must be a string")),
    };
    let content = match event.get("content") {
        Some(content @ Value::Object(_)) => content.clone(),
        _ => {
            return Err(HttpError::bad_json(
                "initial_state content must be an object",
            ));
        }
    };
    Ok((kind.to_owned(), state_key.to_owned(), content))
}

/// `POST /_matrix/client/v3/createRoom`
async fn create_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_room::v3::Request>,
) -> Result<RumaResponse<create_room::v3::Response>> {
    if !req.invite_3pid.is_empty() {
        return Err(threepid_unsupported());
    }
    let initial_state = req
        .initial_state
        .iter()
        .map(initial_state_event)
        .collect::<Result<Vec<_>>>()?;
    let creation_content = req
        .creation_content
        .as_ref()
        .map(|c| object(c, "creation_content"))
        .transpose()?;
    let power_level_content_override = req
        .power_level_content_override
        .as_ref()
        .map(|p| object(p, "power_level_content_override"))
        .transpose()?;
    let create = CreateRoom {
        room_version: req.room_version,
        preset: req.preset.as_ref().map(preset).transpose()?,
        public: req.visibility == Visibility::Public,
        room_alias_name: req.room_alias_name,
        name: req.name,
        topic: req.topic,
        invite: req.invite,
        is_direct: req.is_direct,
        initial_state,
        creation_content,
        power_level_content_override,
    };
    let room_id = tenant.rooms().create(&user.user_id, create).await?;
    Ok(create_room::v3::Response::new(room_id).into())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
async fn get_room_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>> {
    let record = tenant
        .rooms()
        .event(&user.user_id, &req.room_id, &req.event_id)
        .await?;
    let event = client_event_raw(&tenant, &record, &user).await?;
    Ok(get_room_event::v3::Response::new(event).into())
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
async fn get_event_by_timestamp(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let ts = i64::from(req.ts.get());
    let event = tenant
        .rooms()
        .timestamp_to_event(&user.user_id, &req.room_id, ts, direction(req.dir))
        .await?;
    let event_id =
        EventId::parse(event.event_id()).map_err(|_| HttpError::internal("bad stored event id"))?;
    let origin_server_ts = UInt::try_from(event.origin_server_ts())
        .map(MilliSecondsSinceUnixEpoch)
        .unwrap_or(MilliSecondsSinceUnixEpoch(UInt::MIN));
    Ok(get_event_by_timestamp::v1::Response::new(event_id, origin_server_ts).into())
}
