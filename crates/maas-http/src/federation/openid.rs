//! OpenID (spec: Server-Server API, "OpenID"; ruma `openid`): a third party holding a token
//! one of the tenant's users asked for learns who the user is. Not signed: integration
//! managers, not servers, call it.

use ruma::api::federation::openid::get_openid_userinfo;

use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_openid_userinfo::v1::Request, _, _>(router, userinfo)
}

/// `GET /_matrix/federation/v1/openid/userinfo`
async fn userinfo(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_openid_userinfo::v1::Request>,
) -> Result<RumaResponse<get_openid_userinfo::v1::Response>> {
    let user_id = tenant.openid_userinfo(&req.access_token)?;
    Ok(get_openid_userinfo::v1::Response::new(user_id).into())
}
