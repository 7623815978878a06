//! Registration with the tenant's shared secret (Synapse: "Shared-Secret Registration", which
//! Synapse's `register_new_matrix_user` script speaks): whoever knows the secret creates
//! accounts, admins included, without the registration policy. A request carries a nonce the
//! server handed out (single use, valid 60 s) and an HMAC-SHA1 of the request keyed with the
//! secret. Each tenant has its own secret, generated with it and shown to the operator only;
//! a tenant without one (created before secrets were) refuses such registrations.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use ruma::UserId;

use crate::accounts::{Registered, Session};
use crate::store::{AccessTokenRecord, AccountStatesChange, DeviceRecord};
use crate::{Error, Result, Tenant, now_ms, secrets};

/// How long a nonce is accepted (Synapse's `NONCE_TIMEOUT`).
const NONCE_LIFETIME: Duration = Duration::from_secs(60);
/// Nonces kept per tenant at most: they are handed out to anyone, so a flood of requests
/// for them must not grow memory without bound; the oldest go first.
const MAX_NONCES: usize = 1024;
/// The longest username and password Synapse takes here, in characters.
const MAX_FIELD_CHARS: usize = 512;
/// The longest device id a client may choose (as at login).
const MAX_DEVICE_ID_LEN: usize = 255;
/// The user types Synapse knows besides ordinary users.
const USER_TYPES: [&str; 2] = ["support", "bot"];

/// A tenant's registration shared secret. Its `Debug` hides it, so that settings logged or
/// printed never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        Self(secrets::random_alphanumeric(48))
    }

    /// The secret itself, for the operator who asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<hidden>)")
    }
}

/// The nonces a tenant handed out and when.
#[derive(Default)]
pub(crate) struct Nonces(Mutex<HashMap<String, Instant>>);

impl Nonces {
    fn issue(&self) -> String {
        // 64 random bytes, as Synapse's `secrets.token_hex(64)`.
        let bytes: [[u8; 32]; 2] = rand::random();
        let nonce = hex::encode(bytes.concat());
        let now = Instant::now();
        let mut nonces = self.0.lock();
        nonces.retain(|_, issued| now.duration_since(*issued) <= NONCE_LIFETIME);
        if nonces.len() >= MAX_NONCES
            && let Some(oldest) = nonces
                .iter()
                .min_by_key(|(_, issued)| **issued)
                .map(|(n, _)| n.clone())
        {
            nonces.remove(&oldest);
        }
        nonces.insert(nonce.clone(), now);
        nonce
    }

    /// Whether `nonce` was handed out and is still valid; it is forgotten either way.
    fn take(&self, nonce: &str) -> bool {
        let issued = self.0.lock().remove(nonce);
        issued.is_some_and(|issued| issued.elapsed() <= NONCE_LIFETIME)
    }
}

pub struct SharedSecretRegistration<'a> {
    tenant: &'a Tenant,
}

