//! `POST /_matrix/media/v1/create` (ruma `media::create_mxc_uri`, MSC2246): a media id whose
//! bytes come later.

use ruma::MilliSecondsSinceUnixEpoch;
use ruma::api::client::media::create_mxc_uri;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<create_mxc_uri::v1::Request, _, _>(router, create_mxc_uri)
}

/// `POST /_matrix/media/v1/create`
async fn create_mxc_uri(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(_req): Ruma<create_mxc_uri::v1::Request>,
) -> Result<RumaResponse<create_mxc_uri::v1::Response>> {
    let (uri, expires_ts) = tenant.media().create(&user).await?;
    let mut response = create_mxc_uri::v1::Response::new(uri);
    response.unused_expires_at = u64::try_from(expires_ts)
        .ok()
        .and_then(|ms| ruma::UInt::try_from(ms).ok())
        .map(MilliSecondsSinceUnixEpoch);
    Ok(response.into())
}
