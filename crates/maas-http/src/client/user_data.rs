//! Per-user data (spec: "Client config", "Room tagging", "Filtering"): account data, global and
//! per room, room tags and stored filters.

use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use ruma::api::client::filter::{FilterDefinition, create_filter, get_filter};
use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use ruma::events::tag::{TagInfo, TagName, Tags};

use super::events::{raw_value, to_raw};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router =
        route::<get_global_account_data::v3::Request, _, _>(router, get_global_account_data);
    let router =
        route::<set_global_account_data::v3::Request, _, _>(router, set_global_account_data);
    let router = route::<get_room_account_data::v3::Request, _, _>(router, get_room_account_data);
    let router = route::<set_room_account_data::v3::Request, _, _>(router, set_room_account_data);
    let router = route::<get_tags::v3::Request, _, _>(router, get_tags);
    let router = route::<create_tag::v3::Request, _, _>(router, create_tag);
    let router = route::<delete_tag::v3::Request, _, _>(router, delete_tag);
    let router = route::<create_filter::v3::Request, _, _>(router, create_filter);
    route::<get_filter::v3::Request, _, _>(router, get_filter)
}

fn internal(what: &str, e: impl std::fmt::Display) -> HttpError {
    maas_core::Error::Internal(format!("{what}: {e}")).into()
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
async fn get_global_account_data(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_global_account_data::v3::Request>,
) -> Result<RumaResponse<get_global_account_data::v3::Response>> {
    let content = tenant
        .user_data()
        .account_data(&user, &req.user_id, None, &req.event_type.to_string())
        .await?;
    Ok(get_global_account_data::v3::Response::new(to_raw(&content)?).into())
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
async fn set_global_account_data(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>> {
    let content = raw_value(&req.data)?;
    tenant
        .user_data()
        .set_account_data(
            &user,
            &req.user_id,
            None,
            &req.event_type.to_string(),
            content,
        )
        .await?;
    Ok(set_global_account_data::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
async fn get_room_account_data(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_room_account_data::v3::Request>,
) -> Result<RumaResponse<get_room_account_data::v3::Response>> {
    let content = tenant
        .user_data()
        .account_data(
            &user,
            &req.user_id,
            Some(&req.room_id),
            &req.event_type.to_string(),
        )
        .await?;
    Ok(get_room_account_data::v3::Response::new(to_raw(&content)?).into())
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
async fn set_room_account_data(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_room_account_data::v3::Request>,
) -> Result<RumaResponse<set_room_account_data::v3::Response>> {
    let content = raw_value(&req.data)?;
    tenant
        .user_data()
        .set_account_data(
            &user,
            &req.user_id,
            Some(&req.room_id),
            &req.event_type.to_string(),
            content,
        )
        .await?;
    Ok(set_room_account_data::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
async fn get_tags(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_tags::v3::Request>,
) -> Result<RumaResponse<get_tags::v3::Response>> {
    let stored = tenant
        .user_data()
        .tags(&user, &req.user_id, &req.room_id)
        .await?;
    // A stored tag ruma can't read (it was valid JSON when set) is left out, not an error.
    let tags: Tags = stored
        .into_iter()
        .filter_map(|(name, info)| {
            let info = serde_json::from_value::<TagInfo>(info).ok()?;
            Some((TagName::from(name), info))
        })
        .collect();
    Ok(get_tags::v3::Response::new(tags).into())
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
async fn create_tag(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_tag::v3::Request>,
) -> Result<RumaResponse<create_tag::v3::Response>> {
    let info = serde_json::to_value(&req.tag_info).map_err(|e| internal("tag info", e))?;
    tenant
        .user_data()
        .set_tag(&user, &req.user_id, &req.room_id, &req.tag, Some(info))
        .await?;
    Ok(create_tag::v3::Response::new().into())
}

/// `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
async fn delete_tag(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_tag::v3::Request>,
) -> Result<RumaResponse<delete_tag::v3::Response>> {
    tenant
        .user_data()
        .set_tag(&user, &req.user_id, &req.room_id, &req.tag, None)
        .await?;
    Ok(delete_tag::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/user/{userId}/filter`
async fn create_filter(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>> {
    let definition = serde_json::to_value(&req.filter).map_err(|e| internal("filter", e))?;
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
    let filter: FilterDefinition =
        serde_json::from_value(stored).map_err(|e| internal("stored filter", e))?;
    Ok(get_filter::v3::Response::new(filter).into())
}