impl<'a> SharedSecretRegistration<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    /// `GET /_synapse/admin/v1/register`: a new nonce (handed out whether or not the tenant
    /// has a secret, as Synapse does).
    pub fn nonce(&self) -> String {
        self.tenant.admin_state().nonces.issue()
    }

    /// Whether the tenant takes such registrations (it has a secret).
    pub fn enabled(&self) -> bool {
        self.tenant.settings().registration_shared_secret.is_some()
    }

    /// `POST /_synapse/admin/v1/register`: the request body, checked field by field in
    /// Synapse's order and with its errors; the nonce is used up by the first check that
    /// reads it, whatever follows.
    pub async fn register(&self, body: &Map<String, Value>) -> Result<Registered> {
        let Some(secret) = self.tenant.settings().registration_shared_secret else {
            return Err(Error::Unknown(
                "Shared secret registration is not enabled".into(),
            ));
        };
        let nonce = body
            .get("nonce")
            .ok_or_else(|| Error::BadJson("nonce must be specified".into()))?;
        let nonce = nonce.as_str().unwrap_or_default();
        if !self.tenant.admin_state().nonces.take(nonce) {
            return Err(Error::Unknown("unrecognised nonce".into()));
        }
        let username = field(body, "username")?;
        let password = field(body, "password")?;
        let admin = body.get("admin").is_some_and(truthy);
        let user_type = match body.get("user_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if USER_TYPES.contains(&t.as_str()) => Some(t.clone()),
            Some(_) => return Err(Error::Unknown("Invalid user type".into())),
        };
        let mac = body
            .get("mac")
            .ok_or_else(|| Error::BadJson("mac must be specified".into()))?;
        let expected = expected_mac(
            &secret,
            nonce,
            username,
            password,
            admin,
            user_type.as_deref(),
        )?;
        let given = mac.as_str().unwrap_or_default();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(Error::Forbidden("HMAC incorrect".into()));
        }
        if body.get("refresh_token").is_some_and(|r| !r.is_boolean()) {
            return Err(Error::Unknown("refresh_token must be a boolean".into()));
        }
        self.create(username, password, admin, user_type, body)
            .await
    }

    async fn create(
        &self,
        username: &str,
        password: &str,
        admin: bool,
        user_type: Option<String>,
        body: &Map<String, Value>,
    ) -> Result<Registered> {
        let accounts = self.tenant.accounts();
        let localpart = accounts.check_username_available(username).await?;
        // Synapse names the user after its localpart unless told otherwise.
        let displayname = match body.get("displayname") {
            Some(Value::String(name)) => name.clone(),
            _ => localpart.clone(),
        };
        let created = accounts
            .create_user(&localpart, Some(password), admin, Some(&displayname))
            .await?;
        let localpart = created.account.localpart;
        if user_type.is_some() {
            let change = AccountStatesChange {
                user_type: Some(user_type),
                ..AccountStatesChange::default()
            };
            self.tenant
                .store()
                .update_account_states(&localpart, &change)
                .await?;
        }
        tracing::info!(%localpart, admin, "user registered with the shared secret");
        let user_id = crate::accounts::usernames::user_id(&localpart, self.tenant.server_name())?;
        if body.get("inhibit_login").is_some_and(truthy) {
            return Ok(Registered {
                user_id,
                session: None,
            });
        }
        let device_id = body.get("device_id").and_then(Value::as_str);
        let device_name = body
            .get("initial_device_display_name")
            .and_then(Value::as_str);
        let session = self.new_session(&user_id, device_id, device_name).await?;
        Ok(Registered {
            user_id,
            session: Some(session),
        })
    }

    /// A device and access token for the new user, as a login makes them.
    async fn new_session(
        &self,
        user_id: &UserId,
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
        let localpart = user_id.localpart().to_owned();
        let now = now_ms();
        let device = DeviceRecord {
            localpart: localpart.clone(),
            device_id: device_id.clone(),
            display_name: display_name.map(str::to_owned),
            last_seen_ts: Some(now),
            last_seen_ip: None,
            created_ts: now,
        };
        let access_token = secrets::new_access_token();
        let token = AccessTokenRecord {
            token_hash: secrets::token_hash(&access_token),
            localpart,
            device_id: device_id.clone(),
            created_ts: now,
        };
        self.tenant.store().start_session(&device, &token).await?;
        Ok(Session {
            user_id: user_id.to_owned(),
            device_id: device_id.into(),
            access_token,
        })
    }
}

/// `username` or `password`: present (`M_BAD_JSON` otherwise), a string of at most 512
/// characters without NUL (`M_UNKNOWN` "Invalid …" otherwise).
fn field<'b>(body: &'b Map<String, Value>, name: &str) -> Result<&'b str> {
    let value = body
        .get(name)
        .ok_or_else(|| Error::BadJson(format!("{name} must be specified")))?;
    match value {
        Value::String(s) if s.chars().count() <= MAX_FIELD_CHARS && !s.contains('\0') => Ok(s),
        _ => Err(Error::Unknown(format!("Invalid {name}"))),
    }
}

/// Python's truth of a JSON value, as Synapse reads `admin` and `inhibit_login`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The hex HMAC-SHA1 of `nonce\0username\0password\0admin|notadmin[\0user_type]` keyed with
/// the secret: what `register_new_matrix_user` sends.
fn expected_mac(
    secret: &SharedSecret,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
    user_type: Option<&str>,
) -> Result<String> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.expose().as_bytes())
        .map_err(|e| Error::Internal(format!("HMAC key: {e}")))?;
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(username.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin { b"admin" } else { b"notadmin" });
    if let Some(user_type) = user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    Ok(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_synapses() {
        // Python's `hmac.new(b"shared_secret", msg, hashlib.sha1).hexdigest()`, as Synapse's
        // documentation computes it.
        let secret = SharedSecret("shared_secret".into());
        let mac = expected_mac(&secret, "thisisanonce", "pepper_roni", "pizza", true, None);
        assert_eq!(
            mac.expect("a MAC"),
            "48715842ad67d5dc9a9ee938a3bda4fcfae8d7c7"
        );
        let typed = expected_mac(
            &secret,
            "thisisanonce",
            "pepper_roni",
            "pizza",
            false,
            Some("bot"),
        );
        assert_eq!(
            typed.expect("a MAC"),
            "b269635cb53e1adc15073ae7ffbd000b836b3105"
        );
    }

    #[test]
    fn nonces_are_used_once() {
        let nonces = Nonces::default();
        let nonce = nonces.issue();
        assert_eq!(nonce.len(), 128);
        assert!(nonces.take(&nonce));
        assert!(!nonces.take(&nonce));
        assert!(!nonces.take("made-up"));
    }

    #[test]
    fn nonces_are_bounded() {
        let nonces = Nonces::default();
        let first = nonces.issue();
        for _ in 0..MAX_NONCES {
            nonces.issue();
        }
        assert_eq!(nonces.0.lock().len(), MAX_NONCES);
        assert!(!nonces.take(&first));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let secret = SharedSecret::generate();
        assert_eq!(secret.expose().len(), 48);
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
