//! What a tenant's admins do to any user of theirs (Synapse's "User Admin API"): the user list,
//! creating and changing accounts, deactivation and erasure, suspension, shadow-bans, locks,
//! third-party and external ids, rate limit overrides, and acting as a user.

use super::{Account, Accounts, AuthedUser, Threepid, passwords, usernames};
use crate::store::{
    AccountStatesChange, ExternalIdRecord, PuppetTokenRecord, StoreError, ThreepidRecord,
    UserRecord,
};
use crate::{Error, Result, now_ms, secrets};

/// The admin's user list: a filtered, ordered page by offset (Synapse's `get_users_paginate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserListQuery {
    /// Offset into the ordered list.
    pub from: u64,
    pub limit: u64,
    /// Users whose full user id contains this (ignored when `name` is given).
    pub user_id: Option<String>,
    /// Users whose localpart or display name contains this, case-insensitively.
    pub name: Option<String>,
    /// Whether guests are listed.
    pub guests: bool,
    /// `Some(true)`: only deactivated users; `Some(false)`: none; `None`: both.
    pub deactivated: Option<bool>,
    /// Whether locked users are listed.
    pub locked: bool,
    /// `Some(true)`: only admins; `Some(false)`: no admins; `None`: both.
    pub admins: Option<bool>,
    /// User types left out; `""` stands for users without a type.
    pub not_user_types: Vec<String>,
    pub order_by: UserOrder,
    pub descending: bool,
}

/// What the user list is ordered by; ties always by ascending user id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserOrder {
    #[default]
    Name,
    Displayname,
    Guest,
    Admin,
    Deactivated,
    UserType,
    AvatarUrl,
    ShadowBanned,
    CreationTs,
    LastSeenTs,
    Locked,
}

/// A user in the admin's list: the account and when one of its devices was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser {
    pub account: Account,
    pub last_seen_ts: Option<i64>,
}

/// Everything the admin API shows of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub account: Account,
    pub threepids: Vec<Threepid>,
    pub external_ids: Vec<ExternalId>,
    pub last_seen_ts: Option<i64>,
}

/// A user's identity at an external provider (SSO, LDAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId {
    pub auth_provider: String,
    pub external_id: String,
}

/// A user's own message rate, as an admin sets it; `messages_per_second` 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitOverride {
    pub messages_per_second: u64,
    pub burst_count: u64,
}

/// An admin's creation or change of an account (`PUT /_synapse/admin/v2/users/{userId}`):
/// `None` leaves a field as it is (on creation: unset).
#[derive(Debug, Clone, Default)]
pub struct UserUpsert {
    pub password: Option<String>,
    /// Whether a new password ends the user's sessions.
    pub logout_devices: bool,
    /// `Some(None)`: given, but not as a string (a change refuses it, a creation ignores it).
    pub displayname: Option<Option<String>>,
    /// As `displayname`.
    pub avatar_url: Option<Option<String>>,
    /// `(medium, address)`: all of the user's third-party ids.
    pub threepids: Option<Vec<(String, String)>>,
    pub external_ids: Option<Vec<ExternalId>>,
    pub admin: Option<bool>,
    pub deactivated: Option<bool>,
    pub locked: Option<bool>,
    /// `Some(None)` clears the type.
    pub user_type: Option<Option<String>>,
}

/// The user types Synapse knows besides ordinary users (`null`); maas configures no others.
const USER_TYPES: [&str; 2] = ["bot", "support"];
/// Synapse's bounds on what an admin writes into a profile.
const MAX_DISPLAYNAME_LEN: usize = 256;
const MAX_AVATAR_URL_LEN: usize = 1000;

impl From<ExternalIdRecord> for ExternalId {
    fn from(record: ExternalIdRecord) -> Self {
        Self {
            auth_provider: record.auth_provider,
            external_id: record.external_id,
        }
    }
}

