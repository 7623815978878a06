//! Profiles (spec: Client-Server API, "Profiles"): display names and avatars of local users.
//! Other servers' users' profiles are asked of their servers (`federation::query`).

use ruma::{OwnedMxcUri, UserId};

use super::{Accounts, AuthedUser, MAX_DISPLAY_NAME_LEN};
use crate::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<OwnedMxcUri>,
}

impl Accounts<'_> {
    /// The profile of a user: a local one from the store (`M_NOT_FOUND` for unknown or
    /// deactivated users), another server's by asking that server.
    pub async fn profile(&self, user_id: &UserId) -> Result<Profile> {
        if user_id.server_name() != self.tenant.server_name() {
            return crate::federation::query::remote_profile(self.tenant, user_id).await;
        }
        self.local_profile(user_id).await
    }

    /// The profile of a user of this tenant.
    pub(crate) async fn local_profile(&self, user_id: &UserId) -> Result<Profile> {
        let not_found = || Error::NotFound("Profile was not found".into());
        if user_id.server_name() != self.tenant.server_name() {
            return Err(not_found());
        }
        let record = self
            .tenant
            .store()
            .user(user_id.localpart())
            .await?
            .ok_or_else(not_found)?;
        if record.deactivated {
            return Err(not_found());
        }
        Ok(Profile {
            displayname: record.displayname,
            avatar_url: record.avatar_url.map(Into::into),
        })
    }

    /// Whether `user` may change `target`'s profile: their own (or any local one as an admin),
    /// unless an admin suspended them.
    async fn ensure_profile_change(&self, user: &AuthedUser, target: &UserId) -> Result<()> {
        self.ensure_own_profile(user, target)?;
        self.ensure_not_suspended(
            &user.user_id,
            "Updating profile while account is suspended is not allowed.",
        )
        .await
    }

    /// Sends the new profile to the user's rooms, unless the user is shadow-banned: their
    /// rooms see nothing of it, as in Synapse.
    pub(super) async fn propagate_profile(&self, target: &UserId) -> Result<()> {
        if self.is_shadow_banned(target).await? {
            return Ok(());
        }
        self.tenant.rooms().propagate_profile(target).await
    }

    fn ensure_own_profile(&self, user: &AuthedUser, target: &UserId) -> Result<()> {
        if user.user_id != target && !user.admin {
            return Err(Error::Forbidden(
                "You may only change your own profile".into(),
            ));
        }
        if target.server_name() != self.tenant.server_name() {
            return Err(Error::Forbidden(
                "You can't change the profile of a remote user".into(),
            ));
        }
        Ok(())
    }

    /// `PUT /profile/{userId}/displayname`; an empty or absent name clears it.
    pub async fn set_displayname(
        &self,
        user: &AuthedUser,
        target: &UserId,
        name: Option<&str>,
    ) -> Result<()> {
        self.ensure_profile_change(user, target).await?;
        if name.is_some_and(|n| n.len() > MAX_DISPLAY_NAME_LEN) {
            return Err(Error::InvalidParam(format!(
                "Display name is longer than {MAX_DISPLAY_NAME_LEN} bytes"
            )));
        }
        self.profile(target).await?;
        let name = name.filter(|n| !n.is_empty());
        self.tenant
            .store()
            .set_displayname(target.localpart(), name)
            .await?;
        self.propagate_profile(target).await
    }

    /// `PUT /profile/{userId}/avatar_url`; must be an `mxc://` URI, or absent to clear.
    pub async fn set_avatar_url(
        &self,
        user: &AuthedUser,
        target: &UserId,
        url: Option<&str>,
    ) -> Result<()> {
        self.ensure_profile_change(user, target).await?;
        let url = url.filter(|u| !u.is_empty());
        if let Some(url) = url {
            let mxc = <&ruma::MxcUri>::from(url);
            if !mxc.is_valid() {
                return Err(Error::InvalidParam(
                    "avatar_url must be an mxc:// URI".into(),
                ));
            }
        }
        self.profile(target).await?;
        self.tenant
            .store()
            .set_avatar_url(target.localpart(), url)
            .await?;
        self.propagate_profile(target).await
    }
}

/// One hit of the user directory.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub user_id: ruma::OwnedUserId,
    pub displayname: Option<String>,
    pub avatar_url: Option<OwnedMxcUri>,
}

impl Accounts<'_> {
    /// `POST /user_directory/search`. A tenant is one organisation, so its members find each
    /// other whether or not they share a room (Synapse's `search_all_users`).
    pub async fn search_users(
        &self,
        _searcher: &AuthedUser,
        term: &str,
        limit: u32,
    ) -> Result<(Vec<DirectoryUser>, bool)> {
        let limit = limit.clamp(1, 1000);
        let mut users = self
            .tenant
            .store()
            .search_users(term.trim(), limit + 1)
            .await?;
        let limited = users.len() > limit as usize;
        users.truncate(limit as usize);
        let hits = users
            .into_iter()
            .map(|u| {
                Ok(DirectoryUser {
                    user_id: super::usernames::user_id(&u.localpart, self.tenant.server_name())?,
                    displayname: u.displayname,
                    avatar_url: u.avatar_url.map(Into::into),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((hits, limited))
    }
}
