//! Reading rooms as an admin: the room list, a room's details, members and state, its
//! timeline and an event's context past history visibility, the event nearest a time, and
//! the room's forward extremities.

use axum::Json;
use maas_core::Tenant;
use maas_core::filter::{RoomEventFilter, parse_room_event_filter};
use maas_core::rooms::admin::{RoomListQuery, RoomOrder, RoomSummary};
use maas_core::rooms::{Direction, Event, Page, client_event, client_events};
use maas_core::sync::{parse_page_token, token};
use ruma::OwnedEventId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::AdminUser;
use super::body::known_room_id;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};

/// Rooms listed per page unless `limit` says otherwise, as Synapse.
const DEFAULT_LIMIT: u64 = 100;
/// Events a page of `/messages` or `/context` carries unless `limit` says otherwise, and at
/// most.
const DEFAULT_EVENTS: u32 = 10;
const MAX_EVENTS: u32 = 1000;

/// Synapse's `order_by` values, the deprecated ones included.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OrderBy {
    #[default]
    Name,
    Alphabetical,
    Size,
    CanonicalAlias,
    JoinedMembers,
    JoinedLocalMembers,
    Version,
    Creator,
    Encryption,
    Federatable,
    Public,
    JoinRules,
    GuestAccess,
    HistoryVisibility,
    StateEvents,
}

impl From<OrderBy> for RoomOrder {
    fn from(order: OrderBy) -> Self {
        match order {
            OrderBy::Name | OrderBy::Alphabetical => RoomOrder::Name,
            OrderBy::Size | OrderBy::JoinedMembers => RoomOrder::JoinedMembers,
            OrderBy::CanonicalAlias => RoomOrder::CanonicalAlias,
            OrderBy::JoinedLocalMembers => RoomOrder::JoinedLocalMembers,
            OrderBy::Version => RoomOrder::Version,
            OrderBy::Creator => RoomOrder::Creator,
            OrderBy::Encryption => RoomOrder::Encryption,
            OrderBy::Federatable => RoomOrder::Federatable,
            OrderBy::Public => RoomOrder::Public,
            OrderBy::JoinRules => RoomOrder::JoinRules,
            OrderBy::GuestAccess => RoomOrder::GuestAccess,
            OrderBy::HistoryVisibility => RoomOrder::HistoryVisibility,
            OrderBy::StateEvents => RoomOrder::StateEvents,
        }
    }
}

/// `dir`: `f`orwards or `b`ackwards.
#[derive(Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(super) enum Dir {
    #[default]
    #[serde(rename = "f")]
    Forwards,
    #[serde(rename = "b")]
    Backwards,
}

impl From<Dir> for Direction {
    fn from(dir: Dir) -> Self {
        match dir {
            Dir::Forwards => Direction::Forward,
            Dir::Backwards => Direction::Backward,
        }
    }
}

/// The query of `GET /rooms`. Unknown parameters are ignored, as Synapse does.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    from: Option<u64>,
    limit: Option<u64>,
    order_by: Option<OrderBy>,
    dir: Option<Dir>,
    search_term: Option<String>,
    public_rooms: Option<bool>,
    empty_rooms: Option<bool>,
}

/// A room as Synapse lists it.
fn listed(room: &RoomSummary) -> Value {
    json!({
        "room_id": room.room_id,
        "name": room.name,
        "canonical_alias": room.canonical_alias,
        "joined_members": room.joined_members,
        "joined_local_members": room.joined_local_members,
        "version": room.version,
        "creator": room.creator,
        "encryption": room.encryption,
        "federatable": room.federatable,
        "public": room.public,
        "join_rules": room.join_rules,
        "guest_access": room.guest_access,
        "history_visibility": room.history_visibility,
        "state_events": room.state_events,
        "room_type": room.room_type,
    })
}

