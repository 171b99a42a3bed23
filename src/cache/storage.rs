//! The in-memory `Storage` behind pingora-cache.
//!
//! - One index entry (a [`Slot`]) per primary key, holding every stored variant of that URL,
//!   so a purge or an invalidation removes all variants at once and a lookup resolves `Vary`
//!   without a second probe.
//! - The index is `quick_cache` (sharded, S3-FIFO eviction: a scan of one-hit URLs passes
//!   through its probation queue without flushing the popular set), weighted by every byte an
//!   entry holds: body, header, key, URL, tags and bookkeeping.
//! - An eighth of the budget is kept for responses being written (fills in flight); a fill that
//!   does not fit, or grows past `max_object_size`, is abandoned quietly: the client still gets
//!   the response, the cache just does not keep it. The index gets the rest, so stored plus
//!   in-flight bytes never exceed the budget.
//! - Bodies are copied once, at fill, into one exactly-sized buffer: a hit hands out clones of
//!   that `Bytes` (no copy), and a small cached body never pins a large network read buffer.
//! - Nothing panics when an entry vanishes under a request (evicted or purged during a
//!   revalidation): the update is simply dropped.
//! - Purges go by URL, URL prefix or cache tag, and either remove (hard) or mark stale (soft).
//!   The [`TagIndex`] lists every stored response under its tags through every way in and out
//!   of the cache (see its module). A prefix purge visits every stored URL: its cost grows
//!   with the number of URLs stored (each step holds one shard's read lock for one slot), not
//!   with the number it matches.
//! - A fill that started before a purge and finishes after it is purged too (recent purges are
//!   remembered; when too many happened to remember them all, such a fill is not stored).

use super::disk::body::FileBody;
use super::disk::spill::Spill;
use super::disk::{entry_from, DiskBody, DiskStore};
use super::entry::{Encoded, Entry, FillPolicy, Tags};
use super::tag_index::TagIndex;
use crate::http::coding::ContentEncoding;
use crate::http::headers::{content_length, set_content_etag};
use crate::http::usability::{usability, Use};
use crate::http::vary::{variance, VarySpec};
use crate::metrics::METRICS;
use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_error::Result;
use quick_cache::sync::{Cache as Index, EntryAction, EntryResult};
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Index shards at most: enough to keep lock contention negligible at the thread counts etagate
/// runs. Small budgets get fewer, so that each shard still holds many objects.
const MAX_SHARDS: usize = 8;
/// Budget per shard below which shards are merged.
const MIN_SHARD_BYTES: usize = 32 << 20;
/// Share of each shard for newly stored responses (S3-FIFO's small queue). quick_cache's default
/// (3%) suits many small items; with whole HTTP responses as items it can be smaller than one
/// object, and a new response would then be evicted before its second request could promote
/// it. Ten percent is the size the S3-FIFO paper uses.
const NEW_ITEMS_SHARE: f64 = 0.10;

fn shards_for(budget: usize) -> usize {
    (budget / MIN_SHARD_BYTES)
        .clamp(1, MAX_SHARDS)
        .next_power_of_two()
        .min(MAX_SHARDS)
}
/// The fraction of the budget kept for fills in flight.
const FILL_RESERVE_FRACTION: usize = 8;
/// Variants kept per URL; beyond this the oldest goes (a header with many values must not turn
/// one URL into an unbounded list).
const MAX_VARIANTS: usize = 32;
/// Purges remembered so a fill that started before one cannot store the purged content...
const RECENT_PURGES: usize = 4096;
/// ...and the bytes of their tags and prefixes at most.
const RECENT_PURGE_BYTES: usize = 1 << 20;

/// What a purge does to the stored responses it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurgeMode {
    /// Remove them.
    #[default]
    Hard,
    /// Mark them stale: the next request revalidates with the origin, and only stale-if-error
    /// may still serve them (see `Freshness::invalidate`).
    Soft,
}

impl PurgeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeMode::Hard => "hard",
            PurgeMode::Soft => "soft",
        }
    }

    /// The stronger of two purges of one response.
    fn max(self, other: PurgeMode) -> PurgeMode {
        if self == PurgeMode::Hard || other == PurgeMode::Hard {
            PurgeMode::Hard
        } else {
            PurgeMode::Soft
        }
    }
}

/// All stored variants of one primary key. Immutable: updates replace the whole slot.
#[derive(Debug, Default)]
pub struct Slot {
    variants: Vec<Arc<Entry>>,
    weight: u64,
}

impl Slot {
    fn new(variants: Vec<Arc<Entry>>) -> Slot {
        let weight = variants.iter().map(|e| e.weight as u64).sum::<u64>() + 64;
        Slot { variants, weight }
    }

    /// The URL its responses were stored under (all variants share one key, so one URL).
    fn url(&self) -> Option<&str> {
        self.variants.iter().find_map(|e| e.url.as_deref())
    }
}

#[derive(Clone)]
struct SlotWeight;

impl Weighter<HashBinary, Arc<Slot>> for SlotWeight {
    fn weight(&self, _key: &HashBinary, slot: &Arc<Slot>) -> u64 {
        slot.weight.max(1)
    }
}

/// Keeps the entry count and the tag index in step as slots are evicted. Called by quick_cache
/// under the shard's write lock: it touches only the counter and the tag index's own lock,
/// never the cache.
#[derive(Clone)]
struct Tracking {
    entries: Arc<AtomicUsize>,
    tags: Arc<TagIndex>,
}

impl Lifecycle<HashBinary, Arc<Slot>> for Tracking {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), key: HashBinary, slot: Arc<Slot>) {
        self.entries
            .fetch_sub(slot.variants.len(), Ordering::Relaxed);
        METRICS.cache_evictions.inc_by(slot.variants.len() as u64);
        for e in &slot.variants {
            self.tags.remove(&key, &e.tags);
        }
    }
}

/// Outcome of looking a request up directly (the fast path).
pub enum Found {
    /// No response stored for the URL.
    UriMiss,
    /// Responses stored for the URL, none for this request's variant.
    VaryMiss,
    Hit(Arc<Entry>),
}

/// What a remembered purge matched.
enum Target {
    Key(HashBinary),
    Tag(Arc<str>),
    Prefix(Arc<str>),
}

struct Recent {
    epoch: u64,
    target: Target,
    mode: PurgeMode,
}

impl Recent {
    fn bytes(&self) -> usize {
        match &self.target {
            Target::Key(_) => 16,
            Target::Tag(s) | Target::Prefix(s) => s.len(),
        }
    }

    fn matches(&self, primary: &HashBinary, tags: &Tags, url: Option<&str>) -> bool {
        match &self.target {
            Target::Key(k) => k == primary,
            Target::Tag(t) => tags.iter().any(|have| have == t),
            Target::Prefix(p) => url.is_some_and(|u| u.starts_with(&**p)),
        }
    }
}

/// The purges recent enough that a fill still running may have started before them.
#[derive(Default)]
struct RecentPurges {
    /// In epoch order (pushed under the lock that hands out epochs).
    list: VecDeque<Recent>,
    bytes: usize,
    /// The latest epoch no longer remembered (0: none forgotten).
    forgotten: u64,
}

pub struct MemStore {
    index: Index<HashBinary, Arc<Slot>, SlotWeight, ahash::RandomState, Tracking>,
    entries: Arc<AtomicUsize>,
    tags: Arc<TagIndex>,
    inflight: AtomicUsize,
    budget: AtomicUsize,
    max_object: AtomicUsize,
    next_id: AtomicU64,
    purge_epoch: AtomicU64,
    recent_purges: Mutex<RecentPurges>,
    /// Held while the index's capacity is set, so that a reload's new budget and an eviction
    /// after an entry grew (`keep_encoded`) never undo each other.
    capacity: Mutex<()>,
    /// The disk tier under this one, when configured: what is stored here is written there,
    /// and purges apply there too.
    disk: std::sync::OnceLock<&'static DiskStore>,
}

