//! `GET /_matrix/client/v1/media/preview_url` and the deprecated
//! `GET /_matrix/media/v3/preview_url` (ruma `authenticated_media::get_media_preview`,
//! `media::get_media_preview`): a URL's OpenGraph data, when the homeserver previews URLs.

// The deprecated endpoints are still part of the spec, and served as it describes them.
#![allow(deprecated)]

use ruma::api::client::authenticated_media::get_media_preview as authed_get_media_preview;
use ruma::api::client::media::get_media_preview;
use serde_json::value::to_raw_value;

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router =
        route::<authed_get_media_preview::v1::Request, _, _>(router, get_media_preview_authed);
    route::<get_media_preview::v3::Request, _, _>(router, get_media_preview)
}

async fn preview(
    tenant: &maas_core::Tenant,
    user: &maas_core::accounts::AuthedUser,
    url: &str,
) -> Result<Box<serde_json::value::RawValue>> {
    let og = tenant.media().preview_url(user, url).await?;
    to_raw_value(&og).map_err(|e| HttpError::internal(format!("a preview as JSON: {e}")))
}

/// `GET /_matrix/client/v1/media/preview_url`
async fn get_media_preview_authed(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<authed_get_media_preview::v1::Request>,
) -> Result<RumaResponse<authed_get_media_preview::v1::Response>> {
    let data = preview(&tenant, &user, &req.url).await?;
    Ok(authed_get_media_preview::v1::Response::from_raw_value(data).into())
}

/// `GET /_matrix/media/v3/preview_url` (deprecated)
async fn get_media_preview(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_media_preview::v3::Request>,
) -> Result<RumaResponse<get_media_preview::v3::Response>> {
    let data = preview(&tenant, &user, &req.url).await?;
    Ok(get_media_preview::v3::Response::from_raw_value(data).into())
}
