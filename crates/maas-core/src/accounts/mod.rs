//! Accounts of a tenant (spec: Client-Server API, "Account registration and management",
//! "Login", "Device management", "Profiles"): users, passwords, sessions and access tokens.

mod admin;
mod admin_views;
mod devices;
pub(crate) mod moderation;
pub mod passwords;
mod profile;
pub(crate) mod sessions;
pub mod usernames;

use ruma::api::client::session::login::v3::LoginInfo;
use ruma::api::client::uiaa::{AuthData, UserIdentifier};
use ruma::{OwnedDeviceId, OwnedUserId};

use crate::store::{AccessTokenRecord, DeviceRecord, StoreError, ThreepidRecord, UserRecord};
use crate::uia::{self, UiaFlows};
use crate::{Error, Result, Tenant, now_ms, secrets};
use sessions::CachedSession;

pub use admin::{
    AccountStates, ExternalId, ListedUser, RateLimitOverride, UserDetails, UserListQuery,
    UserOrder, UserUpsert,
};
pub use profile::{DirectoryUser, Profile};

/// The user behind a valid access token.
#[derive(Debug, Clone)]
pub struct AuthedUser {
    pub user_id: OwnedUserId,
    pub localpart: String,
    pub device_id: OwnedDeviceId,
    pub admin: bool,
    pub guest: bool,
}

/// A new login: what the client gets back.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub access_token: String,
}

/// A registration request, as the spec's `POST /register` carries it.
#[derive(Debug, Default)]
pub struct Registration {
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<String>,
    pub initial_device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub guest: bool,
    pub auth: Option<AuthData>,
    pub ip: String,
}

#[derive(Debug)]
pub struct Registered {
    pub user_id: OwnedUserId,
    /// `None` when the client asked for `inhibit_login`.
    pub session: Option<Session>,
}

/// A user account as the operator and admins see it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub localpart: String,
    pub admin: bool,
    pub guest: bool,
    pub deactivated: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub created_ts: i64,
    pub locked: bool,
    pub suspended: bool,
    pub shadow_banned: bool,
    pub erased: bool,
    pub user_type: Option<String>,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            localpart: user.localpart,
            admin: user.admin,
            guest: user.guest,
            deactivated: user.deactivated,
            displayname: user.displayname,
            avatar_url: user.avatar_url,
            created_ts: user.created_ts,
            locked: user.locked,
            suspended: user.suspended,
            shadow_banned: user.shadow_banned,
            erased: user.erased,
            user_type: user.user_type,
        }
    }
}

/// A device of a user (spec: "Device management"). Timestamps are milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
}

impl From<DeviceRecord> for Device {
    fn from(device: DeviceRecord) -> Self {
        Self {
            device_id: device.device_id.into(),
            display_name: device.display_name,
            last_seen_ip: device.last_seen_ip,
            last_seen_ts: device.last_seen_ts,
        }
    }
}

/// A third-party identifier bound to an account (spec: "Adding Account Administrative
/// Contact Information").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threepid {
    pub medium: String,
    pub address: String,
    pub validated_ts: i64,
    pub added_ts: i64,
}

impl From<ThreepidRecord> for Threepid {
    fn from(threepid: ThreepidRecord) -> Self {
        Self {
            medium: threepid.medium,
            address: threepid.address,
            validated_ts: threepid.validated_ts,
            added_ts: threepid.added_ts,
        }
    }
}

/// A user created by the operator, with the password when the server generated it.
#[derive(Debug)]
pub struct CreatedUser {
    pub account: Account,
    pub generated_password: Option<String>,
}

/// Longest device id and display name we store; the spec sets none, this bounds abuse.
const MAX_DEVICE_ID_LEN: usize = 255;
const MAX_DISPLAY_NAME_LEN: usize = 256;
/// A device's `last_seen` is written at most this often, not on every request.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// Whether the device's `last_seen` is worth a write: stale, or seen from another address.
fn needs_touch(last_seen_ts: i64, last_seen_ip: &str, ip: &str) -> bool {
    now_ms() - last_seen_ts > TOUCH_INTERVAL_MS || last_seen_ip != ip
}

pub struct Accounts<'a> {
    tenant: &'a Tenant,
}