/// Checks what a change asks for before anything is written, so that a bad request changes
/// nothing.
fn check_upsert(change: &UserUpsert) -> Result<()> {
    if let Some(password) = change.password.as_deref() {
        passwords::check_new_password(password)?;
    }
    if let Some(Some(user_type)) = &change.user_type
        && !USER_TYPES.contains(&user_type.as_str())
    {
        return Err(Error::Unknown("Invalid user type".into()));
    }
    if let Some(Some(name)) = &change.displayname
        && name.len() > MAX_DISPLAYNAME_LEN
    {
        return Err(Error::Unknown(format!(
            "Displayname is too long (max {MAX_DISPLAYNAME_LEN})"
        )));
    }
    if let Some(Some(url)) = &change.avatar_url {
        check_avatar_url(url)?;
    }
    if let Some(threepids) = &change.threepids {
        for (medium, address) in threepids {
            canonical_threepid(medium, address)?;
        }
    }
    Ok(())
}

/// An avatar an admin sets: an `mxc://` URI (maas's rule for every profile) or `""` to clear.
fn check_avatar_url(url: &str) -> Result<()> {
    if url.len() > MAX_AVATAR_URL_LEN {
        return Err(Error::Unknown(format!(
            "Avatar URL is too long (max {MAX_AVATAR_URL_LEN})"
        )));
    }
    if !url.is_empty() && !<&ruma::MxcUri>::from(url).is_valid() {
        return Err(Error::InvalidParam(
            "avatar_url must be an mxc:// URI".into(),
        ));
    }
    Ok(())
}

/// A third-party id as Synapse stores it: `email` or `msisdn`, an email address with its
/// local part case-folded and its domain lower-cased.
fn canonical_threepid(medium: &str, address: &str) -> Result<(String, String)> {
    match medium {
        "msisdn" => Ok((medium.to_owned(), address.to_owned())),
        "email" => {
            let trimmed = address.trim();
            let Some((local, domain)) = trimmed.split_once('@').filter(|(_, d)| !d.contains('@'))
            else {
                return Err(Error::Unknown("Unable to parse email address".into()));
            };
            let address = format!("{}@{}", local.to_lowercase(), domain.to_lowercase());
            Ok((medium.to_owned(), address))
        }
        other => Err(Error::InvalidParam(format!(
            "'{other}' is not a valid value for 'medium'"
        ))),
    }
}

/// A profile field as an admin sets it: `""` clears it.
fn non_empty(value: &str) -> Option<&str> {
    Some(value).filter(|v| !v.is_empty())
}

