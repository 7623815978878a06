//! Account data (spec: "Client Config"; ruma `config`, a name this crate avoids next to the
//! server's own config): a user's JSON objects by type, global or per room.

use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};

use super::convert::{raw_value, to_raw};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router =
        route::<get_global_account_data::v3::Request, _, _>(router, get_global_account_data);
    let router =
        route::<set_global_account_data::v3::Request, _, _>(router, set_global_account_data);
    let router = route::<get_room_account_data::v3::Request, _, _>(router, get_room_account_data);
    route::<set_room_account_data::v3::Request, _, _>(router, set_room_account_data)
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
