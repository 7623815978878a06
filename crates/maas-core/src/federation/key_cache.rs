//! Other servers' signing keys, fetched when a signature needs them and kept for the whole
//! platform (they are public): from each trusted notary in turn (`POST /_matrix/key/v2/query`),
//! then from the server itself (`GET /_matrix/key/v2/server`). A keys document is kept only
//! once it verifies with its own keys (and a notary's answer with the notary's), and for no
//! longer than it says, nor than the spec's 7 days.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use ruma::api::federation::discovery::{
    ServerSigningKeys, get_remote_server_keys_batch, get_server_keys,
};
use ruma::serde::{Base64, Raw};
use ruma::signatures::{PublicKeyMap, verify_json};
use ruma::{CanonicalJsonObject, OwnedServerName, ServerName};

use super::Federation;
use crate::{Error, Result, now_ms};

/// The longest a keys document is trusted, whatever its `valid_until_ts` says (spec: "Servers
/// MUST use the lesser of this field and 7 days into the future").
const MAX_VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;
/// Servers whose keys are kept at once.
const CAPACITY: usize = 10_000;

/// A server's keys as one verified document said them.
#[derive(Clone)]
pub(crate) struct ServerKeySet {
    /// The document, signatures included, as the server (or notary) sent it.
    object: CanonicalJsonObject,
    /// Key id → public key and, for old keys, when it stopped being used.
    keys: BTreeMap<String, (Base64, Option<i64>)>,
    /// Until when the current keys may be used (capped at 7 days from fetching).
    valid_until_ts: i64,
}

impl ServerKeySet {
    /// The key `key_id` if it may verify what was signed at `at` (ms): a current key while the
    /// document is valid, an old key up to its expiry.
    fn key_at(&self, key_id: &str, at: i64) -> Option<&Base64> {
        let (key, expired) = self.keys.get(key_id)?;
        match expired {
            Some(expired_ts) => (at <= *expired_ts).then_some(key),
            None => (at <= self.valid_until_ts).then_some(key),
        }
    }
}

pub(crate) struct KeyCache {
    servers: Mutex<LruCache<OwnedServerName, ServerKeySet>>,
    /// One fetch per server at a time; the others wait for its result.
    fetching: Mutex<HashMap<OwnedServerName, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Self {
            servers: Mutex::new(LruCache::new(capacity)),
            fetching: Mutex::new(HashMap::new()),
        }
    }
}

impl KeyCache {
    fn cached(&self, server: &ServerName) -> Option<ServerKeySet> {
        self.servers.lock().get(server).cloned()
    }

    fn keep(&self, server: &ServerName, set: ServerKeySet) {
        self.servers.lock().put(server.to_owned(), set);
    }

    fn fetch_lock(&self, server: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        self.fetching
            .lock()
            .entry(server.to_owned())
            .or_default()
            .clone()
    }
}

impl Federation {
    /// The public keys of `server` among `key_ids` that may verify what was signed at `at`,
    /// fetched when the cache lacks one; as the map ruma's verification functions take.
    pub(crate) async fn public_keys(
        &self,
        server: &ServerName,
        key_ids: &[&str],
        at: i64,
    ) -> Result<PublicKeyMap> {
        if let Some(found) = self.cached_keys(server, key_ids, at) {
            return Ok(found);
        }
        let lock = self.keys.fetch_lock(server);
        let _fetching = lock.lock().await;
        // Another request may have fetched them while this one waited.
        if let Some(found) = self.cached_keys(server, key_ids, at) {
            return Ok(found);
        }
        let set = self.fetch_keys(server, key_ids, at).await?;
        self.keys.keep(server, set);
        self.cached_keys(server, key_ids, at).ok_or_else(|| {
            Error::Unauthorized(format!(
                "{server} published no key {} valid at {at}",
                key_ids.join(", ")
            ))
        })
    }