impl<'a> Accounts<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    fn user_id(&self, localpart: &str) -> Result<OwnedUserId> {
        usernames::user_id(localpart, self.tenant.server_name())
    }

    fn rate_key(&self, action: &str, key: &str) -> String {
        format!("{}/{action}/{key}", self.tenant.id())
    }

    // ---- Registration -------------------------------------------------------------------

    /// `GET /register/available`: a valid, unused username.
    pub async fn check_username_available(&self, username: &str) -> Result<String> {
        let localpart = usernames::validate(username, self.tenant.server_name())?;
        if self.tenant.store().user(&localpart).await?.is_some() {
            return Err(Error::UserInUse);
        }
        Ok(localpart)
    }

    /// `POST /register`, with the tenant's registration policy as its UIA flows.
    pub async fn register(&self, reg: Registration) -> Result<Registered> {
        let limits = &self.tenant.config().rate_limits;
        self.tenant
            .limiter()
            .take(&self.rate_key("register", &reg.ip), limits.register_per_ip)?;
        if reg.guest {
            return self.register_guest(reg).await;
        }
        let settings = self.tenant.settings();
        let flows = match settings.registration {
            crate::store::RegistrationPolicy::Closed => {
                return Err(Error::Forbidden("Registration has been disabled".into()));
            }
            crate::store::RegistrationPolicy::Open => vec![vec![uia::DUMMY]],
            crate::store::RegistrationPolicy::Token => vec![vec![uia::REGISTRATION_TOKEN]],
        };
        // Checked before the dance so a client learns of a bad name or password at once.
        let localpart = match reg.username.as_deref() {
            Some(name) => Some(self.check_username_available(name).await?),
            None => None,
        };
        // The password may come only with the last step: clients first send an empty request
        // to learn the flows.
        if let Some(password) = reg.password.as_deref() {
            passwords::check_new_password(password)?;
        }
        self.ensure_user_quota().await?;

        let flows = UiaFlows {
            purpose: "register".into(),
            flows,
            params: serde_json::json!({}),
        };
        let completed = self
            .tenant
            .uia()
            .authenticate(&flows, reg.auth.as_ref(), None)
            .await?;
        let password = reg
            .password
            .as_deref()
            .ok_or_else(|| Error::MissingParam("Missing parameter: password".into()))?;
        if let Some(token) = completed.registration_token.as_deref()
            && !self
                .tenant
                .registration_tokens()
                .complete_use(token)
                .await?
        {
            return Err(Error::Forbidden(
                "The registration token is no longer valid".into(),
            ));
        }
        let localpart = match localpart {
            Some(l) => l,
            None => self.free_generated_localpart(false).await?,
        };
        let hash = self.tenant.hash_password(password).await?;
        self.insert_user(new_user(localpart.clone(), Some(hash), false))
            .await?;
        self.finish_registration(&localpart, &reg).await
    }

    async fn register_guest(&self, reg: Registration) -> Result<Registered> {
        if !self.tenant.settings().allow_guests {
            return Err(Error::GuestAccessForbidden);
        }
        self.ensure_user_quota().await?;
        let localpart = self.free_generated_localpart(true).await?;
        let mut user = new_user(localpart.clone(), None, false);
        user.guest = true;
        self.insert_user(user).await?;
        // Guests can't log in again, so a guest registration always returns a session.
        let reg = Registration {
            inhibit_login: false,
            ..reg
        };
        self.finish_registration(&localpart, &reg).await
    }

    async fn finish_registration(&self, localpart: &str, reg: &Registration) -> Result<Registered> {
        let user_id = self.user_id(localpart)?;
        if reg.inhibit_login {
            return Ok(Registered {
                user_id,
                session: None,
            });
        }
        let session = self
            .start_session(
                localpart,
                reg.device_id.as_deref(),
                reg.initial_device_display_name.as_deref(),
            )
            .await?;
        Ok(Registered {
            user_id,
            session: Some(session),
        })
    }

    async fn ensure_user_quota(&self) -> Result<()> {
        let Some(max) = self.tenant.settings().max_users else {
            return Ok(());
        };
        if self.tenant.store().count_users().await? >= max {
            return Err(self
                .tenant
                .resource_limit("This homeserver has reached its user limit"));
        }
        Ok(())
    }

    async fn insert_user(&self, user: UserRecord) -> Result<()> {
        let max_users = self.tenant.settings().max_users;
        match self.tenant.store().insert_user(&user, max_users).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self
                .tenant
                .resource_limit("This homeserver has reached its user limit")),
            Err(StoreError::Conflict(_)) => Err(Error::UserInUse),
            Err(e) => Err(e.into()),
        }
    }

    /// A random unused localpart: all digits for guests (reserved for them), letters otherwise.
    async fn free_generated_localpart(&self, guest: bool) -> Result<String> {
        for _ in 0..10 {
            let candidate = if guest {
                format!("{}", rand::random::<u64>() % 10_000_000_000)
            } else {
                format!("u{}", secrets::random_alphanumeric(10).to_lowercase())
            };
            if self.tenant.store().user(&candidate).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(Error::Internal("could not find a free user id".into()))
    }

    // ---- Login and sessions --------------------------------------------------------------

    /// `POST /login` with `m.login.password`.
    pub async fn login(
        &self,
        info: &LoginInfo,
        device_id: Option<&str>,
        initial_device_display_name: Option<&str>,
        ip: &str,
    ) -> Result<Session> {
        let LoginInfo::Password(password_login) = info else {
            return Err(Error::UnknownLoginType("Unsupported login type".into()));
        };
        // The legacy top-level `user` field is still sent by older clients.
        #[allow(deprecated)]
        let legacy_user = &password_login.user;
        let user = match (&password_login.identifier, legacy_user) {
            (Some(UserIdentifier::Matrix(id)), _) => id.user.clone(),
            (None, Some(user)) => user.clone(),
            (Some(_), _) => {
                return Err(Error::UnknownLoginType(
                    "Unsupported login identifier type".into(),
                ));
            }
            (None, None) => {
                return Err(Error::MissingParam("Missing parameter: identifier".into()));
            }
        };
        let limits = &self.tenant.config().rate_limits;
        let limiter = self.tenant.limiter();
        limiter.take(&self.rate_key("login-ip", ip), limits.login_per_ip)?;
        let invalid = || Error::Forbidden("Invalid username or password".into());
        let Some(localpart) = usernames::local_part_of(&user, self.tenant.server_name()) else {
            return Err(invalid());
        };
        let user_key = self.rate_key("login-user", &localpart);
        limiter.check(&user_key, limits.login_per_user)?;
        let record = self.tenant.store().user(&localpart).await?;
        let Some(record) = record else {
            limiter.take(&user_key, limits.login_per_user)?;
            return Err(invalid());
        };
        if record.deactivated {
            return Err(Error::UserDeactivated);
        }
        let verified = match record.password_hash.as_deref() {
            Some(hash) => {
                self.tenant
                    .verify_password(hash, &password_login.password)
                    .await?
            }
            None => false,
        };
        if !verified {
            limiter.take(&user_key, limits.login_per_user)?;
            return Err(invalid());
        }
        // Only once the password is right, so that a lock tells nothing to someone guessing.
        if record.locked {
            return Err(Error::UserLocked);
        }
        self.start_session(&localpart, device_id, initial_device_display_name)
            .await
    }

    /// Creates (or reuses) the device and gives it a fresh token, invalidating its old ones.
    async fn start_session(
        &self,
        localpart: &str,
        device_id: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Session> {
        let device_id = match device_id {
            Some(id) if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN => {
                return Err(Error::InvalidParam("Invalid device_id".into()));
            }
            Some(id) => id.to_owned(),
            None => secrets::new_device_id(),
        };
        if display_name.is_some_and(|n| n.len() > MAX_DISPLAY_NAME_LEN) {
            return Err(Error::InvalidParam(
                "Device display name is too long".into(),
            ));
        }
        let now = now_ms();
        let device = DeviceRecord {
            localpart: localpart.to_owned(),
            device_id: device_id.clone(),
            display_name: display_name.map(str::to_owned),
            last_seen_ts: Some(now),
            last_seen_ip: None,
            created_ts: now,
        };
        let access_token = secrets::new_access_token();
        let token = AccessTokenRecord {
            token_hash: secrets::token_hash(&access_token),
            localpart: localpart.to_owned(),
            device_id: device_id.clone(),
            created_ts: now,
        };
        self.tenant.store().start_session(&device, &token).await?;
        Ok(Session {
            user_id: self.user_id(localpart)?,
            device_id: device_id.into(),
            access_token,
        })
    }

    /// The user behind an access token; also records when and from where the device was seen.
    pub async fn authenticate(&self, access_token: &str, ip: &str) -> Result<AuthedUser> {
        let hash = secrets::token_hash(access_token);
        let cache = self.tenant.sessions();
        if let Some(session) = cache.get(&hash) {
            if needs_touch(session.last_seen_ts, &session.last_seen_ip, ip) {
                self.touch(&session.user, ip, &hash).await?;
            }
            return Ok(session.user);
        }
        let generation = cache.generation();
        let store = self.tenant.store();
        let (localpart, device_id, expires) = match store.access_token(&hash).await? {
            Some(token) => (token.localpart, token.device_id, false),
            None => {
                let puppet = self.puppet_session(&hash).await?;
                (
                    puppet.localpart,
                    puppet.device_id,
                    puppet.valid_until_ms.is_some(),
                )
            }
        };
        let Some(user) = store.user(&localpart).await? else {
            return Err(Error::UnknownToken);
        };
        if user.deactivated {
            return Err(Error::UnknownToken);
        }
        if user.locked {
            return Err(Error::UserLocked);
        }
        let device = store.device(&localpart, &device_id).await?;
        let authed = AuthedUser {
            user_id: self.user_id(&user.localpart)?,
            localpart: user.localpart,
            device_id: device_id.into(),
            admin: user.admin,
            guest: user.guest,
        };
        // The cache knows no expiry: a token that ends is looked up every time.
        if expires {
            return Ok(authed);
        }
        let (last_seen_ts, last_seen_ip) = match device {
            Some(d) => (
                d.last_seen_ts.unwrap_or(0),
                d.last_seen_ip.unwrap_or_default(),
            ),
            // No device row to record the visit in: nothing to write.
            None => (now_ms(), ip.to_owned()),
        };
        if needs_touch(last_seen_ts, &last_seen_ip, ip) {
            self.touch(&authed, ip, &hash).await?;
        } else {
            let session = CachedSession {
                user: authed.clone(),
                last_seen_ts,
                last_seen_ip,
            };
            cache.put(generation, hash, session);
        }
        Ok(authed)
    }

    /// Records that the device was seen now from `ip`, in the store and the cache.
    async fn touch(&self, user: &AuthedUser, ip: &str, token_hash: &str) -> Result<()> {
        let cache = self.tenant.sessions();
        let generation = cache.generation();
        let now = now_ms();
        self.tenant
            .store()
            .touch_device(&user.localpart, user.device_id.as_str(), now, ip)
            .await?;
        let session = CachedSession {
            user: user.clone(),
            last_seen_ts: now,
            last_seen_ip: ip.to_owned(),
        };
        cache.put(generation, token_hash.to_owned(), session);
        Ok(())
    }

    /// `POST /logout`: the token and its device go.
    pub async fn logout(&self, user: &AuthedUser) -> Result<()> {
        let ids = [user.device_id.to_string()];
        let store = self.tenant.store();
        store.delete_devices(&user.localpart, &ids).await?;
        // An admin's session as this user has no device: it ends by its own name.
        store
            .delete_puppet_session(&user.localpart, user.device_id.as_str())
            .await?;
        self.devices_changed(&user.localpart).await
    }

    /// `POST /logout/all`: every token and device of the user go.
    pub async fn logout_all(&self, user: &AuthedUser) -> Result<()> {
        let store = self.tenant.store();
        store.delete_devices_except(&user.localpart, None).await?;
        // As in Synapse, an admin's sessions as other users end with the admin's, not with
        // theirs.
        store.delete_puppet_tokens_of_admin(&user.localpart).await?;
        self.devices_changed(&user.localpart).await
    }

    /// Users sharing a room learn of removed devices through `device_lists.changed`.
    pub(crate) async fn devices_changed(&self, localpart: &str) -> Result<()> {
        // Deleted devices took their tokens along; deactivation ends every session.
        self.tenant.sessions().invalidate();
        let user_id = self.user_id(localpart)?;
        self.tenant.e2ee().device_list_changed(&user_id).await?;
        Ok(())
    }

    // ---- Account management --------------------------------------------------------------

    /// `POST /account/password`.
    pub async fn change_password(
        &self,
        user: &AuthedUser,
        new_password: &str,
        logout_devices: bool,
        auth: Option<&AuthData>,
    ) -> Result<()> {
        passwords::check_new_password(new_password)?;
        let flows = UiaFlows::password(format!("password:{}", user.localpart));
        self.tenant
            .uia()
            .authenticate(&flows, auth, Some(&user.localpart))
            .await?;
        let hash = self.tenant.hash_password(new_password).await?;
        let store = self.tenant.store();
        store
            .set_password_hash(&user.localpart, Some(&hash))
            .await?;
        if logout_devices {
            store
                .delete_devices_except(&user.localpart, Some(user.device_id.as_str()))
                .await?;
            self.devices_changed(&user.localpart).await?;
        }
        Ok(())
    }

    /// `POST /account/deactivate`.
    pub async fn deactivate(&self, user: &AuthedUser, auth: Option<&AuthData>) -> Result<()> {
        let flows = UiaFlows::password(format!("deactivate:{}", user.localpart));
        self.tenant
            .uia()
            .authenticate(&flows, auth, Some(&user.localpart))
            .await?;
        self.tenant.store().deactivate_user(&user.localpart).await?;
        self.devices_changed(&user.localpart).await
    }

    /// `GET /account/3pid`.
    pub async fn threepids(&self, user: &AuthedUser) -> Result<Vec<Threepid>> {
        let threepids = self.tenant.store().threepids(&user.localpart).await?;
        Ok(threepids.into_iter().map(Threepid::from).collect())
    }

    // ---- Operator actions ----------------------------------------------------------------

    pub async fn user(&self, localpart: &str) -> Result<Account> {
        self.tenant
            .store()
            .user(localpart)
            .await?
            .map(Account::from)
            .ok_or_else(|| Error::NotFound(format!("No user {localpart}")))
    }

    pub async fn users(&self, from: Option<&str>, limit: u32) -> Result<Vec<Account>> {
        let users = self.tenant.store().users(from, limit).await?;
        Ok(users.into_iter().map(Account::from).collect())
    }

    /// Creates a user directly, bypassing the registration policy (operator, first admin).
    pub async fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
        admin: bool,
        displayname: Option<&str>,
    ) -> Result<CreatedUser> {
        let localpart = self.check_username_available(username).await?;
        let generated_password = password.is_none().then(secrets::new_password);
        let password = password
            .or(generated_password.as_deref())
            .unwrap_or_default();
        passwords::check_new_password(password)?;
        let hash = self.tenant.hash_password(password).await?;
        let mut user = new_user(localpart, Some(hash), admin);
        user.displayname = displayname.map(str::to_owned);
        self.insert_user(user.clone()).await?;
        Ok(CreatedUser {
            account: user.into(),
            generated_password,
        })
    }

    /// Sets a new password (generated when none is given); returns the generated one.
    pub async fn reset_password(
        &self,
        localpart: &str,
        password: Option<&str>,
        logout_devices: bool,
    ) -> Result<Option<String>> {
        let user = self.user(localpart).await?;
        if user.deactivated {
            return Err(Error::UserDeactivated);
        }
        let generated = password.is_none().then(secrets::new_password);
        let password = password.or(generated.as_deref()).unwrap_or_default();
        passwords::check_new_password(password)?;
        let hash = self.tenant.hash_password(password).await?;
        let store = self.tenant.store();
        store.set_password_hash(localpart, Some(&hash)).await?;
        if logout_devices {
            store.delete_devices_except(localpart, None).await?;
            self.devices_changed(localpart).await?;
        }
        Ok(generated)
    }

    pub async fn deactivate_user(&self, localpart: &str) -> Result<Account> {
        self.user(localpart).await?;
        self.tenant.store().deactivate_user(localpart).await?;
        self.devices_changed(localpart).await?;
        self.user(localpart).await
    }

    pub async fn set_admin(&self, localpart: &str, admin: bool) -> Result<Account> {
        self.user(localpart).await?;
        self.tenant.store().set_admin(localpart, admin).await?;
        self.tenant.sessions().invalidate();
        self.user(localpart).await
    }

    pub async fn count(&self) -> Result<u64> {
        Ok(self.tenant.store().count_users().await?)
    }
}

fn new_user(localpart: String, password_hash: Option<String>, admin: bool) -> UserRecord {
    UserRecord {
        localpart,
        password_hash,
        admin,
        guest: false,
        deactivated: false,
        displayname: None,
        avatar_url: None,
        created_ts: now_ms(),
        ..UserRecord::default()
    }
}
