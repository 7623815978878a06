//! Filters (spec: "Filtering"; ruma `filter`): storing a filter definition under an id that
//! `/sync` and other endpoints then take in its place.

use ruma::api::client::filter::{FilterDefinition, create_filter, get_filter};

use super::convert::from_core;
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<create_filter::v3::Request, _, _>(router, create_filter);
    route::<get_filter::v3::Request, _, _>(router, get_filter)
}

/// `POST /_matrix/client/v3/user/{userId}/filter`
async fn create_filter(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>> {
    let definition = serde_json::to_value(&req.filter)
        .map_err(|e| HttpError::internal(format!("filter: {e}")))?;
    let filter_id = tenant
        .user_data()
        .create_filter(&user, &req.user_id, &definition)
        .await?;
    Ok(create_filter::v3::Response::new(filter_id).into())
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
async fn get_filter(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_filter::v3::Request>,
) -> Result<RumaResponse<get_filter::v3::Response>> {
    let stored = tenant
        .user_data()
        .filter(&user, &req.user_id, &req.filter_id)
        .await?;
    let filter: FilterDefinition = from_core(stored, "stored filter")?;
    Ok(get_filter::v3::Response::new(filter).into())
}