impl MemStore {
    pub fn new(budget: usize, max_object: usize) -> MemStore {
        let reserve = budget / FILL_RESERVE_FRACTION;
        let capacity = (budget - reserve) as u64;
        let entries = Arc::new(AtomicUsize::new(0));
        let tags = Arc::new(TagIndex::default());
        let tracking = Tracking {
            entries: entries.clone(),
            tags: tags.clone(),
        };
        let shards = shards_for(budget);
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity((budget / 4096).max(shards * 32))
            .weight_capacity(capacity)
            .hot_allocation(1.0 - NEW_ITEMS_SHARE)
            .build();
        let index = match options {
            Ok(o) => Index::with_options(o, SlotWeight, ahash::RandomState::new(), tracking),
            // Only reachable with a zero capacity, which config validation rules out.
            Err(_) => Index::with(
                shards * 32,
                capacity,
                SlotWeight,
                ahash::RandomState::new(),
                tracking,
            ),
        };
        METRICS.cache_budget_bytes.set(budget as i64);
        MemStore {
            index,
            entries,
            tags,
            inflight: AtomicUsize::new(0),
            budget: AtomicUsize::new(budget),
            max_object: AtomicUsize::new(max_object),
            next_id: AtomicU64::new(1),
            purge_epoch: AtomicU64::new(0),
            disk: std::sync::OnceLock::new(),
            recent_purges: Mutex::new(RecentPurges::default()),
            capacity: Mutex::new(()),
        }
    }