impl Accounts<'_> {
    /// `GET /_synapse/admin/v2/users` and `/v3/users`: one page and how many users match.
    pub async fn list_users(&self, query: &UserListQuery) -> Result<(Vec<ListedUser>, u64)> {
        let (users, total) = self
            .tenant
            .store()
            .users_page(self.tenant.server_name().as_str(), query)
            .await?;
        let users = users
            .into_iter()
            .map(|listed| ListedUser {
                account: listed.user.into(),
                last_seen_ts: listed.last_seen_ts,
            })
            .collect();
        Ok((users, total))
    }

    /// `GET /_synapse/admin/v2/users/{userId}`: `None` for a user the tenant doesn't have.
    pub async fn user_details(&self, localpart: &str) -> Result<Option<UserDetails>> {
        let store = self.tenant.store();
        let Some(user) = store.user(localpart).await? else {
            return Ok(None);
        };
        let threepids = store.threepids(localpart).await?;
        let external_ids = store.external_ids(localpart).await?;
        Ok(Some(UserDetails {
            account: user.into(),
            threepids: threepids.into_iter().map(Threepid::from).collect(),
            external_ids: external_ids.into_iter().map(ExternalId::from).collect(),
            last_seen_ts: store.last_seen_ts(localpart).await?,
        }))
    }

    /// The user's account, or `404 M_NOT_FOUND` with Synapse's `message` for this endpoint.
    pub async fn existing_user(&self, localpart: &str, message: &str) -> Result<Account> {
        self.tenant
            .store()
            .user(localpart)
            .await?
            .map(Account::from)
            .ok_or_else(|| Error::NotFound(message.to_owned()))
    }

    /// `PUT /_synapse/admin/v2/users/{userId}`: creates the user (`true`) or changes it.
    pub async fn upsert_user(
        &self,
        admin: &AuthedUser,
        localpart: &str,
        change: UserUpsert,
    ) -> Result<(bool, UserDetails)> {
        check_upsert(&change)?;
        let created = match self.tenant.store().user(localpart).await? {
            Some(user) => {
                self.change_user(admin, user.into(), &change).await?;
                false
            }
            None => {
                self.create_user_as_admin(localpart, &change).await?;
                true
            }
        };
        let details = self.user_details(localpart).await?;
        let details = details.ok_or_else(|| Error::NotFound("User not found".into()))?;
        Ok((created, details))
    }

    async fn create_user_as_admin(&self, localpart: &str, change: &UserUpsert) -> Result<()> {
        // A user id given in full is taken as it is: one that lower-casing would change is
        // refused, not silently turned into another user.
        let valid = usernames::validate(localpart, self.tenant.server_name())?;
        if valid != localpart {
            return Err(Error::InvalidUsername(
                "User ID can only contain characters a-z, 0-9, or '=_-./+'".into(),
            ));
        }
        let password_hash = match change.password.as_deref() {
            Some(password) => Some(self.tenant.hash_password(password).await?),
            None => None,
        };
        let user = UserRecord {
            localpart: localpart.to_owned(),
            password_hash,
            admin: change.admin.unwrap_or(false),
            // Synapse names a new user after its localpart unless told otherwise.
            displayname: match &change.displayname {
                Some(Some(name)) => non_empty(name.trim()).map(str::to_owned),
                _ => Some(localpart.to_owned()),
            },
            created_ts: now_ms(),
            user_type: change.user_type.clone().flatten(),
            ..UserRecord::default()
        };
        // External ids are checked first: taken ones leave no half-made user behind.
        if let Some(ids) = &change.external_ids {
            self.ensure_external_ids_free(localpart, ids).await?;
        }
        self.insert_user(user).await?;
        let store = self.tenant.store();
        if let Some(threepids) = &change.threepids {
            store
                .replace_threepids(localpart, &threepid_records(threepids)?)
                .await?;
        }
        if let Some(ids) = &change.external_ids {
            self.replace_external_ids(localpart, ids).await?;
        }
        if let Some(Some(url)) = &change.avatar_url {
            store.set_avatar_url(localpart, non_empty(url)).await?;
        }
        tracing::info!(%localpart, "user created by an admin");
        Ok(())
    }

    /// Applies an admin's change to an existing account, in Synapse's order; what can be
    /// refused is checked before anything is written.
    async fn change_user(
        &self,
        admin: &AuthedUser,
        user: Account,
        change: &UserUpsert,
    ) -> Result<()> {
        let localpart = user.localpart.as_str();
        let user_id = self.user_id(localpart)?;
        let is_self = admin.localpart == localpart;
        if is_self && change.admin == Some(false) && user.admin {
            return Err(Error::Unknown("You may not demote yourself.".into()));
        }
        if change.deactivated == Some(true) && change.locked == Some(true) {
            return Err(Error::Unknown(
                "An user can't be deactivated and locked".into(),
            ));
        }
        if change.displayname == Some(None) {
            return Err(Error::InvalidParam("'displayname' must be a string".into()));
        }
        if change.avatar_url == Some(None) {
            return Err(Error::InvalidParam("'avatar_url' must be a string".into()));
        }
        if let Some(ids) = &change.external_ids {
            self.ensure_external_ids_free(localpart, ids).await?;
        }
        let store = self.tenant.store();
        let mut profile_changed = false;
        if let Some(Some(name)) = &change.displayname {
            store
                .set_displayname(localpart, non_empty(name.trim()))
                .await?;
            profile_changed = true;
        }
        if let Some(threepids) = &change.threepids {
            store
                .replace_threepids(localpart, &threepid_records(threepids)?)
                .await?;
        }
        if let Some(ids) = &change.external_ids {
            self.replace_external_ids(localpart, ids).await?;
        }
        if let Some(Some(url)) = &change.avatar_url {
            store.set_avatar_url(localpart, non_empty(url)).await?;
            profile_changed = true;
        }
        // Rooms see the new profile unless the account is gone from them.
        if profile_changed && !user.deactivated && change.deactivated != Some(true) {
            self.propagate_profile(&user_id).await?;
        }
        if let Some(admin_flag) = change.admin.filter(|a| *a != user.admin) {
            store.set_admin(localpart, admin_flag).await?;
            self.tenant.sessions().invalidate();
        }
        if let Some(password) = change.password.as_deref() {
            let keep = is_self.then_some(admin.device_id.as_str());
            self.set_password_by_admin(localpart, password, change.logout_devices, keep)
                .await?;
        }
        match change.deactivated {
            Some(true) if !user.deactivated => self.deactivate_by_admin(localpart, false).await?,
            Some(false) if user.deactivated => self.reactivate(localpart).await?,
            _ => {}
        }
        let states = AccountStatesChange {
            locked: change.locked.filter(|l| *l != user.locked),
            user_type: change.user_type.clone(),
            ..AccountStatesChange::default()
        };
        if states != AccountStatesChange::default() {
            store.update_account_states(localpart, &states).await?;
            // A lock ends the sessions the cache still holds.
            self.tenant.sessions().invalidate();
        }
        tracing::info!(%localpart, "user changed by an admin");
        Ok(())
    }

    /// `Conflict` (`409` at the edge) when another user has one of `ids`.
    async fn ensure_external_ids_free(&self, localpart: &str, ids: &[ExternalId]) -> Result<()> {
        let store = self.tenant.store();
        for id in ids {
            let owner = store
                .user_by_external_id(&id.auth_provider, &id.external_id)
                .await?;
            if owner.is_some_and(|owner| owner != localpart) {
                return Err(Error::Conflict("External id is already in use.".into()));
            }
        }
        Ok(())
    }

    async fn replace_external_ids(&self, localpart: &str, ids: &[ExternalId]) -> Result<()> {
        let records: Vec<ExternalIdRecord> = ids
            .iter()
            .map(|id| ExternalIdRecord {
                auth_provider: id.auth_provider.clone(),
                external_id: id.external_id.clone(),
            })
            .collect();
        match self
            .tenant
            .store()
            .replace_external_ids(localpart, &records)
            .await
        {
            Err(StoreError::Conflict(_)) => {
                Err(Error::Conflict("External id is already in use.".into()))
            }
            other => Ok(other?),
        }
    }

    /// Sets a password an admin chose; `logout_devices` ends the user's sessions but `keep`
    /// (the admin's own, when they change their own password).
    async fn set_password_by_admin(
        &self,
        localpart: &str,
        password: &str,
        logout_devices: bool,
        keep: Option<&str>,
    ) -> Result<()> {
        passwords::check_new_password(password)?;
        let hash = self.tenant.hash_password(password).await?;
        let store = self.tenant.store();
        store.set_password_hash(localpart, Some(&hash)).await?;
        if logout_devices {
            store.delete_devices_except(localpart, keep).await?;
            self.devices_changed(localpart).await?;
        }
        Ok(())
    }

    /// `POST /_synapse/admin/v1/reset_password/{userId}`.
    pub async fn reset_password_by_admin(
        &self,
        admin: &AuthedUser,
        localpart: &str,
        password: &str,
        logout_devices: bool,
    ) -> Result<()> {
        self.existing_user(localpart, "Unknown user").await?;
        let keep = (admin.localpart == localpart).then_some(admin.device_id.as_str());
        self.set_password_by_admin(localpart, password, logout_devices, keep)
            .await
    }

    /// `POST /_synapse/admin/v1/deactivate/{userId}`: the account loses its password,
    /// devices, tokens, third-party ids and profile and leaves its rooms; `erase` marks it
    /// erased as well.
    pub async fn deactivate_by_admin(&self, localpart: &str, erase: bool) -> Result<()> {
        let store = self.tenant.store();
        store.deactivate_user(localpart).await?;
        if erase {
            let change = AccountStatesChange {
                erased: Some(true),
                ..AccountStatesChange::default()
            };
            store.update_account_states(localpart, &change).await?;
        }
        self.devices_changed(localpart).await?;
        self.tenant.moderation().invalidate();
        self.leave_all_rooms(localpart).await?;
        tracing::info!(%localpart, erase, "user deactivated by an admin");
        Ok(())
    }

    /// Leaves every room the user is in, invited to or knocking on; a room that refuses is
    /// logged and left alone.
    async fn leave_all_rooms(&self, localpart: &str) -> Result<()> {
        let user_id = self.user_id(localpart)?;
        let memberships = self
            .tenant
            .store()
            .memberships_of_user(user_id.as_str())
            .await?;
        let rooms = self.tenant.rooms();
        for membership in memberships
            .iter()
            .filter(|m| matches!(m.membership.as_str(), "join" | "invite" | "knock"))
        {
            let Ok(room_id) = ruma::RoomId::parse(&membership.room_id) else {
                continue;
            };
            if let Err(e) = rooms.leave(&user_id, &room_id, None).await {
                tracing::warn!(%room_id, error = %e, "a deactivated user could not leave a room");
            }
        }
        Ok(())
    }

    /// Undoes a deactivation, as Synapse's: not erased any more, no rooms rejoined, and a
    /// password needed to log in again.
    async fn reactivate(&self, localpart: &str) -> Result<()> {
        self.tenant.store().reactivate_user(localpart).await?;
        self.tenant.moderation().invalidate();
        tracing::info!(%localpart, "user reactivated by an admin");
        Ok(())
    }

    /// `PUT /_synapse/admin/v1/users/{userId}/admin`. An admin can't demote themselves.
    pub async fn set_admin_by_admin(
        &self,
        admin: &AuthedUser,
        localpart: &str,
        set_to: bool,
    ) -> Result<()> {
        if admin.localpart == localpart && !set_to {
            return Err(Error::Unknown("You may not demote yourself.".into()));
        }
        self.tenant.store().set_admin(localpart, set_to).await?;
        self.tenant.sessions().invalidate();
        Ok(())
    }

    /// Sets what an admin controls of an account (suspension, shadow-ban, lock); the caches
    /// that hold it forget it.
    pub async fn set_account_states(&self, localpart: &str, change: AccountStates) -> Result<()> {
        let change = AccountStatesChange {
            locked: change.locked,
            suspended: change.suspended,
            shadow_banned: change.shadow_banned,
            ..AccountStatesChange::default()
        };
        self.tenant
            .store()
            .update_account_states(localpart, &change)
            .await?;
        self.tenant.moderation().invalidate();
        self.tenant.sessions().invalidate();
        Ok(())
    }

    /// `POST /_synapse/admin/v1/users/{userId}/login`: a token to act as the user, with no
    /// device of theirs (the user doesn't see it), ending at `valid_until_ms` if given.
    pub async fn login_as(
        &self,
        admin: &AuthedUser,
        localpart: &str,
        valid_until_ms: Option<i64>,
    ) -> Result<String> {
        let access_token = secrets::new_access_token();
        let record = PuppetTokenRecord {
            token_hash: secrets::token_hash(&access_token),
            localpart: localpart.to_owned(),
            device_id: secrets::new_device_id(),
            admin: admin.localpart.clone(),
            valid_until_ms,
            created_ts: now_ms(),
        };
        self.tenant.store().insert_puppet_token(&record).await?;
        tracing::info!(%localpart, admin = %admin.localpart, "an admin logged in as a user");
        Ok(access_token)
    }

    /// The session of a token an admin took to act as a user; `M_UNKNOWN_TOKEN` once it ended.
    pub(super) async fn puppet_session(&self, token_hash: &str) -> Result<PuppetTokenRecord> {
        let token = self.tenant.store().puppet_token(token_hash).await?;
        let token = token.ok_or(Error::UnknownToken)?;
        if token.valid_until_ms.is_some_and(|until| until <= now_ms()) {
            return Err(Error::UnknownToken);
        }
        Ok(token)
    }
}

/// What `set_account_states` changes; `None` leaves a state as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountStates {
    pub locked: Option<bool>,
    pub suspended: Option<bool>,
    pub shadow_banned: Option<bool>,
}

/// The records of `(medium, address)` pairs, canonical, added now.
fn threepid_records(threepids: &[(String, String)]) -> Result<Vec<ThreepidRecord>> {
    let now = now_ms();
    threepids
        .iter()
        .map(|(medium, address)| {
            let (medium, address) = canonical_threepid(medium, address)?;
            Ok(ThreepidRecord {
                medium,
                address,
                validated_ts: now,
                added_ts: now,
            })
        })
        .collect()
}
