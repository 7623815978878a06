//! The user directory (spec: "User directory"; ruma `user_directory`): searching the tenant's
//! users.

use ruma::api::client::user_directory::search_users;
use ruma::api::client::user_directory::search_users::v3::User;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<search_users::v3::Request, _, _>(router, search_users)
}

/// `POST /_matrix/client/v3/user_directory/search`
async fn search_users(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<search_users::v3::Request>,
) -> Result<RumaResponse<search_users::v3::Response>> {
    let limit = u32::try_from(req.limit).unwrap_or(u32::MAX);
    let (found, limited) = tenant
        .accounts()
        .search_users(&user, &req.search_term, limit)
        .await?;
    let results = found
        .into_iter()
        .map(|hit| {
            let mut result = User::new(hit.user_id);
            result.display_name = hit.displayname;
            result.avatar_url = hit.avatar_url;
            result
        })
        .collect();
    Ok(search_users::v3::Response::new(results, limited).into())
}