    /// Apply a new budget (evicting down to it when lowered) and object size limit.
    pub fn set_limits(&self, budget: usize, max_object: usize) {
        let _capacity = self.capacity.lock();
        let reserve = budget / FILL_RESERVE_FRACTION;
        self.budget.store(budget, Ordering::Release);
        self.max_object.store(max_object, Ordering::Release);
        self.index.set_capacity((budget - reserve) as u64);
        METRICS.cache_budget_bytes.set(budget as i64);
    }

    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Acquire)
    }

    /// Bytes held: stored entries plus fills in flight.
    pub fn bytes(&self) -> usize {
        self.index.weight() as usize + self.inflight.load(Ordering::Acquire)
    }

    /// Stored responses (variants count separately).
    pub fn objects(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// (tag, URL) listings in the tag index.
    pub fn tag_index_entries(&self) -> usize {
        self.tags.len()
    }

    /// Refresh the cache gauges (called when metrics are scraped).
    pub fn publish_metrics(&self) {
        METRICS.cache_objects.set(self.objects() as i64);
        METRICS.cache_bytes.set(self.bytes() as i64);
        METRICS.cache_budget_bytes.set(self.budget() as i64);
        METRICS
            .cache_tag_index_entries
            .set(self.tag_index_entries() as i64);
    }

    /// Find the stored response a request selects.
    pub fn find(&self, primary: &HashBinary, req: &HeaderMap) -> Found {
        let Some(slot) = self.index.get(primary) else {
            return Found::UriMiss;
        };
        let wanted = match slot.variants.first().map(|e| &e.vary) {
            Some(VarySpec::Headers(names)) => Some(variance(names, req)),
            _ => None,
        };
        match slot.variants.iter().find(|e| e.variance == wanted) {
            Some(e) => Found::Hit(e.clone()),
            None if slot.variants.is_empty() => Found::UriMiss,
            None => Found::VaryMiss,
        }
    }

    /// The variance a request has for the URL's stored responses (`None` when they do not vary).
    /// Without a response in memory, the disk tier's `Vary` (a response kept on disk only).
    pub fn variance_for(&self, primary: &HashBinary, req: &HeaderMap) -> Option<HashBinary> {
        let Some(slot) = self.index.peek(primary) else {
            return self
                .disk()
                .and_then(|d| d.variance_for(primary, req))
                .flatten();
        };
        match slot.variants.first().map(|e| &e.vary) {
            Some(VarySpec::Headers(names)) => Some(variance(names, req)),
            _ => None,
        }
    }

    /// Remember a purge for the fills still running; its epoch.
    fn remember(&self, target: Target, mode: PurgeMode) -> u64 {
        let mut recent = self.recent_purges.lock();
        // Handed out under the lock, so the list stays in epoch order.
        let epoch = self.purge_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let r = Recent {
            epoch,
            target,
            mode,
        };
        recent.bytes += r.bytes();
        recent.list.push_back(r);
        while recent.list.len() > RECENT_PURGES || recent.bytes > RECENT_PURGE_BYTES {
            let Some(old) = recent.list.pop_front() else {
                break;
            };
            recent.bytes -= old.bytes();
            recent.forgotten = old.epoch;
        }
        epoch
    }

    /// Whether a purge after epoch `since` matches a response of `primary` stored under
    /// `policy`, and the strongest one; with the epoch looked up to. A fill older than the
    /// purges remembered counts as hard-purged: storing it could undo a purge.
    fn purged_since(
        &self,
        primary: &HashBinary,
        tags: &Tags,
        url: Option<&str>,
        since: u64,
    ) -> (Option<PurgeMode>, u64) {
        if self.purge_epoch.load(Ordering::Acquire) == since {
            return (None, since);
        }
        let recent = self.recent_purges.lock();
        let now = self.purge_epoch.load(Ordering::Acquire);
        if recent.forgotten > since {
            return (Some(PurgeMode::Hard), now);
        }
        let mode = recent
            .list
            .iter()
            .rev()
            .take_while(|r| r.epoch > since)
            .filter(|r| r.matches(primary, tags, url))
            .map(|r| r.mode)
            .reduce(PurgeMode::max);
        (mode, now)
    }

    /// Put the disk tier under this one (once, at start).
    pub fn attach_disk(&self, disk: &'static DiskStore) {
        let _ = self.disk.set(disk);
    }

    pub fn disk(&self) -> Option<&'static DiskStore> {
        self.disk.get().copied()
    }

    /// The purge epoch now.
    #[cfg(test)]
    fn purge_epoch(&self) -> u64 {
        self.purge_epoch.load(Ordering::Acquire)
    }

    /// A response read back from the disk tier after purge epoch `since`, stored here again
    /// (the memory tier's own rules apply: too large for it, it is served but not kept). Not
    /// written back to disk. `None` when a purge since the read removed it (the disk's copy
    /// goes with the purge's own job); a soft purge since marks it stale.
    fn promote(&self, primary: HashBinary, entry: Entry, since: u64) -> Option<Arc<Entry>> {
        let url = entry.url.clone();
        let (entry, checked) = self.after_purges(&primary, entry, since)?;
        let entry = Arc::new(entry);
        if entry.body.len() <= self.max_object() {
            self.insert_here(primary, entry.clone());
            // As after a fill: a purge between the check and the insert applies to this copy.
            if let (Some(mode), _) =
                self.purged_since(&primary, &entry.tags, url.as_deref(), checked)
            {
                let id = entry.id;
                self.purge_variants(&primary, mode, |e| e.id == id);
                if mode == PurgeMode::Hard {
                    return None;
                }
            }
        }
        Some(entry)
    }

    /// A response read back from the disk tier after purge epoch `since`, as the purges since
    /// left it: `None` when one removed it, marked stale when one marked it. With the epoch
    /// checked up to.
    fn after_purges(
        &self,
        primary: &HashBinary,
        mut entry: Entry,
        since: u64,
    ) -> Option<(Entry, u64)> {
        let (purged, checked) =
            self.purged_since(primary, &entry.tags, entry.url.as_deref(), since);
        match purged {
            Some(PurgeMode::Hard) => return None,
            Some(PurgeMode::Soft) => entry.freshness.invalidate(SystemTime::now()),
            None => {}
        }
        Some((entry, checked))
    }

    /// Largest response this tier keeps.
    fn max_object(&self) -> usize {
        self.max_object.load(Ordering::Acquire)
    }

    /// Remove every stored variant of a URL (a hard purge, or an unsafe request's
    /// invalidation). Returns how many were removed.
    pub fn purge_primary(&self, primary: &HashBinary) -> usize {
        let epoch = self.remember(Target::Key(*primary), PurgeMode::Hard);
        if let Some(d) = self.disk() {
            d.remove_key(primary);
            d.purged_through(epoch);
        }
        match self.index.remove(primary) {
            Some((_, slot)) => {
                self.left(primary, &slot.variants);
                slot.variants.len()
            }
            None => 0,
        }
    }

    /// Purge the stored variants of one URL. Returns how many were removed (hard) or newly
    /// marked stale (soft).
    pub fn purge_url(&self, primary: &HashBinary, mode: PurgeMode) -> usize {
        match mode {
            PurgeMode::Hard => self.purge_primary(primary),
            PurgeMode::Soft => {
                let epoch = self.remember(Target::Key(*primary), mode);
                if let Some(d) = self.disk() {
                    d.soft_purge_key(primary);
                    d.purged_through(epoch);
                }
                self.purge_variants(primary, mode, |_| true)
            }
        }
    }

    /// Purge every stored response carrying `tag` (exact match), and nothing else: a URL
    /// whose other variants lack the tag keeps them. Returns how many were removed (hard) or
    /// newly marked stale (soft).
    pub fn purge_tag(&self, tag: &str, mode: PurgeMode) -> usize {
        // Remembered first: a fill that checks after this sees it; one that checked before
        // has already listed its key, which the lookup below then finds.
        let epoch = self.remember(Target::Tag(Arc::from(tag)), mode);
        if let Some(d) = self.disk() {
            d.purge_tag(tag, mode);
            d.purged_through(epoch);
        }
        self.tags
            .keys(tag)
            .iter()
            .map(|k| self.purge_variants(k, mode, |e| e.has_tag(tag)))
            .sum()
    }

    /// Purge every stored response whose URL (`scheme://host[:port]/path?query`, as keyed)
    /// starts with `prefix`. Visits every stored URL. Returns how many were removed (hard) or
    /// newly marked stale (soft).
    pub fn purge_prefix(&self, prefix: &str, mode: PurgeMode) -> usize {
        let epoch = self.remember(Target::Prefix(Arc::from(prefix)), mode);
        if let Some(d) = self.disk() {
            d.purge_prefix(prefix, mode);
            d.purged_through(epoch);
        }
        let matching: Vec<HashBinary> = self
            .index
            .iter()
            .filter(|(_, slot)| slot.url().is_some_and(|u| u.starts_with(prefix)))
            .map(|(k, _)| k)
            .collect();
        let matches = |e: &Entry| e.url.as_deref().is_some_and(|u| u.starts_with(prefix));
        matching
            .iter()
            .map(|k| self.purge_variants(k, mode, matches))
            .sum()
    }

    /// Apply a purge to the variants of `primary` that `select` picks, deciding on the variants
    /// as stored at that moment (an index listing may be out of date; the entry's own tags and
    /// URL are not).
    fn purge_variants(
        &self,
        primary: &HashBinary,
        mode: PurgeMode,
        select: impl Fn(&Entry) -> bool,
    ) -> usize {
        let now = SystemTime::now();
        let mut removed: Vec<Arc<Entry>> = Vec::new();
        let mut marked = 0;
        let result = self.index.entry(primary, None, |_, slot: &mut Arc<Slot>| {
            if !slot.variants.iter().any(|e| select(e)) {
                return EntryAction::Retain(());
            }
            match mode {
                PurgeMode::Hard => {
                    let (gone, kept): (Vec<_>, Vec<_>) =
                        slot.variants.iter().cloned().partition(|e| select(e));
                    removed = gone;
                    if kept.is_empty() {
                        return EntryAction::Remove;
                    }
                    *slot = Arc::new(Slot::new(kept));
                }
                PurgeMode::Soft => {
                    let variants = slot
                        .variants
                        .iter()
                        .map(|e| {
                            if select(e) && !e.freshness.invalidated {
                                marked += 1;
                                Arc::new(e.invalidated(now))
                            } else {
                                e.clone()
                            }
                        })
                        .collect();
                    if marked > 0 {
                        *slot = Arc::new(Slot::new(variants));
                    }
                }
            }
            EntryAction::Retain(())
        });
        // Nothing stored under the key: the placeholder the lookup left goes with the guard.
        if let EntryResult::Vacant(guard) = result {
            drop(guard);
        }
        self.left(primary, &removed);
        removed.len() + marked
    }

    /// Account for variants that left the cache (not by eviction, which [`Tracking`] sees).
    fn left(&self, primary: &HashBinary, variants: &[Arc<Entry>]) {
        if variants.is_empty() {
            return;
        }
        self.entries.fetch_sub(variants.len(), Ordering::Relaxed);
        for e in variants {
            self.tags.remove(primary, &e.tags);
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Store `entry` as a variant of `primary`, replacing the variant with the same variance.
    /// A response whose `Vary` differs from the stored ones replaces them all: they were
    /// selected by rules the origin no longer uses.
    pub fn insert(&self, primary: HashBinary, entry: Arc<Entry>) {
        if self.insert_here(primary, entry.clone()) {
            if let Some(d) = self.disk() {
                d.write(primary, &entry);
            }
        }
    }

    /// [`MemStore::insert`] in this tier only; false when it could not be stored.
    fn insert_here(&self, primary: HashBinary, entry: Arc<Entry>) -> bool {
        // Listed before it can be found, unlisted only once it is gone (see `TagIndex`).
        self.tags.add(&primary, &entry.tags);
        let mut dropped: Vec<Arc<Entry>> = Vec::new();
        let result = self.index.entry(&primary, None, |_, slot: &mut Arc<Slot>| {
            let same_vary = slot.variants.first().is_none_or(|e| e.vary == entry.vary);
            let mut variants = Vec::with_capacity(slot.variants.len() + 1);
            for e in &slot.variants {
                if same_vary && e.variance != entry.variance {
                    variants.push(e.clone());
                } else {
                    dropped.push(e.clone());
                }
            }
            if variants.len() >= MAX_VARIANTS {
                dropped.push(variants.remove(0));
            }
            variants.push(entry.clone());
            *slot = Arc::new(Slot::new(variants));
            EntryAction::Retain(())
        });
        match result {
            EntryResult::Vacant(guard) => {
                if guard
                    .insert(Arc::new(Slot::new(vec![entry.clone()])))
                    .is_ok()
                {
                    self.entries.fetch_add(1, Ordering::Relaxed);
                    true
                } else {
                    self.tags.remove(&primary, &entry.tags);
                    false
                }
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Replaced(..) => {
                self.entries.fetch_add(1, Ordering::Relaxed);
                self.left(&primary, &dropped);
                true
            }
            EntryResult::Timeout => {
                self.tags.remove(&primary, &entry.tags);
                false
            }
        }
    }

    /// Replace the stored variant `old` with `new`, only if `old` is still stored: a response
    /// purged, replaced or soft-purged meanwhile is not brought back. False when it is gone.
    pub fn replace(&self, primary: &HashBinary, old: &Arc<Entry>, new: Arc<Entry>) -> bool {
        let replaced = self.replace_here(primary, old, new.clone());
        if replaced {
            if let Some(d) = self.disk() {
                d.write(*primary, &new);
            }
        }
        replaced
    }

    /// [`MemStore::replace`] with a copy that differs only in its encoded bodies, which the disk
    /// tier does not keep.
    ///
    /// When another copy of the same response took `old`'s place meanwhile (an encoding in
    /// another coding, a 304's update: the same body under the same tag), the encoding is
    /// added to that copy instead.
    pub fn keep_encoded(&self, primary: &HashBinary, old: &Arc<Entry>, encoded: Encoded) -> bool {
        let mut current = old.clone();
        for _ in 0..3 {
            let new = Arc::new(current.encoded_as(encoded.clone()));
            let grew = new.weight > current.weight;
            if self.replace_here(primary, &current, new) {
                if grew {
                    // A replacement in place changes the weight without evicting (quick_cache
                    // evicts on insert): setting the same capacity again evicts what is over.
                    let _capacity = self.capacity.lock();
                    let budget = self.budget();
                    self.index
                        .set_capacity((budget - budget / FILL_RESERVE_FRACTION) as u64);
                }
                return true;
            }
            let same_response = |now: &Arc<Entry>| {
                now.body.as_ptr() == current.body.as_ptr()
                    && now.body.len() == current.body.len()
                    && now.header.headers.get(http::header::ETAG)
                        == current.header.headers.get(http::header::ETAG)
                    && now.encoding(encoded.coding, encoded.level).is_none()
            };
            match self.variant(primary, current.variance) {
                Some(now) if same_response(&now) => current = now,
                _ => return false,
            }
        }
        false
    }

    /// The stored variant of `primary` with this variance, without counting it as used.
    fn variant(&self, primary: &HashBinary, variance: Option<HashBinary>) -> Option<Arc<Entry>> {
        let slot = self.index.peek(primary)?;
        slot.variants
            .iter()
            .find(|e| e.variance == variance)
            .cloned()
    }

    /// [`MemStore::replace`] in this tier only.
    fn replace_here(&self, primary: &HashBinary, old: &Arc<Entry>, new: Arc<Entry>) -> bool {
        self.tags.add(primary, &new.tags);
        let mut replaced = false;
        let result = self.index.entry(primary, None, |_, slot: &mut Arc<Slot>| {
            if !slot.variants.iter().any(|e| Arc::ptr_eq(e, old)) {
                return EntryAction::Retain(());
            }
            let variants = slot
                .variants
                .iter()
                .map(|e| {
                    if Arc::ptr_eq(e, old) {
                        new.clone()
                    } else {
                        e.clone()
                    }
                })
                .collect();
            *slot = Arc::new(Slot::new(variants));
            replaced = true;
            EntryAction::Retain(())
        });
        if let EntryResult::Vacant(guard) = result {
            drop(guard);
        }
        if replaced {
            self.tags.remove(primary, &old.tags);
        } else {
            self.tags.remove(primary, &new.tags);
        }
        replaced
    }

    /// Replace the stored header, freshness and tags of one variant (after the origin answered
    /// 304). False when the variant is gone.
    pub fn update(
        &self,
        primary: &HashBinary,
        variance: Option<HashBinary>,
        header: pingora_http::ResponseHeader,
        policy: &FillPolicy,
    ) -> bool {
        // A copy that only gained an encoding may take the variant's place meanwhile: then
        // update that one (a purge, or new content, leaves no variant or another response).
        for _ in 0..3 {
            let Some(old) = self.variant(primary, variance) else {
                return false;
            };
            let updated = Arc::new(old.revalidated(self.next_id(), header.clone(), policy));
            if self.replace(primary, &old, updated) {
                return true;
            }
            // Only an encoding may have changed. A soft purge keeps the id but marks the entry
            // stale, and a second one changes nothing visible: an entry soft-purged already
            // is not retried.
            let only_encoded = |now: Arc<Entry>| {
                now.id == old.id && !old.freshness.invalidated && !now.freshness.invalidated
            };
            if !self.variant(primary, variance).is_some_and(only_encoded) {
                return false;
            }
        }
        false
    }

    fn reserve(&self, n: usize) -> bool {
        let limit = self.budget() / FILL_RESERVE_FRACTION;
        self.inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + n <= limit).then_some(cur + n)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.inflight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// A hit: the stored body handed out whole (a clone of its `Bytes`), or, for a response kept
/// on disk only, read from its file a chunk at a time.
enum StoredHit {
    Memory(Option<Bytes>),
    File { body: FileBody, at: u64 },
}

impl StoredHit {
    fn of(entry: &Entry) -> (CacheMeta, HitHandler) {
        let hit = StoredHit::Memory(Some(entry.body.clone()));
        (entry.to_meta(), Box::new(hit))
    }
}

#[async_trait]
impl HandleHit for StoredHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let (body, at) = match self {
            StoredHit::Memory(body) => return Ok(body.take()),
            StoredHit::File { body, at } => (body, at),
        };
        if *at >= body.len() {
            return Ok(None);
        }
        let chunk = body.chunk(*at, body.len()).await?;
        *at += chunk.len() as u64;
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

impl MemStore {
    /// Pingora's own lookup (the fill's pipeline) after a memory miss: what the disk tier
    /// holds. The request's own lookup (`proxy::fetch`) looked there already; this one matters
    /// when the request waited on the cache lock for another request's fill, which may have
    /// gone to disk only: without it, every waiter would fetch the response again in turn. A
    /// response on disk only is offered only while fresh: it is not revalidated (no copy in
    /// memory to update), but fetched anew.
    async fn lookup_disk(
        &'static self,
        primary: HashBinary,
        variance: Option<HashBinary>,
    ) -> Option<(CacheMeta, HitHandler)> {
        let (entry, file) = self.from_disk(primary, variance).await?;
        let Some(body) = file else {
            return Some(StoredHit::of(&entry));
        };
        let fresh = usability(&entry.freshness, &Default::default(), SystemTime::now());
        if fresh != Use::Fresh {
            return None;
        }
        let hit = StoredHit::File { body, at: 0 };
        Some((entry.to_meta(), Box::new(hit)))
    }

    /// The response the disk tier holds for `primary` and `variance`, as the purges since
    /// left it (checked against every purge the disk writer has not applied yet): promoted
    /// to memory when it fits, else with its body in its file.
    pub async fn from_disk(
        &'static self,
        primary: HashBinary,
        variance: Option<HashBinary>,
    ) -> Option<(Arc<Entry>, Option<FileBody>)> {
        let disk = self.disk()?;
        let since = disk.purges_applied();
        let (meta, head, body) = disk
            .find_variant(primary, variance, self.max_object())
            .await?;
        let id = self.next_id();
        match body {
            DiskBody::Whole(body) => {
                let entry = self.promote(primary, entry_from(meta, head, body, id), since)?;
                Some((entry, None))
            }
            DiskBody::Streamed(file) => {
                let entry = entry_from(meta, head, Bytes::new(), id);
                let (entry, _) = self.after_purges(&primary, entry, since)?;
                Some((Arc::new(entry), Some(file)))
            }
        }
    }
}

/// A fill in progress.
struct MemMiss {
    store: &'static MemStore,
    primary: HashBinary,
    variance: Option<HashBinary>,
    header: pingora_http::ResponseHeader,
    policy: Option<FillPolicy>,
    body: Vec<u8>,
    hasher: Option<blake3::Hasher>,
    reserved: usize,
    abandoned: bool,
    epoch: u64,
    /// Too large for this tier: the body goes to the disk tier as it arrives
    /// (`disk::spill`); `spilling` with no spill means it is being started or appended to.
    spill: Option<Spill>,
    spilling: bool,
}

impl MemMiss {
    fn abandon(&mut self) {
        if !self.abandoned {
            self.abandoned = true;
            METRICS.cache_fills_abandoned.inc();
            self.store.release(self.reserved);
            self.reserved = 0;
            self.body = Vec::new();
            self.spill = None;
        }
    }

    /// Whether a response of `len` bytes (at least) too large for this tier goes to disk.
    fn may_spill(&self, len: usize) -> bool {
        self.policy.is_some()
            && self
                .store
                .disk()
                .is_some_and(|d| d.is_open() && len <= d.max_object())
    }

    /// Append `data` to the disk tier's file (the body held so far first, when the spill
    /// starts), off the async threads. Abandons the fill when the disk cannot take it.
    async fn spill_body(&mut self, data: Bytes) {
        let Some(disk) = self.store.disk() else {
            self.abandon();
            return;
        };
        self.spilling = true;
        let held = std::mem::take(&mut self.body);
        self.store.release(self.reserved);
        self.reserved = 0;
        let spill = self.spill.take();
        let (primary, variance) = (self.primary, self.variance);
        let appended = tokio::task::spawn_blocking(move || {
            let mut spill = match spill {
                Some(s) => s,
                None => disk.spill(&primary, &variance)?,
            };
            (spill.append(&held) && spill.append(&data)).then_some(spill)
        })
        .await
        .ok()
        .flatten();
        match appended {
            Some(s) => self.spill = Some(s),
            None => self.abandon(),
        }
    }
}

impl Drop for MemMiss {
    fn drop(&mut self) {
        // Never finished (the response broke off): give the reservation back.
        self.store.release(self.reserved);
    }
}

#[async_trait]
impl HandleMiss for MemMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.abandoned || data.is_empty() {
            return Ok(());
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&data);
        }
        if self.spilling {
            self.spill_body(data).await;
            return Ok(());
        }
        let max = self.store.max_object.load(Ordering::Acquire);
        if self.body.len() + data.len() > max {
            if self.may_spill(self.body.len() + data.len()) {
                self.spill_body(data).await;
            } else {
                self.abandon();
            }
            return Ok(());
        }
        if !self.store.reserve(data.len()) {
            self.abandon();
            return Ok(());
        }
        self.reserved += data.len();
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let Some(policy) = self.policy.take() else {
            return Ok(MissFinishType::Created(0));
        };
        if self.abandoned {
            return Ok(MissFinishType::Created(0));
        }
        let (purged, checked) = self.store.purged_since(
            &self.primary,
            &policy.tags,
            policy.url.as_deref(),
            self.epoch,
        );
        if purged == Some(PurgeMode::Hard) {
            return Ok(MissFinishType::Created(0));
        }
        let mut header = std::mem::replace(
            &mut self.header,
            pingora_http::ResponseHeader::build(200, Some(0))?,
        );
        let mut computed = false;
        if let Some(h) = self.hasher.take() {
            // A content-coded body's tag is its decoded content's hash (`http::etag`), which
            // needs the body at hand: one on disk only goes without.
            let at_hand = self.spill.is_none()
                || !matches!(
                    ContentEncoding::of(&header.headers),
                    ContentEncoding::Coded(_)
                );
            if header.headers.get(http::header::ETAG).is_none() && at_hand {
                set_content_etag(&mut header, &[&self.body], &h.finalize())?;
                computed = true;
            }
        }
        let mut freshness = policy.freshness;
        if purged == Some(PurgeMode::Soft) {
            freshness.invalidate(SystemTime::now());
        }
        if let Some(spill) = self.spill.take() {
            let fill = (header, freshness, computed);
            return self.commit_spill(spill, fill, &policy, checked).await;
        }
        let mut body = std::mem::take(&mut self.body);
        body.shrink_to_fit();
        let mut entry = Entry::new(
            self.store.next_id(),
            header,
            Bytes::from(body),
            freshness,
            self.variance,
            policy.vary.clone(),
            computed,
        )
        .labelled(policy.tags.clone(), policy.url.clone());
        if let Some(previous) = self.store.variant(&self.primary, self.variance) {
            entry = entry.carrying_encodings_of(&previous);
        }
        let (id, weight) = (entry.id, entry.weight);
        self.store.insert(self.primary, Arc::new(entry));
        self.store.release(self.reserved);
        self.reserved = 0;
        // A purge that came between the check above and the insert did not see this response:
        // apply it now (only to this response, never to a newer one).
        if let (Some(mode), _) =
            self.store
                .purged_since(&self.primary, &policy.tags, policy.url.as_deref(), checked)
        {
            self.store
                .purge_variants(&self.primary, mode, |e| e.id == id);
            if let Some(d) = self.store.disk() {
                d.purge_variant(&self.primary, self.variance, mode);
            }
        }
        Ok(MissFinishType::Created(weight))
    }
}

