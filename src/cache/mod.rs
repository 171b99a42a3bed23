//! The shared cache, on pingora-cache.
//!
//! - [`key`]: what identifies a stored response;
//! - [`entry`]: one stored response and what a fill needs to know;
//! - [`storage`]: the bounded in-memory `Storage` (index, budget, eviction, purge);
//! - [`tag_index`]: which stored URLs carry which cache tag, for purge by tag;
//! - [`disk`]: the disk tier under the memory tier (`cache.disk`);
//! - [`pass_through`]: the keys whose responses say `no-store`, learned.

pub mod disk;
pub mod entry;
pub mod key;
pub mod pass_through;
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
    pub disk: Option<&'static disk::DiskStore>,
    pub pass_through: pass_through::PassThrough,
}

impl SharedCache {
    pub fn new(budget: usize, max_object: usize, lock_timeout: Duration) -> SharedCache {
        let store: &'static MemStore = Box::leak(Box::new(MemStore::new(budget, max_object)));
        let lock: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(lock_timeout));
        SharedCache {
            store,
            lock,
            disk: None,
            pass_through: pass_through::PassThrough::default(),
        }
    }

    /// Put a disk tier under the memory tier. It is opened by [`disk::DiskStore::start`] once
    /// the process runs as it will (after `-d` daemonizes: threads do not survive the fork).
    pub fn with_disk(mut self, settings: &crate::config::model::DiskSettings) -> SharedCache {
        let disk: &'static disk::DiskStore = Box::leak(Box::new(disk::DiskStore::new(
            settings.path.clone(),
            disk::Limits {
                budget: settings.budget,
                max_object: settings.max_object_size,
            },
        )));
        self.store.attach_disk(disk);
        self.disk = Some(disk);
        self
    }
}