    /// The keys of `server` among `key_ids` that it published and that were valid at `at`;
    /// an error only when none of them is.
    pub(crate) async fn public_keys_any(
        &self,
        server: &ServerName,
        key_ids: &[&str],
        at: i64,
    ) -> Result<PublicKeyMap> {
        let mut found = BTreeMap::new();
        let mut last_error = None;
        for key_id in key_ids {
            match self.public_keys(server, &[key_id], at).await {
                Ok(map) => found.extend(map.into_values().flatten()),
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if found.is_empty() => Err(e),
            _ => Ok(PublicKeyMap::from([(server.to_string(), found)])),
        }
    }

    /// The keys document of `server` as kept, fetched again when it is valid for less than
    /// until `valid_until` (ms), for answering as a notary.
    pub(crate) async fn key_document(
        &self,
        server: &ServerName,
        valid_until: i64,
    ) -> Result<CanonicalJsonObject> {
        let fresh = |set: &ServerKeySet| set.valid_until_ts >= valid_until.max(now_ms());
        if let Some(set) = self.keys.cached(server).filter(fresh) {
            return Ok(set.object);
        }
        let lock = self.keys.fetch_lock(server);
        let _fetching = lock.lock().await;
        if let Some(set) = self.keys.cached(server).filter(fresh) {
            return Ok(set.object);
        }
        let set = self.fetch_keys(server, &[], now_ms()).await?;
        self.keys.keep(server, set.clone());
        Ok(set.object)
    }

    fn cached_keys(&self, server: &ServerName, key_ids: &[&str], at: i64) -> Option<PublicKeyMap> {
        let set = self.keys.cached(server)?;
        let mut found = BTreeMap::new();
        for key_id in key_ids {
            found.insert((*key_id).to_owned(), set.key_at(key_id, at)?.clone());
        }
        Some(PublicKeyMap::from([(server.to_string(), found)]))
    }

    /// Asks the trusted notaries in turn, then the server itself, for a document holding
    /// `key_ids` valid at `at`.
    async fn fetch_keys(
        &self,
        server: &ServerName,
        key_ids: &[&str],
        at: i64,
    ) -> Result<ServerKeySet> {
        let mut failures = Vec::new();
        for notary in &self.notaries {
            if notary.as_str() == server.as_str() {
                continue;
            }
            match self.fetch_from_notary(notary, server).await {
                Ok(set) if key_ids.iter().all(|id| set.key_at(id, at).is_some()) => {
                    return Ok(set);
                }
                Ok(_) => failures.push(format!("{notary} knows no such key")),
                Err(e) => failures.push(format!("{notary}: {e}")),
            }
        }
        match self.fetch_from_server(server).await {
            Ok(set) => Ok(set),
            Err(e) => {
                failures.push(format!("{server}: {e}"));
                Err(Error::Unauthorized(format!(
                    "could not get the keys of {server}: {}",
                    failures.join("; ")
                )))
            }
        }
    }

    async fn fetch_from_server(&self, server: &ServerName) -> Result<ServerKeySet> {
        let response = self
            .send_unauthenticated(server, get_server_keys::v2::Request::new())
            .await?;
        verified_set(server, &response.server_key, None)
    }

    async fn fetch_from_notary(
        &self,
        notary: &ServerName,
        server: &ServerName,
    ) -> Result<ServerKeySet> {
        // No key ids: all of the server's keys.
        let query = BTreeMap::from([(server.to_owned(), BTreeMap::new())]);
        let request = get_remote_server_keys_batch::v2::Request::new(query);
        let response = self.send_unauthenticated(notary, request).await?;
        // The notary's own keys verify its signature; fetched from itself, never from another
        // notary.
        let notary_keys = match self.keys.cached(notary) {
            Some(set) if set.valid_until_ts >= now_ms() => set,
            _ => {
                let set = self.fetch_from_server(notary).await?;
                self.keys.keep(notary, set.clone());
                set
            }
        };
        let raw = response
            .server_keys
            .iter()
            .find(|raw| document_server(raw).as_deref() == Some(server.as_str()))
            .ok_or_else(|| Error::NotFound(format!("{notary} returned no keys of {server}")))?;
        verified_set(server, raw, Some((notary, &notary_keys)))
    }
}

fn document_server(raw: &Raw<ServerSigningKeys>) -> Option<String> {
    raw.get_field::<String>("server_name").ok().flatten()
}

/// Checks a keys document of `server`: its name, its signature by its own current keys, and,
/// from a notary, the notary's signature too.
fn verified_set(
    server: &ServerName,
    raw: &Raw<ServerSigningKeys>,
    notary: Option<(&ServerName, &ServerKeySet)>,
) -> Result<ServerKeySet> {
    let invalid = |why: String| Error::Unauthorized(format!("keys of {server}: {why}"));
    let document: ServerSigningKeys = raw
        .deserialize()
        .map_err(|e| invalid(format!("not a keys document: {e}")))?;
    if document.server_name != server {
        return Err(invalid(format!("named {}", document.server_name)));
    }
    let object: CanonicalJsonObject =
        serde_json::from_str(raw.json().get()).map_err(|e| invalid(e.to_string()))?;
    let own: BTreeMap<String, Base64> = document
        .verify_keys
        .iter()
        .map(|(id, key)| (id.to_string(), key.key.clone()))
        .collect();
    // Only the server's own signatures count here: verify_json checks every entity in the
    // map, so the notary's is checked separately.
    let mut own_only = object.clone();
    if let Some(ruma::CanonicalJsonValue::Object(signatures)) = own_only.get_mut("signatures") {
        signatures.retain(|name, _| name == server.as_str());
    }
    verify_json(&PublicKeyMap::from([(server.to_string(), own)]), &own_only)
        .map_err(|e| invalid(format!("not signed by its own keys: {e}")))?;
    if let Some((notary, notary_keys)) = notary {
        let mut by_notary = object.clone();
        if let Some(ruma::CanonicalJsonValue::Object(signatures)) = by_notary.get_mut("signatures")
        {
            signatures.retain(|name, _| name == notary.as_str());
        }
        let current: BTreeMap<String, Base64> = notary_keys
            .keys
            .iter()
            .filter(|(_, (_, expired))| expired.is_none())
            .map(|(id, (key, _))| (id.clone(), key.clone()))
            .collect();
        verify_json(
            &PublicKeyMap::from([(notary.to_string(), current)]),
            &by_notary,
        )
        .map_err(|e| invalid(format!("not signed by the notary {notary}: {e}")))?;
    }
    Ok(key_set(document, object))
}

fn key_set(document: ServerSigningKeys, object: CanonicalJsonObject) -> ServerKeySet {
    let mut keys = BTreeMap::new();
    for (id, key) in document.verify_keys {
        keys.insert(id.to_string(), (key.key, None));
    }
    for (id, old) in document.old_verify_keys {
        let expired = i64::from(old.expired_ts.get());
        keys.entry(id.to_string())
            .or_insert((old.key, Some(expired)));
    }
    let valid_until = i64::from(document.valid_until_ts.get());
    ServerKeySet {
        object,
        keys,
        valid_until_ts: valid_until.min(now_ms() + MAX_VALIDITY_MS),
    }
}