impl MemMiss {
    /// Finish a response written to disk as it arrived: its file is completed and queued for
    /// renaming into place; the purge check after it is the same as for memory.
    /// `fill`: the header, freshness and whether the ETag was computed; `checked`: the purge
    /// epoch the fill was checked against.
    async fn commit_spill(
        &mut self,
        spill: Spill,
        fill: (
            pingora_http::ResponseHeader,
            crate::http::freshness::Freshness,
            bool,
        ),
        policy: &FillPolicy,
        checked: u64,
    ) -> Result<MissFinishType> {
        let (header, freshness, computed) = fill;
        let entry = Entry::new(
            self.store.next_id(),
            header,
            Bytes::new(),
            freshness,
            self.variance,
            policy.vary.clone(),
            computed,
        )
        .labelled(policy.tags.clone(), policy.url.clone());
        let primary = self.primary;
        let committed = tokio::task::spawn_blocking(move || spill.commit(primary, &entry))
            .await
            .unwrap_or(false);
        if !committed {
            return Ok(MissFinishType::Created(0));
        }
        // An older copy in memory (smaller then) would otherwise keep answering in its place.
        let variance = self.variance;
        self.store
            .purge_variants(&self.primary, PurgeMode::Hard, |e| {
                e.variance == variance || e.vary != policy.vary
            });
        let (purged, _) =
            self.store
                .purged_since(&self.primary, &policy.tags, policy.url.as_deref(), checked);
        if let (Some(mode), Some(d)) = (purged, self.store.disk()) {
            d.purge_variant(&self.primary, self.variance, mode);
        }
        Ok(MissFinishType::Created(0))
    }
}

