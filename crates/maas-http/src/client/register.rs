//! Account registration (spec: "Account registration and management"; ruma `account`):
//! `POST /register` behind the tenant's registration policy, username availability,
//! registration token validity. Apart from `account`, which serves accounts that exist.

use maas_core::accounts::Registration;
use ruma::api::client::account::register::RegistrationKind;
use ruma::api::client::account::{
    check_registration_token_validity, get_username_availability, register,
};

use crate::context::ClientIp;
use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<register::v3::Request, _, _>(router, register);
    let router = route::<get_username_availability::v3::Request, _, _>(router, availability);
    route::<check_registration_token_validity::v1::Request, _, _>(router, token_validity)
}

/// `POST /_matrix/client/v3/register`
async fn register(
    ForTenant(tenant): ForTenant,
    ClientIp(ip): ClientIp,
    Ruma(req): Ruma<register::v3::Request>,
) -> Result<RumaResponse<register::v3::Response>> {
    let registration = Registration {
        username: req.username,
        password: req.password,
        device_id: req.device_id.map(|d| d.to_string()),
        initial_device_display_name: req.initial_device_display_name,
        inhibit_login: req.inhibit_login,
        guest: req.kind == RegistrationKind::Guest,
        auth: req.auth,
        ip,
    };
    let registered = tenant.accounts().register(registration).await?;
    let mut response = register::v3::Response::new(registered.user_id);
    if let Some(session) = registered.session {
        response.access_token = Some(session.access_token);
        response.device_id = Some(session.device_id);
    }
    Ok(response.into())
}

/// `GET /_matrix/client/v3/register/available`
async fn availability(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>> {
    tenant
        .accounts()
        .check_username_available(&req.username)
        .await?;
    Ok(get_username_availability::v3::Response::new(true).into())
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`
async fn token_validity(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>> {
    let valid = tenant.registration_tokens().is_valid(&req.token).await?;
    Ok(check_registration_token_validity::v1::Response::new(valid).into())
}