/// `GET /_synapse/admin/v1/rooms`
pub(super) async fn list_rooms(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    if query.search_term.as_deref() == Some("") {
        return Err(HttpError::invalid_param(
            "search_term cannot be an empty string",
        ));
    }
    let request = RoomListQuery {
        order: query.order_by.unwrap_or_default().into(),
        backwards: query.dir == Some(Dir::Backwards),
        search_term: query.search_term,
        public_rooms: query.public_rooms,
        empty_rooms: query.empty_rooms,
    };
    let rooms = tenant.rooms().admin().list(&request).await?;
    let total = rooms.len() as u64;
    let start = query.from.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let page: Vec<Value> = rooms
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(listed)
        .collect();
    let mut body = json!({ "rooms": page, "offset": start, "total_rooms": total });
    // As Synapse: the next page starts after this one's window, the previous one a window
    // back (or at 0).
    if start.saturating_add(limit) < total {
        body["next_batch"] = json!(start + limit);
    }
    if start > 0 {
        body["prev_batch"] = json!(start.saturating_sub(limit));
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v1/rooms/{roomId}`
pub(super) async fn room_details(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = known_room_id(&room_id)?;
    let details = tenant.rooms().admin().details(&room_id).await?;
    let room = &details.summary;
    let mut body = listed(room);
    for (key, value) in [
        ("topic", json!(room.topic)),
        ("avatar", json!(room.avatar)),
        ("joined_local_devices", json!(details.joined_local_devices)),
        ("forgotten", json!(details.forgotten)),
        ("tombstoned", json!(room.tombstoned)),
        ("replacement_room", json!(room.replacement_room)),
    ] {
        body[key] = value;
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/members`
pub(super) async fn room_members(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = known_room_id(&room_id)?;
    let members = tenant.rooms().admin().members(&room_id).await?;
    Ok(Json(json!({ "total": members.len(), "members": members })))
}

#[derive(Deserialize)]
pub(super) struct StateQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/state`
pub(super) async fn room_state(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
    Query(query): Query<StateQuery>,
) -> Result<Json<Value>> {
    let room_id = known_room_id(&room_id)?;
    let kind = query.kind.filter(|k| !k.is_empty());
    let state = tenant
        .rooms()
        .admin()
        .state(&room_id, kind.as_deref())
        .await?;
    Ok(Json(json!({ "state": formatted(&tenant, &state).await? })))
}

#[derive(Deserialize)]
pub(super) struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<Dir>,
    limit: Option<u32>,
    filter: Option<String>,
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/messages`
pub(super) async fn room_messages(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>> {
    let room_id = known_room_id(&room_id)?;
    let page = Page {
        from: query.from.as_deref().map(parse_page_token).transpose()?,
        to: query.to.as_deref().map(parse_page_token).transpose()?,
        direction: query.dir.unwrap_or_default().into(),
        limit: query.limit.unwrap_or(DEFAULT_EVENTS).clamp(1, MAX_EVENTS),
    };
    let filter = event_filter(query.filter.as_deref())?;
    let messages = tenant
        .rooms()
        .admin()
        .messages(&room_id, page, &filter)
        .await?;
    let mut body = json!({
        "chunk": formatted(&tenant, &messages.chunk).await?,
        "start": token(messages.start),
    });
    if let Some(end) = messages.end {
        body["end"] = json!(token(end));
    }
    if !messages.state.is_empty() {
        body["state"] = json!(formatted(&tenant, &messages.state).await?);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub(super) struct ContextQuery {
    limit: Option<u32>,
    filter: Option<String>,
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}`
pub(super) async fn room_event_context(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path((room_id, event_id)): Path<(String, String)>,
    Query(query): Query<ContextQuery>,
) -> Result<Json<Value>> {
    let not_found = || HttpError::from(maas_core::Error::NotFound("Event not found.".into()));
    let room_id = known_room_id(&room_id).map_err(|_| not_found())?;
    let event_id = OwnedEventId::try_from(event_id).map_err(|_| not_found())?;
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let filter = event_filter(query.filter.as_deref())?;
    let context = tenant
        .rooms()
        .admin()
        .context(&room_id, &event_id, limit, &filter)
        .await?;
    Ok(Json(json!({
        "events_before": formatted(&tenant, &context.before).await?,
        "event": client_event(&tenant, &context.event, None).await,
        "events_after": formatted(&tenant, &context.after).await?,
        "state": formatted(&tenant, &context.state).await?,
        "start": token(context.start),
        "end": token(context.end),
    })))
}

#[derive(Deserialize)]
pub(super) struct TimestampQuery {
    /// Required: a missing one is `400 M_MISSING_PARAM` (the extractor's "missing field").
    ts: i64,
    dir: Option<Dir>,
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event`
pub(super) async fn timestamp_to_event(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room_id): Path<String>,
    Query(query): Query<TimestampQuery>,
) -> Result<Json<Value>> {
    let room_id = known_room_id(&room_id)?;
    let direction = query.dir.unwrap_or_default().into();
    let (event_id, ts) = tenant
        .rooms()
        .admin()
        .event_at(&room_id, query.ts, direction)
        .await?;
    Ok(Json(
        json!({ "event_id": event_id, "origin_server_ts": ts }),
    ))
}

/// `GET /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities`
pub(super) async fn forward_extremities(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room): Path<String>,
) -> Result<Json<Value>> {
    let admin = tenant.rooms().admin();
    let (room_id, _) = admin.resolve(&room, Vec::new()).await?;
    let extremities = admin.forward_extremities(&room_id).await?;
    let results: Vec<Value> = extremities
        .iter()
        .map(|e| {
            json!({
                "event_id": e.event_id,
                "state_group": e.state_group,
                "depth": e.depth,
                "received_ts": e.received_ts,
            })
        })
        .collect();
    Ok(Json(json!({ "count": results.len(), "results": results })))
}

/// `DELETE /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities`
pub(super) async fn delete_forward_extremities(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(room): Path<String>,
) -> Result<Json<Value>> {
    let admin = tenant.rooms().admin();
    let (room_id, _) = admin.resolve(&room, Vec::new()).await?;
    let deleted = admin.delete_forward_extremities(&room_id).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

/// A `filter` query parameter (a JSON `RoomEventFilter`); none filters nothing.
fn event_filter(raw: Option<&str>) -> Result<RoomEventFilter> {
    Ok(parse_room_event_filter(raw.unwrap_or("{}"))?)
}

/// Events in the client format, as an admin (no viewer) sees them.
async fn formatted(tenant: &Tenant, events: &[Event]) -> Result<Vec<Value>> {
    Ok(client_events(tenant, events, None).await?)
}
