//! `GET /_matrix/client/v1/media/config` and the deprecated `GET /_matrix/media/v3/config`
//! (ruma `authenticated_media::get_media_config`, `media::get_media_config`): the largest
//! upload the tenant accepts.

// The deprecated endpoints are still part of the spec, and served as it describes them.
#![allow(deprecated)]

use ruma::UInt;
use ruma::api::client::authenticated_media::get_media_config as authed_get_media_config;
use ruma::api::client::media::get_media_config;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router =
        route::<authed_get_media_config::v1::Request, _, _>(router, get_media_config_authed);
    route::<get_media_config::v3::Request, _, _>(router, get_media_config)
}

fn upload_size(tenant: &maas_core::Tenant) -> UInt {
    UInt::try_from(tenant.media().max_upload_bytes()).unwrap_or(UInt::MAX)
}

/// `GET /_matrix/client/v1/media/config`
async fn get_media_config_authed(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(_req): Ruma<authed_get_media_config::v1::Request>,
) -> Result<RumaResponse<authed_get_media_config::v1::Response>> {
    Ok(authed_get_media_config::v1::Response::new(upload_size(&tenant)).into())
}

/// `GET /_matrix/media/v3/config` (deprecated)
async fn get_media_config(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(_req): Ruma<get_media_config::v3::Request>,
) -> Result<RumaResponse<get_media_config::v3::Response>> {
    Ok(get_media_config::v3::Response::new(upload_size(&tenant)).into())
}
