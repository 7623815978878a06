//! The tenant's users as its admins see them (Synapse: "User Admin API";
//! `synapse_admin_api::users`).

use maas_core::Error;
use synapse_admin_api::users::is_user_admin;

use super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<is_user_admin::v1::Request, _, _>(router, is_user_admin)
}

/// `GET /_synapse/admin/v1/users/{userId}/admin`
async fn is_user_admin(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Ruma(req): Ruma<is_user_admin::v1::Request>,
) -> Result<RumaResponse<is_user_admin::v1::Response>> {
    if req.user_id.server_name() != tenant.server_name() {
        let message = "Only local users can be admins of this homeserver";
        return Err(Error::Unknown(message.into()).into());
    }
    let admin = match tenant.accounts().user(req.user_id.localpart()).await {
        Ok(account) => account.admin,
        // Synapse answers `false` for a user it does not know, rather than 404.
        Err(Error::NotFound(_)) => false,
        Err(e) => return Err(HttpError::from(e)),
    };
    Ok(is_user_admin::v1::Response::new(admin).into())
}
