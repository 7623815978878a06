//! Shared glue of the room endpoints: core hands events over as stored records or JSON values,
//! ruma's response types want `Raw` events.

use maas_core::Tenant;
use maas_core::accounts::AuthedUser;
use maas_core::rooms::read::client_event;
use maas_store::EventRecord;
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
    event: &EventRecord,
    viewer: &AuthedUser,
) -> Result<Raw<T>> {
    to_raw(&client_event(tenant, event, Some(viewer)).await)
}

/// The client format of several events, in order.
pub(crate) async fn client_events_raw<T>(
    tenant: &Tenant,
    events: &[EventRecord],
    viewer: &AuthedUser,
) -> Result<Vec<Raw<T>>> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        out.push(client_event_raw(tenant, event, viewer).await?);
    }
    Ok(out)
}

/// The `content` of a stored event's PDU.
pub(crate) fn content_of(event: &EventRecord) -> Value {
    serde_json::from_str::<Value>(&event.pdu)
        .ok()
        .and_then(|mut pdu| pdu.get_mut("content").map(Value::take))
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()))
}
