//! The tenant's federation destinations (Synapse: "Federation API"): listed, one by one, the
//! rooms shared with each, and the reset of a failing one. `synapse_admin_api` has no types
//! for these; the shapes are Synapse's (`next_token` a string here, as Synapse sends it).

use axum::Json;
use axum::routing::{get, post};
use maas_core::destinations::{DestinationInfo, DestinationOrder, DestinationQuery};
use serde_json::{Value, json};

use super::auth::AdminUser;
use super::query::SynapseQuery;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

const DESTINATIONS: &str = "/_synapse/admin/v1/federation/destinations";

/// Destinations or rooms listed per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 100;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(DESTINATIONS, get(list_destinations))
        .route(&format!("{DESTINATIONS}/{{destination}}"), get(destination))
        .route(
            &format!("{DESTINATIONS}/{{destination}}/rooms"),
            get(destination_rooms),
        )
        .route(
            &format!("{DESTINATIONS}/{{destination}}/reset_connection"),
            post(reset_connection),
        )
}

fn destination_json(info: &DestinationInfo) -> Value {
    json!({
        "destination": info.destination,
        "retry_last_ts": info.retry_last_ts,
        "retry_interval": info.retry_interval,
        "failure_ts": info.failure_ts,
        "last_successful_stream_ordering": info.last_successful_stream_ordering,
    })
}

fn unknown_destination() -> HttpError {
    maas_core::Error::NotFound("Unknown destination".into()).into()
}

/// `next_token` (a string) when the window ends before the selection does.
fn with_next_token(mut body: Value, offset: u64, limit: u64, shown: usize, total: u64) -> Value {
    if offset.saturating_add(limit) < total {
        body["next_token"] = json!((offset + shown as u64).to_string());
    }
    body
}

/// `GET /_synapse/admin/v1/federation/destinations`
async fn list_destinations(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let order = match query.one_of(
        "order_by",
        &[
            "destination",
            "retry_last_ts",
            "retry_interval",
            "failure_ts",
            "last_successful_stream_ordering",
        ],
        "destination",
    )? {
        "retry_last_ts" => DestinationOrder::RetryLastTs,
        "retry_interval" => DestinationOrder::RetryInterval,
        "failure_ts" => DestinationOrder::FailureTs,
        "last_successful_stream_ordering" => DestinationOrder::LastSuccessfulStreamOrdering,
        _ => DestinationOrder::Destination,
    };
    let request = DestinationQuery {
        offset: query.integer("from", 0)?,
        limit: query.integer("limit", DEFAULT_LIMIT)?,
        name_contains: query
            .string("destination")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        order,
        backwards: query.backwards(false)?,
    };
    let (page, total) = tenant.destinations().list(&request).await?;
    let destinations: Vec<Value> = page.iter().map(destination_json).collect();
    let shown = destinations.len();
    let body = json!({ "destinations": destinations, "total": total });
    Ok(Json(with_next_token(
        body,
        request.offset,
        request.limit,
        shown,
        total,
    )))
}

/// `GET /_synapse/admin/v1/federation/destinations/{destination}`
async fn destination(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(destination): Path<String>,
) -> Result<Json<Value>> {
    match tenant.destinations().get(&destination).await? {
        Some(info) => Ok(Json(destination_json(&info))),
        None => Err(unknown_destination()),
    }
}

/// `GET /_synapse/admin/v1/federation/destinations/{destination}/rooms`: as Synapse, an
/// unknown destination is told before the query is read.
async fn destination_rooms(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(destination): Path<String>,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let destinations = tenant.destinations();
    if destinations.get(&destination).await?.is_none() {
        return Err(unknown_destination());
    }
    let offset = query.integer("from", 0)?;
    let limit = query.integer("limit", DEFAULT_LIMIT)?;
    let backwards = query.backwards(false)?;
    let Some((page, total)) = destinations
        .rooms(&destination, offset, limit, backwards)
        .await?
    else {
        return Err(unknown_destination());
    };
    let rooms: Vec<Value> = page
        .iter()
        .map(|r| json!({ "room_id": r.room_id, "stream_ordering": r.stream_ordering }))
        .collect();
    let shown = rooms.len();
    let body = json!({ "rooms": rooms, "total": total });
    Ok(Json(with_next_token(body, offset, limit, shown, total)))
}

/// `POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection`
async fn reset_connection(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(destination): Path<String>,
) -> Result<Json<Value>> {
    tenant.destinations().reset(&destination).await?;
    Ok(Json(json!({})))
}
