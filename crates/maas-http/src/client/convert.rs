//! Conversions the client endpoints share between core's types and ruma's: core hands events
//! over as its own `Event`s or JSON values where ruma's types want `Raw` events; ruma's paging
//! parameters (direction, limit, filter) become core's.

use maas_core::Tenant;
use maas_core::accounts::AuthedUser;
use maas_core::filter::{RoomEventFilter, parse_room_event_filter};
use maas_core::rooms::{Direction, Event, client_event, client_events};
use ruma::UInt;
use ruma::serde::Raw;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{HttpError, Result};

/// Any serialisable value as a `Raw<T>` for a ruma response.
pub(crate) fn to_raw<T, V: Serialize + ?Sized>(value: &V) -> Result<Raw<T>> {
    serde_json::value::to_raw_value(value)
        .map(Raw::from_json)
        .map_err(|e| HttpError::internal(format!("serialize event: {e}")))
}

/// The JSON inside a `Raw` request field; anything that is not valid JSON is `M_BAD_JSON`.
pub(crate) fn raw_value<T>(raw: &Raw<T>) -> Result<Value> {
    raw.deserialize_as::<Value>()
        .map_err(|e| HttpError::bad_json(e.to_string()))
}

/// The client format of one event, as seen by `viewer`.
pub(crate) async fn client_event_raw<T>(
    tenant: &Tenant,
    event: &Event,
    viewer: &AuthedUser,
) -> Result<Raw<T>> {
    to_raw(&client_event(tenant, event, Some(viewer)).await)
}

/// The client format of several events, in order.
pub(crate) async fn client_events_raw<T>(
    tenant: &Tenant,
    events: &[Event],
    viewer: &AuthedUser,
) -> Result<Vec<Raw<T>>> {
    let formatted = client_events(tenant, events, Some(viewer)).await?;
    formatted.iter().map(to_raw).collect()
}

/// A JSON value from core as a ruma response type; core's output not fitting is a bug.
pub(crate) fn from_core<T: DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| HttpError::internal(format!("{what}: {e}")))
}

/// Events one page carries at most, whatever the client asks for.
pub(crate) const MAX_PAGE: u32 = 1000;

/// Events a page carries when the client does not say.
const DEFAULT_PAGE: u32 = 10;

/// The size of a page the client asked for: at least one event, at most [`MAX_PAGE`].
pub(crate) fn page_limit(limit: Option<UInt>) -> u32 {
    limit
        .map_or(DEFAULT_PAGE, |l| u32::try_from(l).unwrap_or(MAX_PAGE))
        .clamp(1, MAX_PAGE)
}

pub(crate) fn direction(dir: ruma::api::Direction) -> Direction {
    match dir {
        ruma::api::Direction::Backward => Direction::Backward,
        ruma::api::Direction::Forward => Direction::Forward,
    }
}

/// A room event filter as ruma parsed it, in core's terms.
pub(crate) fn room_event_filter(
    filter: &ruma::api::client::filter::RoomEventFilter,
) -> Result<RoomEventFilter> {
    let json = serde_json::to_string(filter)
        .map_err(|e| HttpError::bad_json(format!("Invalid filter: {e}")))?;
    Ok(parse_room_event_filter(&json)?)
}
