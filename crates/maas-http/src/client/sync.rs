//! Syncing (spec: "Syncing"; ruma `sync`): `/sync`, long-polled on the tenant's notifier. Core
//! builds the response as JSON in the spec's shape, so it is sent as is rather than through ruma's
//! response type.

use std::time::Duration;

use axum::Json;
use maas_core::sync::{SyncRequest, parse_token};
use ruma::api::client::sync::sync_events;
use ruma::api::client::sync::sync_events::v3::Filter;
use serde_json::Value;

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::Ruma;

pub fn routes(router: AppRouter) -> AppRouter {
    route::<sync_events::v3::Request, _, _>(router, sync_events)
}

/// The `filter` parameter as given: a filter id, or a definition as JSON.
fn filter_param(filter: Option<&Filter>) -> Result<Option<String>> {
    match filter {
        None => Ok(None),
        Some(Filter::FilterId(id)) => Ok(Some(id.clone())),
        Some(Filter::FilterDefinition(definition)) => serde_json::to_string(definition)
            .map(Some)
            .map_err(|e| HttpError::bad_json(format!("Invalid filter: {e}"))),
        Some(_) => Err(HttpError::invalid_param("Unsupported filter")),
    }
}

/// `GET /_matrix/client/v3/sync`
async fn sync_events(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<sync_events::v3::Request>,
) -> Result<Json<Value>> {
    let since = req.since.as_deref().map(parse_token).transpose()?;
    let filter = filter_param(req.filter.as_ref())?;
    let filter = tenant
        .user_data()
        .sync_filter(&user, filter.as_deref())
        .await?;
    let request = SyncRequest {
        since,
        set_presence: Some(req.set_presence.as_str().to_owned()),
        timeout: req.timeout.unwrap_or(Duration::ZERO),
        full_state: req.full_state,
        filter,
    };
    let _counted = tenant.sync_connection();
    Ok(Json(tenant.sync(&user, request).await?))
}
