//! Registration tokens (spec: `m.login.registration_token`): operator-issued tokens that let
//! someone register on a tenant whose policy is `token`, with optional use counts and expiry.

use crate::store::{RegistrationTokenRecord, StoreError};
use crate::{Error, Result, Tenant, now_ms, secrets};

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
