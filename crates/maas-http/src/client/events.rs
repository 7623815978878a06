//! Shared glue of the room endpoints: core hands events over as its own `Event`s or JSON
//! values, ruma's response types want `Raw` events.

use maas_core::Tenant;
use maas_core::accounts::AuthedUser;
use maas_core::rooms::{Event, client_event, client_events};
use ruma::serde::Raw;
use serde::Serialize;
use serde_json::Value;

use crate::error::{HttpError, Result};

/// Any serialisable value as a `Raw<T>` for a ruma response.
pub(crate) fn to_raw<T, V: Serialize + ?Sized>(value: &V) -> Result<Raw<T>> {
    serde_json::value::to_raw_value(value)
        .map(Raw::from_json)
        .map_err(|e| HttpError::from(maas_core::Error::Internal(format!("serialize event: {e}"))))
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
