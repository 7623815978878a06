//! The tenant as a notary (spec: Server-Server API, "Querying Keys Through Another Server"):
//! other servers' keys documents as we fetched and verified them, with our signature added, so
//! a server that can't reach them directly may trust our word.

use std::collections::BTreeMap;

use ruma::api::federation::discovery::ServerSigningKeys;
use ruma::api::federation::discovery::get_remote_server_keys_batch::v2::QueryCriteria;
use ruma::serde::Raw;
use ruma::{CanonicalJsonObject, OwnedServerName, OwnedServerSigningKeyId, ServerName};

use crate::{Error, Result, Tenant};

/// The servers and key ids asked about, with how long the answer must stay valid.
pub type KeyQuery = BTreeMap<OwnedServerName, BTreeMap<OwnedServerSigningKeyId, QueryCriteria>>;

/// `POST /_matrix/key/v2/query`: [`query_keys`] for every server asked about, valid at least
/// until the latest `minimum_valid_until_ts` asked for it.
pub async fn query_key_batch(
    tenant: &Tenant,
    query: &KeyQuery,
) -> Result<Vec<Raw<ServerSigningKeys>>> {
    let servers: Vec<(OwnedServerName, i64)> = query
        .iter()
        .map(|(server, criteria)| {
            let valid_until = criteria
                .values()
                .filter_map(|c| c.minimum_valid_until_ts)
                .map(|ts| i64::from(ts.get()))
                .max()
                .unwrap_or(0);
            (server.clone(), valid_until)
        })
        .collect();
    query_keys(tenant, &servers).await
}

/// The keys documents of `servers` that we could get, each valid at least until the time
/// (ms) given with it and signed by us too. A server we can't reach is left out, as the spec
/// allows.
pub async fn query_keys(
    tenant: &Tenant,
    servers: &[(OwnedServerName, i64)],
) -> Result<Vec<Raw<ServerSigningKeys>>> {
    let me = tenant.server_keys().await?;
    let mut answers = Vec::with_capacity(servers.len());
    for (server, valid_until) in servers {
        let object = if server == tenant.server_name() {
            own_document(tenant, &me)?
        } else {
            match tenant.federation().key_document(server, *valid_until).await {
                Ok(object) => object,
                Err(e) => {
                    tracing::debug!(%server, error = %e, "notary: keys not available");
                    continue;
                }
            }
        };
        answers.push(countersigned(object, tenant.server_name(), &me.current)?);
    }
    Ok(answers)
}

fn own_document(
    tenant: &Tenant,
    keys: &super::server_keys::ServerKeys,
) -> Result<CanonicalJsonObject> {
    let raw = keys.document(tenant.server_name())?;
    serde_json::from_str(raw.json().get()).map_err(|e| Error::Internal(format!("keys: {e}")))
}

/// `object` with our signature beside its server's.
fn countersigned(
    mut object: CanonicalJsonObject,
    notary: &ServerName,
    key: &ruma::signatures::Ed25519KeyPair,
) -> Result<Raw<ServerSigningKeys>> {
    ruma::signatures::sign_json(notary.as_str(), key, &mut object)
        .map_err(|e| Error::Internal(format!("signing as notary: {e}")))?;
    let json = serde_json::to_string(&object).map_err(|e| Error::Internal(e.to_string()))?;
    Raw::from_json_string(json).map_err(|e| Error::Internal(e.to_string()))
}
