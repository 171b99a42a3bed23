//! The tag index: for each cache tag, the primary keys whose stored responses carry it.
//!
//! **What it promises.** Every stored response is listed under each of its tags, from before
//! it becomes visible in the cache until after it has left it, whichever way it leaves
//! (replaced, evicted, purged, invalidated, dropped by a new `Vary`). So a purge by tag never
//! misses a stored response (the bug Souin's users reported: tag purges that silently missed
//! entries after churn). The index may briefly list a key whose responses no longer carry the
//! tag (a response on its way in or out); a purge therefore checks each response's own tags
//! before touching it, and such a listing costs a lookup, never another URL's entry.
//!
//! **How.** The index counts, per tag and key, the responses that carry the tag: the storage
//! [`add`](TagIndex::add)s a response's tags *before* inserting it and
//! [`remove`](TagIndex::remove)s them only *after* the response left the cache (eviction
//! reports from inside the cache, under its shard lock). Counts commute, so two requests
//! racing on one key cannot leave a key unlisted while one of its responses is stored.
//!
//! **Bounds.** A listing exists only while a response carrying the tag is stored or on its way
//! in or out, so the index holds at most (stored responses + fills finishing) × `MAX_TAGS`
//! listings; each stored response pays for its own in its cache weight.
//!
//! **Locking.** One mutex. The storage may take it while holding a cache shard lock (eviction),
//! so it is never held while calling into the cache.

use ahash::RandomState;
use parking_lot::Mutex;
use pingora_cache::key::HashBinary;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Per key, how many of its stored responses (variants) carry the tag.
type Listing = HashMap<HashBinary, u32, RandomState>;

#[derive(Default)]
pub struct TagIndex {
    map: Mutex<HashMap<Arc<str>, Listing, RandomState>>,
    /// (tag, key) listings.
    pairs: AtomicUsize,
}

impl TagIndex {
    /// Count one response of `key` under each of `tags` (before it is stored).
    pub fn add(&self, key: &HashBinary, tags: &[Arc<str>]) {
        if tags.is_empty() {
            return;
        }
        let mut map = self.map.lock();
        for tag in tags {
            let listing = match map.get_mut(&**tag) {
                Some(l) => l,
                None => map.entry(tag.clone()).or_default(),
            };
            let n = listing.entry(*key).or_insert(0);
            if *n == 0 {
                self.pairs.fetch_add(1, Ordering::Relaxed);
            }
            *n += 1;
        }
    }

    /// Uncount one response of `key` under each of `tags` (after it left the cache).
    pub fn remove(&self, key: &HashBinary, tags: &[Arc<str>]) {
        if tags.is_empty() {
            return;
        }
        let mut map = self.map.lock();
        for tag in tags {
            let Some(listing) = map.get_mut(&**tag) else {
                continue;
            };
            if let Some(n) = listing.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    listing.remove(key);
                    self.pairs.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if listing.is_empty() {
                map.remove(&**tag);
            }
        }
    }

    /// The keys listed under `tag` (a copy: the caller purges without holding the lock).
    pub fn keys(&self, tag: &str) -> Vec<HashBinary> {
        self.map
            .lock()
            .get(tag)
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }

    /// (tag, key) listings held.
    pub fn len(&self) -> usize {
        self.pairs.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct tags held.
    pub fn tags(&self) -> usize {
        self.map.lock().len()
    }

    /// Every (tag, key) listing, for consistency checks.
    #[cfg(test)]
    pub(crate) fn listings(&self) -> std::collections::BTreeSet<(String, HashBinary)> {
        self.map
            .lock()
            .iter()
            .flat_map(|(t, l)| l.keys().map(move |k| (t.to_string(), *k)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn a_key_stays_listed_while_any_of_its_responses_carries_the_tag() {
        let idx = TagIndex::default();
        let k = [1; 16];
        idx.add(&k, &tags(&["a", "b"]));
        idx.add(&k, &tags(&["a"]));
        assert_eq!(idx.len(), 2);
        idx.remove(&k, &tags(&["a", "b"]));
        assert_eq!(idx.keys("a"), vec![k], "the second response still has 'a'");
        assert!(idx.keys("b").is_empty());
        idx.remove(&k, &tags(&["a"]));
        assert!(idx.is_empty() && idx.tags() == 0);
    }

    #[test]
    fn removing_what_was_never_added_changes_nothing() {
        let idx = TagIndex::default();
        idx.add(&[1; 16], &tags(&["a"]));
        idx.remove(&[2; 16], &tags(&["a", "z"]));
        assert_eq!(idx.keys("a"), vec![[1; 16]]);
        assert_eq!(idx.len(), 1);
    }
}
