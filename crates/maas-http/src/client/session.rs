//! Login and logout (spec: "Login", "Logout"; ruma `session`): password login on `m.id.user`,
//! sessions bound to devices.

use ruma::api::client::session::get_login_types::v3::{
    self as get_login_types, LoginType, PasswordLoginType,
};
use ruma::api::client::session::{login, logout, logout_all};

use serde_json::{Map, Value};

use crate::context::{Authed, ClientIp, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{BodyFix, Ruma, RumaResponse, RumaWith};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_login_types::Request, _, _>(router, get_login_types);
    let router = route::<login::v3::Request, _, _>(router, login);
    let router = route::<logout::v3::Request, _, _>(router, logout);
    route::<logout_all::v3::Request, _, _>(router, logout_all)
}

/// `GET /_matrix/client/v3/login`
async fn get_login_types(
    _: Ruma<get_login_types::Request>,
) -> RumaResponse<get_login_types::Response> {
    get_login_types::Response::new(vec![LoginType::Password(PasswordLoginType::new())]).into()
}

/// A login body must name its `type`. ruma 0.16's `LoginInfo` reads it as `data["type"]`, which
/// panics when the field is absent (a `type` of the wrong JSON type it refuses by itself).
struct LoginTypeRequired;

impl BodyFix for LoginTypeRequired {
    fn fix(body: &mut Map<String, Value>) -> Result<()> {
        if body.contains_key("type") {
            Ok(())
        } else {
            Err(HttpError::bad_json("missing field `type`"))
        }
    }
}

/// `POST /_matrix/client/v3/login`
async fn login(
    ForTenant(tenant): ForTenant,
    ClientIp(ip): ClientIp,
    RumaWith(req, _): RumaWith<login::v3::Request, LoginTypeRequired>,
) -> Result<RumaResponse<login::v3::Response>> {
    let session = tenant
        .accounts()
        .login(
            &req.login_info,
            req.device_id.as_deref().map(|d| d.as_str()),
            req.initial_device_display_name.as_deref(),
            &ip,
        )
        .await?;
    Ok(login::v3::Response::new(session.user_id, session.access_token, session.device_id).into())
}

/// `POST /_matrix/client/v3/logout`
async fn logout(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>> {
    tenant.accounts().logout(&user).await?;
    Ok(logout::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/logout/all`
async fn logout_all(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>> {
    tenant.accounts().logout_all(&user).await?;
    Ok(logout_all::v3::Response::new().into())
}
