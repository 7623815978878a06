//! Room state: state maps at events, kept compactly as state groups (a snapshot, then deltas
//! of bounded chain length) and cached in memory; and state resolution (v2, ruma-state-res)
//! when a room has several forward extremities.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use ruma::events::StateEventType;
use ruma::room_version_rules::{RoomVersionRules, StateResolutionVersion};
use ruma::state_res::{self, StateMap};
use ruma::{EventId, OwnedEventId};

use super::pdu::Pdu;
use crate::store::{NewStateGroup, StateEntry, TenantStore};
use crate::{Error, Result};

/// Deltas allowed on top of a snapshot before the next group is a snapshot again: reading a
/// group costs at most this many extra lookups, storing one costs one row per change.
const MAX_DELTA_CHAIN: u32 = 32;
const STATE_CACHE_ENTRIES: usize = 256;
/// Bounds of the cached state maps: a count, and a total of entries, because a state map is as
/// big as its room (a handful of entries or tens of thousands, ~150 bytes each). The count
/// covers a user syncing a few thousand small rooms; the total keeps a tenant's cache to a few
/// megabytes, however big its rooms.
const CACHED_GROUPS: usize = 4096;
const CACHED_GROUP_ENTRIES: usize = 32 * 1024;
const PDU_CACHE_ENTRIES: usize = 4096;
/// New groups kept until stored at most: the committer stores them within a batch or two; a
/// group whose event failed before reaching it is pushed out by newer ones.
const UNSTORED_GROUPS: usize = 1024;
/// State group ids reserved in the store at once.
const GROUP_ID_BLOCK: i64 = 64;

pub type RoomState = StateMap<OwnedEventId>;

/// Per-tenant caches of state maps and PDUs.
pub(crate) struct StateCache {
    groups: Mutex<GroupCache>,
    /// Groups built for events not stored yet: the cache may let them go (a big room's states
    /// fill it fast) while the committer's steps still read them, and the store can't answer
    /// for them before their batch is written.
    unstored: Mutex<BTreeMap<i64, Arc<RoomState>>>,
    /// Delta chain length of recent groups: new groups are built on them before the store
    /// has them.
    chains: Mutex<LruCache<i64, u32>>,
    pdus: Mutex<LruCache<OwnedEventId, Arc<Pdu>>>,
    /// State group ids reserved in the store and not handed out yet: `(next, last)`.
    ids: Mutex<(i64, i64)>,
}

impl Default for StateCache {
    fn default() -> Self {
        Self {
            groups: Mutex::new(GroupCache::default()),
            unstored: Mutex::default(),
            chains: Mutex::new(crate::cache::growing_lru(STATE_CACHE_ENTRIES)),
            pdus: Mutex::new(crate::cache::growing_lru(PDU_CACHE_ENTRIES)),
            ids: Mutex::new((1, 0)),
        }
    }
}

impl StateCache {
    /// The full state of a state group.
    pub(crate) async fn group(&self, store: &dyn TenantStore, id: i64) -> Result<Arc<RoomState>> {
        if let Some(state) = self.groups.lock().get(&id) {
            return Ok(state.clone());
        }
        if let Some(state) = self.unstored.lock().get(&id) {
            return Ok(state.clone());
        }
        let entries = store.state_group(id).await?;
        let state = Arc::new(to_state_map(entries)?);
        self.groups.lock().put(id, state.clone());
        Ok(state)
    }

