//! Who may call the admin API: a user of the tenant, by access token, whose account is an admin.
//! The operator's token is not one: the operator API and the tenant admin API are separate
//! privileges.

use axum::extract::FromRequestParts;
use http::request::Parts;
use maas_core::accounts::AuthedUser;

use crate::context::Authed;
use crate::error::HttpError;

/// A tenant admin is behind the request's access token: `401` without a valid token, `403
/// M_FORBIDDEN` for a user who is not an admin. Carries the admin, for endpoints that record
/// who acted (media quarantine).
pub struct AdminUser(pub AuthedUser);

impl<S: Send + Sync> FromRequestParts<S> for AdminUser {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        let Authed(user) = Authed::from_request_parts(parts, state).await?;
        if !user.admin {
            return Err(HttpError::forbidden("You are not a server admin"));
        }
        Ok(AdminUser(user))
    }
}
