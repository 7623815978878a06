//! Profiles (spec: "Profiles"; ruma `profile`): display name and avatar of local users.

use ruma::api::client::profile::{
    get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
};
use serde_json::Value;

use crate::context::Authed;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_profile::v3::Request, _, _>(router, get_profile);
    let router = route::<get_display_name::v3::Request, _, _>(router, get_display_name);
    let router = route::<set_display_name::v3::Request, _, _>(router, set_display_name);
    let router = route::<get_avatar_url::v3::Request, _, _>(router, get_avatar_url);
    route::<set_avatar_url::v3::Request, _, _>(router, set_avatar_url)
}

fn not_found(what: &str) -> HttpError {
    HttpError::new(
        http::StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        format!("No {what} for this user"),
    )
}

/// `GET /_matrix/client/v3/profile/{userId}`
async fn get_profile(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>> {
    let profile = tenant.accounts().profile(&req.user_id).await?;
    let mut response = get_profile::v3::Response::new();
    if let Some(name) = profile.displayname {
        response.set("displayname".into(), Value::String(name));
    }
    if let Some(url) = profile.avatar_url {
        response.set("avatar_url".into(), Value::String(url.to_string()));
    }
    Ok(response.into())
}

/// `GET /_matrix/client/v3/profile/{userId}/displayname`
async fn get_display_name(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_display_name::v3::Request>,
) -> Result<RumaResponse<get_display_name::v3::Response>> {
    let profile = tenant.accounts().profile(&req.user_id).await?;
    let name = profile
        .displayname
        .ok_or_else(|| not_found("display name"))?;
    Ok(get_display_name::v3::Response::new(Some(name)).into())
}

/// `PUT /_matrix/client/v3/profile/{userId}/displayname`
async fn set_display_name(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_display_name::v3::Request>,
) -> Result<RumaResponse<set_display_name::v3::Response>> {
    tenant
        .accounts()
        .set_displayname(&user, &req.user_id, req.displayname.as_deref())
        .await?;
    Ok(set_display_name::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/profile/{userId}/avatar_url`
async fn get_avatar_url(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_avatar_url::v3::Request>,
) -> Result<RumaResponse<get_avatar_url::v3::Response>> {
    let profile = tenant.accounts().profile(&req.user_id).await?;
    let url = profile.avatar_url.ok_or_else(|| not_found("avatar"))?;
    Ok(get_avatar_url::v3::Response::new(Some(url)).into())
}

/// `PUT /_matrix/client/v3/profile/{userId}/avatar_url`
async fn set_avatar_url(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_avatar_url::v3::Request>,
) -> Result<RumaResponse<set_avatar_url::v3::Response>> {
    let url = req.avatar_url.as_ref().map(|u| u.as_str());
    tenant
        .accounts()
        .set_avatar_url(&user, &req.user_id, url)
        .await?;
    Ok(set_avatar_url::v3::Response::new().into())
}
