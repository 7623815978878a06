//! In-memory caches in front of the store. They grow as they fill (a loaded but idle tenant
//! costs almost nothing) and, where entries can go stale, invalidation is ordered with the
//! store writes so that a lookup racing with a change never caches the old answer.

use std::hash::Hash;
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

/// An LRU cache bounded to `capacity` that allocates as it fills: `LruCache::new` reserves the
/// whole capacity up front, which every loaded tenant would pay for while idle.
pub(crate) fn growing_lru<K: Hash + Eq, V>(capacity: usize) -> LruCache<K, V> {
    let mut cache = LruCache::unbounded();
    cache.resize(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN));
    cache
}

/// A cache of store reads that writers invalidate. Readers take the generation before they
/// read the store and hand it to [`GuardedLru::put`]; writers call
/// [`GuardedLru::invalidate`] after their change is stored. A read that started before the
/// change then can't cache what it saw.
pub(crate) struct GuardedLru<K: Hash + Eq, V> {
    inner: Mutex<Guarded<K, V>>,
}

struct Guarded<K: Hash + Eq, V> {
    generation: u64,
    entries: LruCache<K, V>,
}

impl<K: Hash + Eq, V: Clone> GuardedLru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Guarded {
                generation: 0,
                entries: growing_lru(capacity),
            }),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.lock().entries.get(key).cloned()
    }

    /// The generation to hand to [`GuardedLru::put`] for a store read started now.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Caches what the store said at `generation`, unless something changed since.
    pub(crate) fn put(&self, generation: u64, key: K, value: V) {
        let mut inner = self.inner.lock();
        if inner.generation == generation {
            inner.entries.put(key, value);
        }
    }

    /// Forgets everything; call after the change is stored.
    pub(crate) fn invalidate(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}
