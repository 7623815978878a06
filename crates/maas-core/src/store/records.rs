//! Plain records crossing the storage boundary. Timestamps are milliseconds since the Unix
//! epoch; ids are strings so that storage stays independent of the protocol types.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// For example `ed25519:a_AbCd`.
    pub key_id: String,
    /// The PKCS#8 document of the key pair.
    pub pkcs8: Vec<u8>,
    pub created_ts: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub localpart: String,
    /// argon2id PHC string; `None` when the user can't log in with a password.
    pub password_hash: Option<String>,
    pub admin: bool,
    pub guest: bool,
    pub deactivated: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub created_ts: i64,
    /// Refused at login and for every token until an admin unlocks it.
    pub locked: bool,
    /// Read-only (MSC3823): no sending, joining, inviting or profile changes.
    pub suspended: bool,
    /// What the user sends looks accepted and reaches nobody.
    pub shadow_banned: bool,
    /// Deactivated with erasure (GDPR).
    pub erased: bool,
    /// Synapse's user types: `None` for ordinary users, `bot`, `support`.
    pub user_type: Option<String>,
}

/// A user as the admin's user list shows them: with when one of their devices was last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedUserRecord {
    pub user: UserRecord,
    pub last_seen_ts: Option<i64>,
}

/// What an admin changes about an account at once; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountStatesChange {
    pub locked: Option<bool>,
    pub suspended: Option<bool>,
    pub shadow_banned: Option<bool>,
    pub erased: Option<bool>,
    /// `Some(None)` clears the type.
    pub user_type: Option<Option<String>>,
}

/// A user's identity at an external provider (SSO, LDAP): one user per identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIdRecord {
    pub auth_provider: String,
    pub external_id: String,
}

/// A user's own message rate limit in place of the tenant's; `messages_per_second` 0 is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitOverrideRecord {
    pub messages_per_second: u64,
    pub burst_count: u64,
}

/// An access token an admin took to act as a user, stored only as its SHA-256. `device_id`
/// names the session; no device of the user has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PuppetTokenRecord {
    pub token_hash: String,
    pub localpart: String,
    pub device_id: String,
    /// The admin who took it.
    pub admin: String,
    pub valid_until_ms: Option<i64>,
    pub created_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreepidRecord {
    pub medium: String,
    pub address: String,
    pub validated_ts: i64,
    pub added_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub localpart: String,
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ts: Option<i64>,
    pub last_seen_ip: Option<String>,
    pub created_ts: i64,
}

/// An access token, stored only as the SHA-256 of the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_hash: String,
    pub localpart: String,
    pub device_id: String,
    pub created_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiaSessionRecord {
    pub session_id: String,
    /// What the session authorises, e.g. `register` or `delete_devices:@alice:example.org`;
    /// a session can't be replayed against another operation.
    pub purpose: String,
    /// Stages completed so far, as a JSON array of stage type strings.
    pub completed: Vec<String>,
    /// A registration token validated by the `m.login.registration_token` stage.
    pub registration_token: Option<String>,
    pub created_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationTokenRecord {
    pub token: String,
    pub uses_allowed: Option<u64>,
    pub completed: u64,
    pub expiry_time: Option<i64>,
    pub created_ts: i64,
}
