//! Registration tokens (spec: `m.login.registration_token`): operator-issued tokens that let
//! someone register on a tenant whose policy is `token`, with optional use counts and expiry.

use rand::Rng;

use crate::store::{RegistrationTokenRecord, StoreError};
use crate::{Error, Result, Tenant, now_ms, secrets};

/// The characters of a token (the spec's grammar), from which tokens are generated.
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";

/// What the admin API's `POST /registration_tokens/new` names a token by.
#[derive(Debug, Clone)]
pub enum NewToken {
    /// This token, as given.
    Given(String),
    /// A random token of this many characters (1 to 64).
    Generated(usize),
}

/// A change of a token's limits by the admin API: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenChange {
    pub uses_allowed: Option<Option<u64>>,
    pub expiry_time: Option<Option<i64>>,
}

/// A token with its live usage, as the operator API shows it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token: String,
    /// Registrations it may complete in all; unlimited when `None`.
    pub uses_allowed: Option<u64>,
    /// Registrations completed with it.
    pub completed: u64,
    /// Milliseconds since the Unix epoch after which it is invalid.
    pub expiry_time: Option<i64>,
    /// Registrations under way that have validated this token.
    pub pending: u64,
}

impl TokenInfo {
    /// Whether it may start a registration at `now`: uses left and not expired.
    fn is_valid_at(&self, now: i64) -> bool {
        let uses_left = self
            .uses_allowed
            .is_none_or(|allowed| allowed > self.pending.saturating_add(self.completed));
        uses_left && self.expiry_time.is_none_or(|t| t > now)
    }

    fn new(record: RegistrationTokenRecord, pending: u64) -> Self {
        Self {
            token: record.token,
            uses_allowed: record.uses_allowed,
            completed: record.completed,
            expiry_time: record.expiry_time,
            pending,
        }
    }
}

pub struct RegistrationTokens<'a> {
    tenant: &'a Tenant,
}

/// The spec's token grammar: `[A-Za-z0-9._~-]`, at most 64 characters.
fn check_token_syntax(token: &str) -> Result<()> {
    let ok = !token.is_empty()
        && token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParam(
            "Registration tokens are 1-64 characters of [A-Za-z0-9._~-]".into(),
        ))
    }
}

/// `length` characters of the token alphabet.
fn random_token(length: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| char::from(TOKEN_CHARS[rng.gen_range(0..TOKEN_CHARS.len())]))
        .collect()
}

/// The admin API's token check, in Synapse's words.
fn check_admin_token_syntax(token: &str) -> Result<()> {
    if token.is_empty() || token.chars().count() > 64 {
        return Err(Error::InvalidParam(
            "token must not be empty and must not be longer than 64 characters".into(),
        ));
    }
    if !token.bytes().all(|b| TOKEN_CHARS.contains(&b)) {
        return Err(Error::InvalidParam(
            "token must consist only of characters matched by the regex [A-Za-z0-9-_]".into(),
        ));
    }
    Ok(())
}

/// An expiry in the past is refused (Synapse lets one of this very millisecond through).
fn check_admin_expiry(expiry_time: Option<i64>) -> Result<()> {
    if expiry_time.is_some_and(|t| t < now_ms()) {
        return Err(Error::InvalidParam(
            "expiry_time must not be in the past".into(),
        ));
    }
    Ok(())
}

