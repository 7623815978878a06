//! Room state: state maps at events, kept compactly as state groups (a snapshot, then deltas
//! of bounded chain length) and cached in memory; and state resolution (v2, ruma-state-res)
//! when a room has several forward extremities.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use maas_store::{NewStateGroup, StateEntry, TenantStore};
use parking_lot::Mutex;
use ruma::events::StateEventType;
use ruma::room_version_rules::{RoomVersionRules, StateResolutionVersion};
use ruma::state_res::{self, StateMap};
use ruma::{EventId, OwnedEventId};

use super::pdu::Pdu;
use crate::{Error, Result};

/// Deltas allowed on top of a snapshot before the next group is a snapshot again: reading a
/// group costs at most this many extra lookups, storing one costs one row per change.
const MAX_DELTA_CHAIN: u32 = 32;
const STATE_CACHE_ENTRIES: usize = 256;
const PDU_CACHE_ENTRIES: usize = 4096;

pub type RoomState = StateMap<OwnedEventId>;

/// Per-tenant caches of state maps and PDUs.
pub struct StateCache {
    groups: Mutex<LruCache<i64, Arc<RoomState>>>,
    pdus: Mutex<LruCache<OwnedEventId, Arc<Pdu>>>,
}

impl Default for StateCache {
    fn default() -> Self {
        let cap = |n| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self {
            groups: Mutex::new(LruCache::new(cap(STATE_CACHE_ENTRIES))),
            pdus: Mutex::new(LruCache::new(cap(PDU_CACHE_ENTRIES))),
        }
    }
}

impl StateCache {
    /// The full state of a state group.
    pub async fn group(&self, store: &dyn TenantStore, id: i64) -> Result<Arc<RoomState>> {
        if let Some(state) = self.groups.lock().get(&id) {
            return Ok(state.clone());
        }
        let entries = store.state_group(id).await?;
        let state = Arc::new(to_state_map(entries)?);
        self.groups.lock().put(id, state.clone());
        Ok(state)
    }

    /// Stores `state` under a new group id, as a delta on `base` when the chain allows.
    pub async fn new_group(
        &self,
        store: &dyn TenantStore,
        room_id: &str,
        base: Option<i64>,
        state: &RoomState,
    ) -> Result<NewStateGroup> {
        let id = store.next_state_group_id().await?;
        let base_info = match base {
            Some(base) => store
                .state_group_info(base)
                .await?
                .map(|(_, len)| (base, len)),
            None => None,
        };
        let group = match base_info {
            Some((base, chain_len)) if chain_len < MAX_DELTA_CHAIN => {
                let base_state = self.group(store, base).await?;
                let delta = state
                    .iter()
                    .filter(|(key, id)| base_state.get(*key) != Some(*id))
                    .map(|(key, id)| entry(key, id))
                    .collect();
                NewStateGroup {
                    id,
                    room_id: room_id.to_owned(),
                    prev_group: Some(base),
                    delta,
                    chain_len: chain_len + 1,
                }
            }
            _ => NewStateGroup {
                id,
                room_id: room_id.to_owned(),
                prev_group: None,
                delta: state.iter().map(|(key, id)| entry(key, id)).collect(),
                chain_len: 0,
            },
        };
        self.groups.lock().put(id, Arc::new(state.clone()));
        Ok(group)
    }

    /// A PDU by id, from the cache or the store.
    pub async fn pdu(&self, store: &dyn TenantStore, id: &EventId) -> Result<Option<Arc<Pdu>>> {
        if let Some(pdu) = self.pdus.lock().get(id) {
            return Ok(Some(pdu.clone()));
        }
        let Some(record) = store.event(id.as_str()).await? else {
            return Ok(None);
        };
        let pdu = Arc::new(Pdu::from_stored(
            &record.event_id,
            &record.room_id,
            &record.pdu,
        )?);
        self.pdus.lock().put(id.to_owned(), pdu.clone());
        Ok(Some(pdu))
    }

    pub fn remember(&self, pdu: Arc<Pdu>) {
        self.pdus.lock().put(pdu.event_id.clone(), pdu);
    }

    /// Drops everything: after a failed commit, cached entries may describe events that were
    /// never stored.
    pub fn clear(&self) {
        self.groups.lock().clear();
        self.pdus.lock().clear();
    }

    /// Drops a cached PDU whose stored form changed (a redaction).
    pub fn forget(&self, id: &EventId) {
        self.pdus.lock().pop(id);
    }
}

fn entry(key: &(StateEventType, String), id: &OwnedEventId) -> StateEntry {
    StateEntry {
        event_type: key.0.to_string(),
        state_key: key.1.clone(),
        event_id: id.to_string(),
    }
}

fn to_state_map(entries: Vec<StateEntry>) -> Result<RoomState> {
    entries
        .into_iter()
        .map(|e| {
            let id = EventId::parse(&e.event_id)
                .map_err(|_| Error::Internal(format!("bad event id in state: {}", e.event_id)))?;
            Ok(((StateEventType::from(e.event_type), e.state_key), id))
        })
        .collect()
}

/// The state after the given forward extremities: theirs if there is one, else the states
/// after each resolved with state resolution v2.
pub async fn resolve(
    cache: &StateCache,
    store: &dyn TenantStore,
    rules: &RoomVersionRules,
    states: Vec<Arc<RoomState>>,
) -> Result<RoomState> {
    if states.len() <= 1 {
        return Ok(states.first().map(|s| (**s).clone()).unwrap_or_default());
    }
    let StateResolutionVersion::V2(v2_rules) = rules.state_res else {
        return Err(Error::Internal(
            "state resolution v1 rooms can't fork here".into(),
        ));
    };
    // Everything resolution may look at: the auth chains of every conflicted or unconflicted
    // event, loaded up front because ruma-state-res asks synchronously.
    let mut events: HashMap<OwnedEventId, Arc<Pdu>> = HashMap::new();
    let mut auth_chains = Vec::new();
    for state in &states {
        let mut chain = HashSet::new();
        let mut todo: Vec<OwnedEventId> = state.values().cloned().collect();
        while let Some(id) = todo.pop() {
            let Some(pdu) = load(cache, store, &mut events, &id).await? else {
                continue;
            };
            for auth in &pdu.auth_events {
                if chain.insert(auth.clone()) {
                    todo.push(auth.clone());
                }
            }
        }
        auth_chains.push(chain.into_iter().collect());
    }
    let maps: Vec<RoomState> = states.iter().map(|s| (**s).clone()).collect();
    state_res::resolve(
        &rules.authorization,
        &v2_rules,
        maps.iter(),
        auth_chains,
        |id| events.get(id).cloned(),
        |_| None,
    )
    .map_err(|e| Error::Internal(format!("state resolution failed: {e}")))
}

async fn load(
    cache: &StateCache,
    store: &dyn TenantStore,
    events: &mut HashMap<OwnedEventId, Arc<Pdu>>,
    id: &EventId,
) -> Result<Option<Arc<Pdu>>> {
    if let Some(pdu) = events.get(id) {
        return Ok(Some(pdu.clone()));
    }
    let pdu = cache.pdu(store, id).await?;
    if let Some(pdu) = &pdu {
        events.insert(id.to_owned(), pdu.clone());
    }
    Ok(pdu)
}
