//! The shared cache, on pingora-cache.
//!
//! - [`key`]: what identifies a stored response;
//! - [`entry`]: one stored response and what a fill needs to know;
//! - [`storage`]: the bounded in-memory `Storage` (index, budget, eviction, purge);
//! - [`tag_index`]: which stored URLs carry which cache tag, for purge by tag.

pub mod entry;
pub mod key;
pub mod storage;
pub mod tag_index;

use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use std::time::Duration;
use storage::MemStore;

/// The process-wide cache: storage and the lock that coalesces concurrent misses. Both live for
/// the whole process (pingora-cache takes `'static` references) and survive reloads; a reload
/// only changes their limits.
pub struct SharedCache {
    pub store: &'static MemStore,
    pub lock: &'static CacheKeyLockImpl,
}

impl SharedCache {
    pub fn new(budget: usize, max_object: usize, lock_timeout: Duration) -> SharedCache {
        let store: &'static MemStore = Box::leak(Box::new(MemStore::new(budget, max_object)));
        let lock: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(lock_timeout));
        SharedCache { store, lock }
    }
}
