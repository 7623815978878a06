//! User-interactive authentication (spec: Client-Server API, "User-interactive authentication
//! API"): one mechanism for every endpoint that needs it. An endpoint names its flows and a
//! purpose; sessions are stored so a multi-stage dance survives across requests and nodes.

use ruma::api::client::uiaa::{AuthData, UserIdentifier};

use crate::accounts::usernames;
use crate::store::UiaSessionRecord;
use crate::{Error, Result, Tenant, UiaChallenge, now_ms, secrets};

/// The stages an endpoint accepts, as the spec's `flows`.
pub struct UiaFlows {
    /// What the session authorises, so a session can't be replayed against another operation.
    pub purpose: String,
    pub flows: Vec<Vec<&'static str>>,
    pub params: serde_json::Value,
}

pub const PASSWORD: &str = "m.login.password";
pub const DUMMY: &str = "m.login.dummy";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

impl UiaFlows {
    /// One flow: confirm the user's own password. Used by password change, deactivation and
    /// device deletion.
    pub fn password(purpose: String) -> Self {
        Self {
            purpose,
            flows: vec![vec![PASSWORD]],
            params: serde_json::json!({}),
        }
    }
}

/// What completed stages established.
#[derive(Debug, Default)]
pub struct UiaCompleted {
    pub registration_token: Option<String>,
}

pub struct Uia<'a> {
    tenant: &'a Tenant,
}

impl<'a> Uia<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    /// Runs one step of the dance. Returns when a whole flow is complete; otherwise fails with
    /// `Error::UiaRequired`, which carries the spec's 401 body.
    /// `user` is the localpart the stages must authenticate, when the caller is logged in.
    pub async fn authenticate(
        &self,
        flows: &UiaFlows,
        auth: Option<&AuthData>,
        user: Option<&str>,
    ) -> Result<UiaCompleted> {
        let Some(auth) = auth else {
            let session = self.new_session(flows).await?;
            return Err(challenge(flows, &session, None));
        };
        let mut session = match auth.session() {
            Some(id) => self.session(id, flows).await?,
            None => self.new_session(flows).await?,
        };
        let stage = auth_type(auth);
        if !flows.flows.iter().any(|f| f.contains(&stage.as_str())) {
            let error = (
                "M_UNRECOGNIZED",
                format!("Stage {stage} is not offered here"),
            );
            return Err(challenge(flows, &session, Some(error)));
        }
        if let Err(error) = self.check_stage(auth, user, &mut session).await? {
            return Err(challenge(flows, &session, Some(error)));
        }
        if !session.completed.contains(&stage) {
            session.completed.push(stage);
        }
        if flow_complete(flows, &session.completed) {
            self.tenant
                .store()
                .delete_uia_session(&session.session_id)
                .await?;
            return Ok(UiaCompleted {
                registration_token: session.registration_token,
            });
        }
        self.tenant.store().update_uia_session(&session).await?;
        Err(challenge(flows, &session, None))
    }

    async fn new_session(&self, flows: &UiaFlows) -> Result<UiaSessionRecord> {
        let store = self.tenant.store();
        store
            .delete_uia_sessions_before(self.expired_before())
            .await?;
        let session = UiaSessionRecord {
            session_id: secrets::random_alphanumeric(24),
            purpose: flows.purpose.clone(),
            completed: Vec::new(),
            registration_token: None,
            created_ts: now_ms(),
        };
        store.insert_uia_session(&session).await?;
        Ok(session)
    }

    async fn session(&self, id: &str, flows: &UiaFlows) -> Result<UiaSessionRecord> {
        let session = self.tenant.store().uia_session(id).await?;
        match session {
            Some(s) if s.purpose == flows.purpose && s.created_ts >= self.expired_before() => Ok(s),
            _ => Err(Error::UnknownUiaSession),
        }
    }

    /// Sessions created before this instant have expired.
    pub(crate) fn expired_before(&self) -> i64 {
        let ttl_ms = self
            .tenant
            .config()
            .tenants
            .uia_session_secs
            .saturating_mul(1000);
        now_ms().saturating_sub(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
    }

    /// `Ok(Err(..))` is a failed stage the client may retry; `Err(..)` is a server failure.
    async fn check_stage(
        &self,
        auth: &AuthData,
        user: Option<&str>,
        session: &mut UiaSessionRecord,
    ) -> Result<Result<(), (&'static str, String)>> {
        match auth {
            AuthData::Dummy(_) => Ok(Ok(())),
            AuthData::Password(p) => self.check_password(&p.identifier, &p.password, user).await,
            AuthData::RegistrationToken(t) => {
                if !self.tenant.registration_tokens().is_valid(&t.token).await? {
                    return Ok(Err(("M_FORBIDDEN", "Invalid registration token".into())));
                }
                session.registration_token = Some(t.token.clone());
                Ok(Ok(()))
            }
            _ => Ok(Err((
                "M_UNRECOGNIZED",
                "Unsupported authentication stage".into(),
            ))),
        }
    }

    async fn check_password(
        &self,
        identifier: &UserIdentifier,
        password: &str,
        user: Option<&str>,
    ) -> Result<Result<(), (&'static str, String)>> {
        let forbidden = || {
            Ok(Err((
                "M_FORBIDDEN",
                "Invalid username or password".to_owned(),
            )))
        };
        let UserIdentifier::Matrix(id) = identifier else {
            return forbidden();
        };
        let Some(localpart) = usernames::local_part_of(&id.user, self.tenant.server_name()) else {
            return forbidden();
        };
        if user.is_some_and(|u| u != localpart) {
            return forbidden();
        }
        let Some(record) = self.tenant.store().user(&localpart).await? else {
            return forbidden();
        };
        let Some(hash) = record.password_hash.as_deref() else {
            return forbidden();
        };
        if record.deactivated || !self.tenant.verify_password(hash, password).await? {
            return forbidden();
        }
        Ok(Ok(()))
    }
}

fn auth_type(auth: &AuthData) -> String {
    auth.auth_type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default()
}

fn flow_complete(flows: &UiaFlows, completed: &[String]) -> bool {
    flows.flows.iter().any(|flow| {
        flow.iter()
            .all(|stage| completed.iter().any(|c| c == stage))
    })
}

fn challenge(
    flows: &UiaFlows,
    session: &UiaSessionRecord,
    error: Option<(&'static str, String)>,
) -> Error {
    Error::UiaRequired(Box::new(UiaChallenge {
        flows: flows
            .flows
            .iter()
            .map(|f| f.iter().map(|s| (*s).to_owned()).collect())
            .collect(),
        completed: session.completed.clone(),
        session: session.session_id.clone(),
        params: flows.params.clone(),
        error,
    }))
}