impl<'a> RegistrationTokens<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    pub async fn create(
        &self,
        token: Option<String>,
        uses_allowed: Option<u64>,
        expiry_time: Option<i64>,
    ) -> Result<TokenInfo> {
        let token = token.unwrap_or_else(|| secrets::random_alphanumeric(16));
        check_token_syntax(&token)?;
        // A token that allows no registration is of no use (and Synapse's admin API, like
        // MSC3231's wording, speaks of a number of uses: leave it out for unlimited).
        if uses_allowed == Some(0) {
            return Err(Error::InvalidParam(
                "uses_allowed must be at least 1; leave it out for unlimited uses".into(),
            ));
        }
        if expiry_time.is_some_and(|t| t <= now_ms()) {
            return Err(Error::InvalidParam(
                "expiry_time must be in the future".into(),
            ));
        }
        let record = RegistrationTokenRecord {
            token,
            uses_allowed,
            completed: 0,
            expiry_time,
            created_ts: now_ms(),
        };
        match self.tenant.store().insert_registration_token(&record).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(format!(
                    "Registration token {} already exists",
                    record.token
                )));
            }
            other => other?,
        }
        Ok(TokenInfo::new(record, 0))
    }

    /// A token for the admin API, with Synapse's rules: any number of uses (0 too), an
    /// expiry not in the past, and a generated token tried anew while it is taken.
    pub async fn issue(
        &self,
        name: NewToken,
        uses_allowed: Option<u64>,
        expiry_time: Option<i64>,
    ) -> Result<TokenInfo> {
        match &name {
            NewToken::Given(token) => check_admin_token_syntax(token)?,
            NewToken::Generated(length) if !(1..=64).contains(length) => {
                return Err(Error::InvalidParam(
                    "length must be greater than zero and not greater than 64".into(),
                ));
            }
            NewToken::Generated(_) => {}
        }
        check_admin_expiry(expiry_time)?;
        let token = match name {
            NewToken::Given(token) => token,
            NewToken::Generated(length) => self.unused_token(length).await?,
        };
        let record = RegistrationTokenRecord {
            token,
            uses_allowed,
            completed: 0,
            expiry_time,
            created_ts: now_ms(),
        };
        match self.tenant.store().insert_registration_token(&record).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::InvalidParam(format!(
                    "Token already exists: {}",
                    record.token
                )));
            }
            other => other?,
        }
        tracing::info!(token = %record.token, "registration token created by an admin");
        Ok(TokenInfo::new(record, 0))
    }

    /// A random token of `length` characters that is not taken (three tries, as Synapse).
    async fn unused_token(&self, length: usize) -> Result<String> {
        for _ in 0..3 {
            let token = random_token(length);
            if self
                .tenant
                .store()
                .registration_token(&token)
                .await?
                .is_none()
            {
                return Ok(token);
            }
        }
        Err(Error::Internal(
            "Unable to generate a unique registration token. Try again with a greater length"
                .into(),
        ))
    }

    /// One token with its live usage.
    pub async fn get(&self, token: &str) -> Result<Option<TokenInfo>> {
        let Some(record) = self.tenant.store().registration_token(token).await? else {
            return Ok(None);
        };
        let pending = self.pending(token).await?;
        Ok(Some(TokenInfo::new(record, pending)))
    }

    /// Changes a token's limits; `None` when there is no such token.
    pub async fn update(&self, token: &str, change: &TokenChange) -> Result<Option<TokenInfo>> {
        if let Some(expiry_time) = change.expiry_time {
            check_admin_expiry(expiry_time)?;
        }
        let found = self
            .tenant
            .store()
            .update_registration_token(token, change.uses_allowed, change.expiry_time)
            .await?;
        if !found {
            return Ok(None);
        }
        tracing::info!(%token, "registration token changed by an admin");
        self.get(token).await
    }

    /// Deletes a token; false when there was none. Registrations under way that validated it
    /// can no longer complete with it.
    pub async fn delete(&self, token: &str) -> Result<bool> {
        let deleted = self.tenant.store().delete_registration_token(token).await?;
        if deleted {
            tracing::info!(%token, "registration token deleted by an admin");
        }
        Ok(deleted)
    }

    /// The tokens that may still be used (`Some(true)`), those that may not (`Some(false)`),
    /// or all of them (`None`), as Synapse counts validity: by completed and pending uses.
    pub async fn list_valid(&self, valid: Option<bool>) -> Result<Vec<TokenInfo>> {
        let now = now_ms();
        let infos = self.list().await?;
        Ok(infos
            .into_iter()
            .filter(|info| valid.is_none_or(|valid| info.is_valid_at(now) == valid))
            .collect())
    }

    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        let mut infos = Vec::new();
        for record in self.tenant.store().registration_tokens().await? {
            let pending = self.pending(&record.token).await?;
            infos.push(TokenInfo::new(record, pending));
        }
        Ok(infos)
    }

    async fn pending(&self, token: &str) -> Result<u64> {
        let since = self.tenant.uia().expired_before();
        Ok(self
            .tenant
            .store()
            .pending_registration_token_uses(token, since)
            .await?)
    }

    /// Whether the token may still be used to start a registration: it exists, has not expired
    /// and its completed plus pending uses leave room.
    pub async fn is_valid(&self, token: &str) -> Result<bool> {
        if check_token_syntax(token).is_err() {
            return Ok(false);
        }
        let Some(record) = self.tenant.store().registration_token(token).await? else {
            return Ok(false);
        };
        if record.expiry_time.is_some_and(|t| t <= now_ms()) {
            return Ok(false);
        }
        let Some(allowed) = record.uses_allowed else {
            return Ok(true);
        };
        let pending = self.pending(token).await?;
        Ok(record.completed.saturating_add(pending) < allowed)
    }

    /// Counts a finished registration against the token; false when it ran out meanwhile.
    pub(crate) async fn complete_use(&self, token: &str) -> Result<bool> {
        Ok(self
            .tenant
            .store()
            .complete_registration_token_use(token, now_ms())
            .await?)
    }
}