    /// The full state of each group in `ids`: those not cached are read in one query.
    pub(crate) async fn groups(
        &self,
        store: &dyn TenantStore,
        ids: &[i64],
    ) -> Result<HashMap<i64, Arc<RoomState>>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let mut cache = self.groups.lock();
            let unstored = self.unstored.lock();
            for id in ids {
                match cache.get(id).or_else(|| unstored.get(id)) {
                    Some(state) => {
                        found.insert(*id, state.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        for (id, entries) in store.state_groups(&missing).await? {
            let state = Arc::new(to_state_map(entries)?);
            self.groups.lock().put(id, state.clone());
            found.insert(id, state);
        }
        Ok(found)
    }

    /// Stores `state` under a new group id, as a delta on `base` when the chain allows.
    pub(crate) async fn new_group(
        &self,
        store: &dyn TenantStore,
        room_id: &str,
        base: Option<i64>,
        state: &RoomState,
    ) -> Result<NewStateGroup> {
        let id = self.next_group_id(store).await?;
        let base_info = match base {
            Some(base) => self.chain_len(store, base).await?.map(|len| (base, len)),
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
        let state = Arc::new(state.clone());
        self.groups.lock().put(id, state.clone());
        let mut unstored = self.unstored.lock();
        unstored.insert(id, state);
        while unstored.len() > UNSTORED_GROUPS {
            unstored.pop_first();
        }
        drop(unstored);
        self.chains.lock().put(id, group.chain_len);
        Ok(group)
    }

    /// A fresh state group id, from a block reserved in the store: one write per block, not
    /// per state event.
    pub(crate) async fn next_group_id(&self, store: &dyn TenantStore) -> Result<i64> {
        {
            let mut ids = self.ids.lock();
            if ids.0 <= ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let last = store.reserve_state_groups(GROUP_ID_BLOCK).await?;
        let first = last - GROUP_ID_BLOCK + 1;
        *self.ids.lock() = (first + 1, last);
        Ok(first)
    }

    /// The delta chain length of group `id`, `None` when it doesn't exist.
    async fn chain_len(&self, store: &dyn TenantStore, id: i64) -> Result<Option<u32>> {
        if let Some(len) = self.chains.lock().get(&id) {
            return Ok(Some(*len));
        }
        let len = store.state_group_info(id).await?.map(|(_, len)| len);
        if let Some(len) = len {
            self.chains.lock().put(id, len);
        }
        Ok(len)
    }

    /// A PDU by id, from the cache or the store.
    pub(crate) async fn pdu(
        &self,
        store: &dyn TenantStore,
        id: &EventId,
    ) -> Result<Option<Arc<Pdu>>> {
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

    pub(crate) fn remember(&self, pdu: Arc<Pdu>) {
        self.pdus.lock().put(pdu.event_id.clone(), pdu);
    }

    /// The groups `ids` are stored: the store answers for them from now on.
    pub(crate) fn stored(&self, ids: impl Iterator<Item = i64>) {
        let mut unstored = self.unstored.lock();
        for id in ids {
            unstored.remove(&id);
        }
    }

    /// Drops the cached states of stored groups, which changed in the store (a room's members
    /// added once fetched); groups not stored yet stay.
    pub(crate) fn forget_stored_groups(&self) {
        self.groups.lock().clear();
    }

    /// Drops everything: after a failed commit, cached entries may describe events that were
    /// never stored.
    pub(crate) fn clear(&self) {
        self.groups.lock().clear();
        self.unstored.lock().clear();
        self.chains.lock().clear();
        self.pdus.lock().clear();
    }

    /// Drops a cached PDU whose stored form changed (a redaction).
    pub(crate) fn forget(&self, id: &EventId) {
        self.pdus.lock().pop(id);
    }
}

/// State maps of recent groups, least recently used first out, within both bounds.
struct GroupCache {
    maps: LruCache<i64, Arc<RoomState>>,
    /// Entries of all cached maps together.
    entries: usize,
}

impl Default for GroupCache {
    fn default() -> Self {
        Self {
            maps: crate::cache::growing_lru(CACHED_GROUPS),
            entries: 0,
        }
    }
}

impl GroupCache {
    fn get(&mut self, id: &i64) -> Option<&Arc<RoomState>> {
        self.maps.get(id)
    }

    fn put(&mut self, id: i64, state: Arc<RoomState>) {
        self.entries += state.len();
        // `push` hands back what it displaced: the old map of `id`, or the least recently
        // used one when the count was reached.
        if let Some((_, old)) = self.maps.push(id, state) {
            self.entries -= old.len();
        }
        // The newest map stays even when it alone is over the total: it is about to be used.
        while self.entries > CACHED_GROUP_ENTRIES && self.maps.len() > 1 {
            match self.maps.pop_lru() {
                Some((_, old)) => self.entries -= old.len(),
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.maps.clear();
        self.entries = 0;
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
pub(crate) async fn resolve(
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
        |conflicted| {
            Some(
                conflicted_subgraph(&events, conflicted)
                    .into_iter()
                    .collect(),
            )
        },
    )
    .map_err(|e| Error::Internal(format!("state resolution failed: {e}")))
}

/// The conflicted state subgraph (spec: room version 12, "State resolution"): the events of
/// the auth DAG that are both an ancestor of a conflicted state event and a descendant of one,
/// the conflicted events included. `events` holds the auth chains of every state event.
fn conflicted_subgraph(
    events: &HashMap<OwnedEventId, Arc<Pdu>>,
    conflicted: &HashMap<(StateEventType, String), Vec<OwnedEventId>>,
) -> HashSet<OwnedEventId> {
    let roots: HashSet<&OwnedEventId> = conflicted.values().flatten().collect();
    // Ancestors of the conflicted events, themselves included.
    let mut ancestors: HashSet<&OwnedEventId> = HashSet::new();
    let mut todo: Vec<&OwnedEventId> = roots.iter().copied().collect();
    while let Some(id) = todo.pop() {
        if !ancestors.insert(id) {
            continue;
        }
        if let Some(pdu) = events.get(id) {
            todo.extend(pdu.auth_events.iter());
        }
    }
    // Of those, the ones a conflicted event is an ancestor of (or that are one).
    let mut descends: HashMap<&OwnedEventId, bool> = HashMap::new();
    for id in &ancestors {
        descends_from(id, &roots, events, &mut descends);
    }
    ancestors
        .into_iter()
        .filter(|id| descends.get(id).copied().unwrap_or(false))
        .cloned()
        .collect()
}

/// Whether `id` is one of `roots` or has one in its auth chain; memoised in `known`, walked
/// without recursion (auth chains can be deep).
fn descends_from<'a>(
    id: &'a OwnedEventId,
    roots: &HashSet<&OwnedEventId>,
    events: &'a HashMap<OwnedEventId, Arc<Pdu>>,
    known: &mut HashMap<&'a OwnedEventId, bool>,
) -> bool {
    let mut stack: Vec<(&'a OwnedEventId, bool)> = vec![(id, false)];
    // Events being walked: a cycle (which no valid auth DAG has) ends there.
    let mut walking: HashSet<&OwnedEventId> = HashSet::new();
    while let Some((current, expanded)) = stack.pop() {
        if known.contains_key(current) || (!expanded && !walking.insert(current)) {
            continue;
        }
        if roots.contains(current) {
            known.insert(current, true);
            continue;
        }
        let parents: &[OwnedEventId] = events.get(current).map_or(&[], |p| &p.auth_events);
        if expanded {
            let any = parents
                .iter()
                .any(|p| known.get(p).copied().unwrap_or(false));
            known.insert(current, any);
            continue;
        }
        stack.push((current, true));
        for parent in parents {
            if !known.contains_key(parent) {
                stack.push((parent, false));
            }
        }
    }
    known.get(id).copied().unwrap_or(false)
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
