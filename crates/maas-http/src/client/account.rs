//! Account management (spec: "Account registration and management", "OpenID"; ruma
//! `account`): who the user is (`whoami`), password change, deactivation and third-party
//! identifiers, behind user-interactive auth, and OpenID tokens for third parties. Creating an
//! account is `register`'s.

use ruma::MilliSecondsSinceUnixEpoch;
use ruma::api::client::account::{
    ThirdPartyIdRemovalStatus, change_password, deactivate, get_3pids, request_openid_token, whoami,
};
use ruma::authentication::TokenType;
use ruma::thirdparty::{Medium, ThirdPartyIdentifier, ThirdPartyIdentifierInit};
use ruma::{UInt, uint};

use crate::context::{Authed, ForTenant, MaybeAuthed};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<change_password::v3::Request, _, _>(router, change_password);
    let router = route::<deactivate::v3::Request, _, _>(router, deactivate);
    let router = route::<get_3pids::v3::Request, _, _>(router, get_3pids);
    let router = route::<request_openid_token::v3::Request, _, _>(router, request_openid_token);
    route::<whoami::v3::Request, _, _>(router, whoami)
}

/// `POST /_matrix/client/v3/user/{userId}/openid/request_token`
async fn request_openid_token(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<request_openid_token::v3::Request>,
) -> Result<RumaResponse<request_openid_token::v3::Response>> {
    let token = tenant.request_openid_token(&user, &req.user_id)?;
    Ok(request_openid_token::v3::Response::new(
        token.access_token,
        TokenType::Bearer,
        tenant.server_name().to_owned(),
        token.expires_in,
    )
    .into())
}

/// `POST /_matrix/client/v3/account/password`
async fn change_password(
    ForTenant(tenant): ForTenant,
    MaybeAuthed(user): MaybeAuthed,
    Ruma(req): Ruma<change_password::v3::Request>,
) -> Result<RumaResponse<change_password::v3::Response>> {
    // Without a session a user could only prove who they are by email, which this server does
    // not offer; so the endpoint needs the access token.
    let user = user.ok_or_else(HttpError::missing_token)?;
    tenant
        .accounts()
        .change_password(
            &user,
            &req.new_password,
            req.logout_devices,
            req.auth.as_ref(),
        )
        .await?;
    Ok(change_password::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/account/deactivate`
async fn deactivate(
    ForTenant(tenant): ForTenant,
    MaybeAuthed(user): MaybeAuthed,
    Ruma(req): Ruma<deactivate::v3::Request>,
) -> Result<RumaResponse<deactivate::v3::Response>> {
    let user = user.ok_or_else(HttpError::missing_token)?;
    tenant
        .accounts()
        .deactivate(&user, req.auth.as_ref())
        .await?;
    Ok(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}

/// `GET /_matrix/client/v3/account/3pid`
async fn get_3pids(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    _: Ruma<get_3pids::v3::Request>,
) -> Result<RumaResponse<get_3pids::v3::Response>> {
    let threepids = tenant.accounts().threepids(&user).await?;
    let threepids = threepids
        .into_iter()
        .map(|t| {
            ThirdPartyIdentifier::from(ThirdPartyIdentifierInit {
                address: t.address,
                medium: Medium::from(t.medium.as_str()),
                validated_at: ms(t.validated_ts),
                added_at: ms(t.added_ts),
            })
        })
        .collect();
    Ok(get_3pids::v3::Response::new(threepids).into())
}

/// `GET /_matrix/client/v3/account/whoami`
async fn whoami(
    Authed(user): Authed,
    _: Ruma<whoami::v3::Request>,
) -> RumaResponse<whoami::v3::Response> {
    let mut response = whoami::v3::Response::new(user.user_id, user.guest);
    response.device_id = Some(user.device_id);
    response.into()
}

fn ms(ts: i64) -> MilliSecondsSinceUnixEpoch {
    MilliSecondsSinceUnixEpoch(UInt::try_from(ts).unwrap_or(uint!(0)))
}
