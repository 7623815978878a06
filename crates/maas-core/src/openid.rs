//! OpenID tokens (spec: Client-Server API, "OpenID"; Server-Server API, "OpenID"): a user asks
//! for a short-lived token proving who they are to a third party (an integration manager),
//! which hands it to our `openid/userinfo` to learn the user id. Tokens live an hour, in
//! memory and as digests only: a restart asks users for new ones, as expiry would.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use ruma::{OwnedUserId, UserId};

use crate::accounts::AuthedUser;
use crate::secrets::{new_access_token, token_hash};
use crate::{Error, Result, Tenant, now_ms};

/// How long a token proves its user.
pub const OPENID_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A token just issued, for its user to hand over.
pub struct OpenIdToken {
    pub access_token: String,
    pub expires_in: Duration,
}

/// The tenant's live tokens, by digest.
#[derive(Default)]
pub struct OpenIdTokens {
    tokens: Mutex<HashMap<String, (OwnedUserId, i64)>>,
}

impl Tenant {
    /// `POST /user/{userId}/openid/request_token`: only for oneself.
    pub fn request_openid_token(&self, user: &AuthedUser, target: &UserId) -> Result<OpenIdToken> {
        if user.user_id != target {
            return Err(Error::Forbidden(
                "You can only ask for a token of your own".into(),
            ));
        }
        let token = new_access_token();
        let lifetime = i64::try_from(OPENID_TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut tokens = self.openid_tokens().tokens.lock();
        tokens.retain(|_, (_, expires)| *expires > now);
        tokens.insert(
            token_hash(&token),
            (user.user_id.clone(), now.saturating_add(lifetime)),
        );
        Ok(OpenIdToken {
            access_token: token,
            expires_in: OPENID_TOKEN_LIFETIME,
        })
    }

    /// `GET /_matrix/federation/v1/openid/userinfo`: the user a live token was issued to;
    /// `M_UNKNOWN_TOKEN` for any other token.
    pub fn openid_userinfo(&self, access_token: &str) -> Result<OwnedUserId> {
        let tokens = self.openid_tokens().tokens.lock();
        match tokens.get(&token_hash(access_token)) {
            Some((user, expires)) if *expires > now_ms() => Ok(user.clone()),
            _ => Err(Error::UnknownToken),
        }
    }
}
