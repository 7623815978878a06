//! Room tags (spec: "Room Tagging"; ruma `tag`): a user's labels on rooms, such as
//! favourites, with an optional order.

use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use ruma::events::tag::{TagInfo, TagName, Tags};

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_tags::v3::Request, _, _>(router, get_tags);
    let router = route::<create_tag::v3::Request, _, _>(router, create_tag);
    route::<delete_tag::v3::Request, _, _>(router, delete_tag)
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
    let info = serde_json::to_value(&req.tag_info)
        .map_err(|e| HttpError::internal(format!("tag info: {e}")))?;
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