#[async_trait]
impl Storage for MemStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let primary = key.primary_bin();
        let variance = key.variance_bin();
        let found = self.index.get(&primary).and_then(|slot| {
            slot.variants
                .iter()
                .find(|e| e.variance == variance)
                .cloned()
        });
        match found {
            Some(entry) => Ok(Some(StoredHit::of(&entry))),
            None => Ok(self.lookup_disk(primary, variance).await),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let policy = meta.extensions().get::<FillPolicy>().cloned();
        let declared = content_length(meta.response_header());
        let max = self.max_object.load(Ordering::Acquire);
        let mut miss = MemMiss {
            store: self,
            primary: key.primary_bin(),
            variance: meta.variance(),
            header: meta.response_header_copy(),
            hasher: policy
                .as_ref()
                .filter(|p| p.compute_etag)
                .map(|_| blake3::Hasher::new()),
            policy,
            body: Vec::with_capacity(declared.unwrap_or(0).min(max)),
            reserved: 0,
            abandoned: false,
            epoch: self.purge_epoch.load(Ordering::Acquire),
            spill: None,
            spilling: false,
        };
        if let Some(n) = declared.filter(|&n| n > max) {
            // Declared too large for memory: straight to disk, or nowhere.
            if miss.may_spill(n) {
                miss.spilling = true;
            } else {
                miss.abandon();
            }
        }
        Ok(Box::new(miss))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let primary = target.key().primary_bin();
        Ok(if self.purge_primary(&primary) > 0 {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let Some(policy) = meta.extensions().get::<FillPolicy>() else {
            return Ok(false);
        };
        Ok(self.update(
            &key.primary_bin(),
            meta.variance(),
            meta.response_header_copy(),
            policy,
        ))
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::freshness::Freshness;
    use std::time::{Duration, SystemTime};

    fn fresh() -> Freshness {
        Freshness::plain(Duration::from_secs(60), SystemTime::now())
    }

    fn entry(
        store: &MemStore,
        body: usize,
        variance: Option<HashBinary>,
        vary: VarySpec,
    ) -> Arc<Entry> {
        let h = pingora_http::ResponseHeader::build(200, None).expect("header");
        Arc::new(Entry::new(
            store.next_id(),
            h,
            Bytes::from(vec![7u8; body]),
            fresh(),
            variance,
            vary,
            false,
        ))
    }

    fn key(i: u32) -> HashBinary {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k
    }

    /// A response as read back from the disk tier: tagged `t`, at `http://a.test/x`.
    fn disk_read(store: &MemStore) -> Entry {
        Entry::new(
            store.next_id(),
            pingora_http::ResponseHeader::build(200, None).expect("header"),
            Bytes::from_static(b"from disk"),
            fresh(),
            None,
            VarySpec::None,
            false,
        )
        .labelled(
            Arc::from([Arc::from("t")]),
            Some(Arc::from("http://a.test/x")),
        )
    }

    /// A disk read takes time; a purge during it must not be undone by the promotion.
    #[test]
    fn a_disk_read_overtaken_by_a_purge_is_not_promoted() {
        let store = MemStore::new(8 << 20, 1 << 20);
        let read = disk_read;
        let since = store.purge_epoch();
        assert!(store.promote(key(1), read(&store), since).is_some());
        assert!(matches!(
            store.find(&key(1), &HeaderMap::new()),
            Found::Hit(_)
        ));

        let since = store.purge_epoch();
        store.purge_primary(&key(1));
        assert!(store.promote(key(1), read(&store), since).is_none());
        assert!(matches!(
            store.find(&key(1), &HeaderMap::new()),
            Found::UriMiss
        ));

        let since = store.purge_epoch();
        store.purge_prefix("http://a.test/", PurgeMode::Hard);
        assert!(store.promote(key(1), read(&store), since).is_none());

        let since = store.purge_epoch();
        store.purge_tag("t", PurgeMode::Soft);
        let promoted = store
            .promote(key(1), read(&store), since)
            .expect("soft: served");
        assert!(promoted.freshness.invalidated, "but stale");

        let since = store.purge_epoch();
        store.purge_tag("other", PurgeMode::Hard);
        assert!(
            store.promote(key(2), read(&store), since).is_some(),
            "unrelated purge"
        );
    }

    /// A purge whose disk job the writer has not reached yet has not removed the file: a read
    /// of it after the purge must still see the purge.
    #[test]
    fn a_disk_read_after_a_purge_still_queued_for_the_disk_is_not_served() {
        let dir = tempfile::tempdir().expect("dir");
        let store: &'static MemStore = Box::leak(Box::new(MemStore::new(4 << 20, 1 << 20)));
        // Never started: its writer never reaches the purge's job.
        let disk: &'static DiskStore = Box::leak(Box::new(DiskStore::new(
            dir.path().to_path_buf(),
            crate::cache::disk::Limits {
                budget: 1 << 20,
                max_object: 1 << 20,
            },
        )));
        store.attach_disk(disk);
        store.purge_primary(&key(1));
        let applied = disk.purges_applied();
        assert!(store.promote(key(1), disk_read(store), applied).is_none());
        assert!(
            store
                .promote(key(1), disk_read(store), store.purge_epoch())
                .is_some(),
            "the read began after the purge, so only the writer's progress can tell"
        );
    }

    #[test]
    fn accounting_stays_within_budget_under_a_large_fill() {
        let budget = 4 << 20;
        let store = MemStore::new(budget, budget / 16);
        for i in 0..2000 {
            store.insert(key(i), entry(&store, 20_000, None, VarySpec::None));
            assert!(
                store.bytes() <= budget,
                "bytes {} > budget {budget}",
                store.bytes()
            );
        }
        assert!(store.objects() > 0 && store.objects() < 2000);
        assert!(store.bytes() > budget / 2, "the budget is actually used");
    }

    #[test]
    fn variants_share_a_slot_and_purge_removes_all_of_them() {
        let store = MemStore::new(8 << 20, 1 << 20);
        let vary = VarySpec::Headers(vec![http::HeaderName::from_static("foo")]);
        let mut req1 = HeaderMap::new();
        req1.insert("foo", http::HeaderValue::from_static("1"));
        let mut req2 = HeaderMap::new();
        req2.insert("foo", http::HeaderValue::from_static("2"));
        let names = [http::HeaderName::from_static("foo")];
        store.insert(
            key(1),
            entry(&store, 10, Some(variance(&names, &req1)), vary.clone()),
        );
        store.insert(
            key(1),
            entry(&store, 20, Some(variance(&names, &req2)), vary.clone()),
        );
        assert_eq!(store.objects(), 2);
        assert!(matches!(store.find(&key(1), &req1), Found::Hit(e) if e.body.len() == 10));
        assert!(matches!(store.find(&key(1), &req2), Found::Hit(e) if e.body.len() == 20));
        assert!(matches!(
            store.find(&key(1), &HeaderMap::new()),
            Found::VaryMiss
        ));
        assert!(matches!(store.find(&key(2), &req1), Found::UriMiss));
        assert_eq!(store.purge_primary(&key(1)), 2);
        assert_eq!(store.objects(), 0);
        assert!(matches!(store.find(&key(1), &req1), Found::UriMiss));
    }

    #[test]
    fn a_changed_vary_replaces_the_old_variants() {
        let store = MemStore::new(8 << 20, 1 << 20);
        let vary = VarySpec::Headers(vec![http::HeaderName::from_static("foo")]);
        store.insert(key(1), entry(&store, 10, Some([1; 16]), vary.clone()));
        store.insert(key(1), entry(&store, 10, Some([2; 16]), vary));
        store.insert(key(1), entry(&store, 30, None, VarySpec::None));
        assert_eq!(store.objects(), 1);
        assert!(
            matches!(store.find(&key(1), &HeaderMap::new()), Found::Hit(e) if e.body.len() == 30)
        );
    }

    #[test]
    fn lowering_the_budget_evicts_down_to_it() {
        let store = MemStore::new(16 << 20, 1 << 20);
        for i in 0..500 {
            store.insert(key(i), entry(&store, 20_000, None, VarySpec::None));
        }
        let before = store.bytes();
        store.set_limits(2 << 20, 128 << 10);
        assert!(
            store.bytes() <= 2 << 20,
            "{} after lowering from {before}",
            store.bytes()
        );
    }

    #[test]
    fn an_update_of_a_vanished_entry_is_dropped_not_a_panic() {
        let store = MemStore::new(8 << 20, 1 << 20);
        let h = pingora_http::ResponseHeader::build(200, None).expect("header");
        let policy = FillPolicy::plain(fresh(), false, VarySpec::None);
        assert!(!store.update(&key(9), None, h, &policy));
    }

    #[test]
    fn fills_reserve_their_bytes_and_give_them_back() {
        let store = MemStore::new(8 << 20, 1 << 20);
        assert!(store.reserve(1 << 20));
        assert!(!store.reserve(1 << 20), "an eighth of 8MiB is 1MiB");
        store.release(1 << 20);
        assert!(store.reserve(1 << 20));
    }

    fn tagged(
        store: &MemStore,
        url: &str,
        tags: &[&str],
        variance: Option<HashBinary>,
    ) -> Arc<Entry> {
        sized(store, url, tags, variance, 100)
    }

    fn sized(
        store: &MemStore,
        url: &str,
        tags: &[&str],
        variance: Option<HashBinary>,
        body: usize,
    ) -> Arc<Entry> {
        let vary = match variance {
            Some(_) => VarySpec::Headers(vec![http::HeaderName::from_static("foo")]),
            None => VarySpec::None,
        };
        let e = entry(store, body, variance, vary);
        let e = Arc::try_unwrap(e).expect("fresh entry");
        Arc::new(e.labelled(
            tags.iter().map(|t| Arc::from(*t)).collect(),
            Some(Arc::from(url)),
        ))
    }

    /// Every (tag, key) that stored entries carry, read from the cache itself.
    fn stored_listings(store: &MemStore) -> std::collections::BTreeSet<(String, HashBinary)> {
        store
            .index
            .iter()
            .flat_map(|(k, slot)| {
                slot.variants
                    .iter()
                    .flat_map(|e| e.tags.iter().map(|t| (t.to_string(), k)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every stored entry, by key and id.
    fn stored_entries(store: &MemStore) -> Vec<(HashBinary, u64, Arc<Entry>)> {
        let mut out: Vec<_> = store
            .index
            .iter()
            .flat_map(|(k, slot)| {
                slot.variants
                    .iter()
                    .map(|e| (k, e.id, e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by_key(|(k, id, _)| (*k, *id));
        out
    }

    #[test]
    fn the_tag_index_follows_insert_replace_and_purge() {
        let store = MemStore::new(8 << 20, 1 << 20);
        store.insert(key(1), tagged(&store, "http://a/1", &["a", "b"], None));
        store.insert(key(2), tagged(&store, "http://a/2", &["b"], None));
        // A new response for the same URL with other tags replaces the old listing.
        store.insert(key(1), tagged(&store, "http://a/1", &["c"], None));
        assert_eq!(store.tags.listings(), stored_listings(&store));
        assert_eq!(store.tag_index_entries(), 2);
        assert_eq!(
            store.purge_tag("a", PurgeMode::Hard),
            0,
            "key 1 no longer has 'a'"
        );
        assert_eq!(store.purge_tag("b", PurgeMode::Hard), 1);
        assert!(matches!(
            store.find(&key(1), &HeaderMap::new()),
            Found::Hit(_)
        ));
        assert!(matches!(
            store.find(&key(2), &HeaderMap::new()),
            Found::UriMiss
        ));
        assert_eq!(store.purge_primary(&key(1)), 1);
        assert!(store.tags.is_empty());
        assert_eq!(store.objects(), 0);
    }

    #[test]
    fn a_tag_purge_takes_only_the_variants_that_carry_the_tag() {
        let store = MemStore::new(8 << 20, 1 << 20);
        store.insert(
            key(1),
            tagged(&store, "http://a/1", &["a", "both"], Some([1; 16])),
        );
        store.insert(
            key(1),
            tagged(&store, "http://a/1", &["b", "both"], Some([2; 16])),
        );
        assert_eq!(store.objects(), 2);
        assert_eq!(store.purge_tag("a", PurgeMode::Hard), 1);
        assert_eq!(store.objects(), 1);
        assert_eq!(store.tags.listings(), stored_listings(&store));
        assert_eq!(store.purge_tag("both", PurgeMode::Hard), 1);
        assert!(store.tags.is_empty());
    }

    #[test]
    fn a_changed_vary_unlists_the_variants_it_replaces() {
        let store = MemStore::new(8 << 20, 1 << 20);
        store.insert(key(1), tagged(&store, "http://a/1", &["x"], Some([1; 16])));
        store.insert(key(1), tagged(&store, "http://a/1", &["y"], Some([2; 16])));
        store.insert(key(1), tagged(&store, "http://a/1", &["z"], None));
        assert_eq!(store.objects(), 1);
        assert_eq!(store.tags.listings(), stored_listings(&store));
        assert_eq!(store.purge_tag("x", PurgeMode::Hard), 0);
    }

    #[test]
    fn eviction_unlists_what_it_evicts_and_the_index_stays_bounded() {
        let store = MemStore::new(1 << 20, 64 << 10);
        let many: Vec<String> = (0..crate::http::tags::MAX_TAGS)
            .map(|i| format!("tag-{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for i in 0..3000 {
            let url = format!("http://a/{i}");
            store.insert(key(i), tagged(&store, &url, &many, None));
        }
        assert!(store.objects() < 3000, "the budget forced evictions");
        assert_eq!(store.tags.listings(), stored_listings(&store));
        assert!(store.tag_index_entries() <= store.objects() * crate::http::tags::MAX_TAGS);
        assert!(store.bytes() <= 1 << 20);
    }

    #[test]
    fn lowering_the_budget_unlists_what_it_evicts() {
        let store = MemStore::new(16 << 20, 1 << 20);
        for i in 0..500 {
            store.insert(
                key(i),
                sized(&store, &format!("http://a/{i}"), &["t"], None, 20_000),
            );
        }
        let before = store.objects();
        store.set_limits(2 << 20, 128 << 10);
        assert!(store.objects() < before, "lowering evicted");
        assert_eq!(store.tags.listings(), stored_listings(&store));
        let listed = store.tags.listings().len();
        assert_eq!(store.purge_tag("t", PurgeMode::Hard), listed);
    }

    /// Souin's users reported tag purges that silently missed entries once the cache had
    /// churned. Many URLs, tags shared and not, responses replaced with other tags, variants,
    /// evictions, URL purges and invalidations; then a purge by each tag must remove exactly
    /// the stored responses carrying it, and nothing else.
    #[test]
    fn a_tag_purge_after_churn_removes_exactly_the_entries_with_the_tag() {
        let store = MemStore::new(1 << 20, 64 << 10);
        let mut rng: u64 = 0x5eed;
        let mut next = |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let pool: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        for round in 0..20_000u32 {
            let url_no = next(3000) as u32;
            let url = format!("http://h/{url_no}");
            // Each URL has its own tag, and up to three shared ones (re-drawn on each refill).
            let own = format!("url-{url_no}");
            let mut tags = vec![own.as_str()];
            for _ in 0..next(4) {
                tags.push(&pool[next(pool.len() as u64) as usize]);
            }
            // A tenth of the URLs have two variants.
            let variance = url_no.is_multiple_of(10).then(|| [next(2) as u8 + 1; 16]);
            store.insert(key(url_no), tagged(&store, &url, &tags, variance));
            match round % 97 {
                0 => {
                    store.purge_primary(&key(next(3000) as u32));
                }
                1 => {
                    store.purge_url(&key(next(3000) as u32), PurgeMode::Soft);
                }
                _ => {}
            }
        }
        assert!(
            store.index.len() < 2000,
            "the budget forced evictions: {} of 3000 URLs stored",
            store.index.len()
        );
        assert_eq!(store.tags.listings(), stored_listings(&store));
        for tag in pool.iter().map(String::as_str).chain(["url-7", "url-2999"]) {
            let before = stored_entries(&store);
            let carrying: Vec<u64> = before
                .iter()
                .filter(|(_, _, e)| e.has_tag(tag))
                .map(|(_, id, _)| *id)
                .collect();
            let purged = store.purge_tag(tag, PurgeMode::Hard);
            assert_eq!(purged, carrying.len(), "purge of {tag}");
            let after = stored_entries(&store);
            let expected: Vec<u64> = before
                .iter()
                .filter(|(_, _, e)| !e.has_tag(tag))
                .map(|(_, id, _)| *id)
                .collect();
            let got: Vec<u64> = after.iter().map(|(_, id, _)| *id).collect();
            assert_eq!(
                got, expected,
                "after the purge of {tag}, exactly the others remain"
            );
            assert_eq!(store.tags.listings(), stored_listings(&store));
        }
    }

    /// Inserts, replacements, evictions and purges racing on shared keys leave the index
    /// listing exactly what is stored once they are over.
    #[test]
    fn concurrent_churn_leaves_the_index_exact() {
        let store = Arc::new(MemStore::new(1 << 20, 64 << 10));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut rng = t + 1;
                    for i in 0..5000u32 {
                        rng = rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let k = ((rng >> 33) % 500) as u32;
                        let tag = format!("t{}", (rng >> 20) % 7);
                        let variance = k.is_multiple_of(3).then_some([(rng % 3) as u8; 16]);
                        match i % 50 {
                            0 => {
                                store.purge_tag(&tag, PurgeMode::Hard);
                            }
                            1 => {
                                store.purge_primary(&key(k));
                            }
                            2 => {
                                store.purge_tag(&tag, PurgeMode::Soft);
                            }
                            _ => store.insert(
                                key(k),
                                tagged(&store, &format!("http://a/{k}"), &[&tag, "all"], variance),
                            ),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(store.tags.listings(), stored_listings(&store));
        let stored = stored_entries(&store).len();
        assert_eq!(store.objects(), stored);
        assert_eq!(store.purge_tag("all", PurgeMode::Hard), stored);
        assert!(store.tags.is_empty());
    }

    #[test]
    fn a_soft_purge_marks_stale_once_and_keeps_the_tags() {
        let store = MemStore::new(8 << 20, 1 << 20);
        store.insert(key(1), tagged(&store, "http://a/1", &["t"], None));
        store.insert(key(2), tagged(&store, "http://a/2", &["u"], None));
        assert_eq!(store.purge_tag("t", PurgeMode::Soft), 1);
        assert_eq!(store.purge_tag("t", PurgeMode::Soft), 0, "already stale");
        match store.find(&key(1), &HeaderMap::new()) {
            Found::Hit(e) => {
                assert!(e.freshness.invalidated && !e.freshness.is_fresh(SystemTime::now()))
            }
            _ => panic!("a soft purge keeps the response"),
        }
        match store.find(&key(2), &HeaderMap::new()) {
            Found::Hit(e) => assert!(!e.freshness.invalidated),
            _ => panic!("untouched"),
        }
        assert_eq!(store.tags.listings(), stored_listings(&store));
        assert_eq!(store.purge_tag("t", PurgeMode::Hard), 1, "still listed");
    }

    #[test]
    fn a_prefix_purge_matches_the_url_text_only() {
        let store = MemStore::new(8 << 20, 1 << 20);
        store.insert(key(1), tagged(&store, "http://a.test/blog/1", &[], None));
        store.insert(key(2), tagged(&store, "http://a.test/blog", &[], None));
        store.insert(key(3), tagged(&store, "http://b.test/blog/1", &[], None));
        store.insert(key(4), tagged(&store, "https://a.test/blog/1", &[], None));
        assert_eq!(
            store.purge_prefix("http://a.test/blog/", PurgeMode::Soft),
            1
        );
        assert_eq!(store.purge_prefix("http://a.test/blog", PurgeMode::Hard), 2);
        assert_eq!(store.objects(), 2);
        assert!(matches!(
            store.find(&key(3), &HeaderMap::new()),
            Found::Hit(_)
        ));
        assert!(matches!(
            store.find(&key(4), &HeaderMap::new()),
            Found::Hit(_)
        ));
    }

    #[test]
    fn a_replacement_never_brings_back_a_purged_response() {
        let store = MemStore::new(8 << 20, 1 << 20);
        let old = tagged(&store, "http://a/1", &["t"], None);
        store.insert(key(1), old.clone());
        store.purge_primary(&key(1));
        let new = tagged(&store, "http://a/1", &["t"], None);
        assert!(!store.replace(&key(1), &old, new));
        assert!(matches!(
            store.find(&key(1), &HeaderMap::new()),
            Found::UriMiss
        ));
        assert!(store.tags.is_empty());
    }

    /// A fill that started before a purge and finishes after it must not store the purged
    /// content (hard) or must store it stale (soft), whether the purge named its URL, a prefix
    /// of it or one of its tags.
    #[tokio::test]
    async fn a_fill_overtaken_by_a_purge_honours_it() {
        let store: &'static MemStore = Box::leak(Box::new(MemStore::new(8 << 20, 1 << 20)));
        let fill = |n: u32, tags: &[&str]| {
            let url = format!("http://a.test/dir/{n}");
            let mut policy = FillPolicy::plain(fresh(), false, VarySpec::None);
            policy.tags = tags.iter().map(|t| Arc::from(*t)).collect();
            policy.url = Some(Arc::from(url));
            let header = pingora_http::ResponseHeader::build(200, None).expect("header");
            let mut meta = new_meta_for_test(&policy, header);
            meta.extensions_mut().insert(policy);
            let k = crate::cache::key::PrimaryKey::new("http", "a.test", "/x");
            let mut ck = k.to_cache_key(None);
            ck.set_primary_bin_override(key(n));
            (ck, meta)
        };
        let trace = pingora_cache::trace::Span::inactive().handle();
        type Purge<'a> = Box<dyn Fn() + 'a>;
        let cases: [(u32, &[&str], Purge, Option<bool>); 5] = [
            (1, &[], Box::new(|| {}), None),
            (
                2,
                &["t2"],
                Box::new(|| {
                    store.purge_tag("t2", PurgeMode::Hard);
                }),
                Some(true),
            ),
            (
                3,
                &[],
                Box::new(|| {
                    store.purge_prefix("http://a.test/dir/", PurgeMode::Hard);
                }),
                Some(true),
            ),
            (
                4,
                &[],
                Box::new(|| {
                    store.purge_primary(&key(4));
                }),
                Some(true),
            ),
            (
                5,
                &["t5"],
                Box::new(|| {
                    store.purge_tag("t5", PurgeMode::Soft);
                }),
                Some(false),
            ),
        ];
        for (n, tags, purge, expect) in cases {
            let (ck, meta) = fill(n, tags);
            let mut miss = store
                .get_miss_handler(&ck, &meta, &trace)
                .await
                .expect("miss");
            miss.write_body(Bytes::from_static(b"body"), true)
                .await
                .expect("write");
            purge();
            miss.finish().await.expect("finish");
            let found = store.find(&key(n), &HeaderMap::new());
            match (expect, found) {
                (None, Found::Hit(e)) => assert!(!e.freshness.invalidated, "fill {n}"),
                (Some(true), Found::UriMiss) => {}
                (Some(false), Found::Hit(e)) => assert!(e.freshness.invalidated, "fill {n}"),
                (_, _) => panic!("fill {n}: not as expected"),
            }
        }
        assert_eq!(store.tags.listings(), stored_listings(store));
    }

    fn new_meta_for_test(policy: &FillPolicy, header: pingora_http::ResponseHeader) -> CacheMeta {
        crate::cache::entry::new_meta(&policy.freshness, SystemTime::now(), header)
    }
}
