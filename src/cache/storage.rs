//! The in-memory `Storage` behind pingora-cache.
//!
//! - One index entry (a [`Slot`]) per primary key, holding every stored variant of that URL,
//!   so a purge or an invalidation removes all variants at once and a lookup resolves `Vary`
//!   without a second probe.
//! - The index is `quick_cache` (sharded, S3-FIFO eviction: a scan of one-hit URLs passes
//!   through its probation queue without flushing the popular set), weighted by every byte an
//!   entry holds: body, header, key and bookkeeping.
//! - An eighth of the budget is kept for responses being written (fills in flight); a fill that
//!   does not fit, or grows past `max_object_size`, is abandoned quietly: the client still gets
//!   the response, the cache just does not keep it. The index gets the rest, so stored plus
//!   in-flight bytes never exceed the budget.
//! - Bodies are copied once, at fill, into one exactly-sized buffer: a hit hands out clones of
//!   that `Bytes` (no copy), and a small cached body never pins a large network read buffer.
//! - Nothing panics when an entry vanishes under a request (evicted or purged during a
//!   revalidation): the update is simply dropped.

use super::entry::{Entry, FillPolicy};
use crate::http::headers::{content_length, set_content_etag};
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
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

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
/// Purges remembered so a fill that started before one cannot store the purged content.
const RECENT_PURGES: usize = 4096;

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
}

#[derive(Clone)]
struct SlotWeight;

impl Weighter<HashBinary, Arc<Slot>> for SlotWeight {
    fn weight(&self, _key: &HashBinary, slot: &Arc<Slot>) -> u64 {
        slot.weight.max(1)
    }
}

/// Counts entries (variants) as slots come and go, including evictions.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Lifecycle<HashBinary, Arc<Slot>> for Counting {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), _key: HashBinary, slot: Arc<Slot>) {
        self.0.fetch_sub(slot.variants.len(), Ordering::Relaxed);
        METRICS.cache_evictions.inc_by(slot.variants.len() as u64);
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

pub struct MemStore {
    index: Index<HashBinary, Arc<Slot>, SlotWeight, ahash::RandomState, Counting>,
    entries: Arc<AtomicUsize>,
    inflight: AtomicUsize,
    budget: AtomicUsize,
    max_object: AtomicUsize,
    next_id: AtomicU64,
    purge_epoch: AtomicU64,
    recent_purges: Mutex<VecDeque<(HashBinary, u64)>>,
}

impl MemStore {
    pub fn new(budget: usize, max_object: usize) -> MemStore {
        let reserve = budget / FILL_RESERVE_FRACTION;
        let capacity = (budget - reserve) as u64;
        let entries = Arc::new(AtomicUsize::new(0));
        let shards = shards_for(budget);
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity((budget / 4096).max(shards * 32))
            .weight_capacity(capacity)
            .hot_allocation(1.0 - NEW_ITEMS_SHARE)
            .build();
        let index = match options {
            Ok(o) => Index::with_options(
                o,
                SlotWeight,
                ahash::RandomState::new(),
                Counting(entries.clone()),
            ),
            // Only reachable with a zero capacity, which config validation rules out.
            Err(_) => Index::with(
                shards * 32,
                capacity,
                SlotWeight,
                ahash::RandomState::new(),
                Counting(entries.clone()),
            ),
        };
        METRICS.cache_budget_bytes.set(budget as i64);
        MemStore {
            index,
            entries,
            inflight: AtomicUsize::new(0),
            budget: AtomicUsize::new(budget),
            max_object: AtomicUsize::new(max_object),
            next_id: AtomicU64::new(1),
            purge_epoch: AtomicU64::new(0),
            recent_purges: Mutex::new(VecDeque::new()),
        }
    }

    /// Apply a new budget (evicting down to it when lowered) and object size limit.
    pub fn set_limits(&self, budget: usize, max_object: usize) {
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

    /// Refresh the cache gauges (called when metrics are scraped).
    pub fn publish_metrics(&self) {
        METRICS.cache_objects.set(self.objects() as i64);
        METRICS.cache_bytes.set(self.bytes() as i64);
        METRICS.cache_budget_bytes.set(self.budget() as i64);
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
    pub fn variance_for(&self, primary: &HashBinary, req: &HeaderMap) -> Option<HashBinary> {
        let slot = self.index.peek(primary)?;
        match slot.variants.first().map(|e| &e.vary) {
            Some(VarySpec::Headers(names)) => Some(variance(names, req)),
            _ => None,
        }
    }

    /// Remove every stored variant of a URL. Returns how many were removed.
    pub fn purge_primary(&self, primary: &HashBinary) -> usize {
        let epoch = self.purge_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        {
            let mut recent = self.recent_purges.lock();
            recent.push_back((*primary, epoch));
            while recent.len() > RECENT_PURGES {
                recent.pop_front();
            }
        }
        match self.index.remove(primary) {
            Some((_, slot)) => {
                self.entries
                    .fetch_sub(slot.variants.len(), Ordering::Relaxed);
                slot.variants.len()
            }
            None => 0,
        }
    }

    /// Whether `primary` was purged after `epoch`.
    fn purged_since(&self, primary: &HashBinary, epoch: u64) -> bool {
        if self.purge_epoch.load(Ordering::Acquire) == epoch {
            return false;
        }
        self.recent_purges
            .lock()
            .iter()
            .rev()
            .take_while(|(_, e)| *e > epoch)
            .any(|(p, _)| p == primary)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Store `entry` as a variant of `primary`, replacing the variant with the same variance.
    /// A response whose `Vary` differs from the stored ones replaces them all: they were
    /// selected by rules the origin no longer uses.
    pub fn insert(&self, primary: HashBinary, entry: Arc<Entry>) {
        let mut added: isize = 0;
        let result = self.index.entry(&primary, None, |_, slot: &mut Arc<Slot>| {
            let same_vary = slot.variants.first().is_none_or(|e| e.vary == entry.vary);
            let mut variants: Vec<Arc<Entry>> = if same_vary {
                slot.variants
                    .iter()
                    .filter(|e| e.variance != entry.variance)
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            if variants.len() >= MAX_VARIANTS {
                variants.remove(0);
            }
            variants.push(entry.clone());
            added = variants.len() as isize - slot.variants.len() as isize;
            *slot = Arc::new(Slot::new(variants));
            EntryAction::Retain(())
        });
        match result {
            EntryResult::Vacant(guard) => {
                added = 1;
                let _ = guard.insert(Arc::new(Slot::new(vec![entry])));
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Replaced(..) => {}
            EntryResult::Timeout => return,
        }
        if added >= 0 {
            self.entries.fetch_add(added as usize, Ordering::Relaxed);
        } else {
            self.entries.fetch_sub((-added) as usize, Ordering::Relaxed);
        }
    }

    /// Replace the stored header and freshness of one variant (after the origin answered 304).
    /// False when the variant is gone.
    pub fn update(
        &self,
        primary: &HashBinary,
        variance: Option<HashBinary>,
        header: pingora_http::ResponseHeader,
        policy: &FillPolicy,
    ) -> bool {
        let Some(slot) = self.index.peek(primary) else {
            return false;
        };
        let Some(old) = slot.variants.iter().find(|e| e.variance == variance) else {
            return false;
        };
        let updated = Arc::new(old.revalidated(self.next_id(), header, policy.freshness));
        self.insert(*primary, updated);
        true
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

/// A hit: the stored body, handed out whole (a clone of its `Bytes`).
struct MemHit {
    body: Option<Bytes>,
}

#[async_trait]
impl HandleHit for MemHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.body.take())
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
}

impl MemMiss {
    fn abandon(&mut self) {
        if !self.abandoned {
            self.abandoned = true;
            METRICS.cache_fills_abandoned.inc();
            self.store.release(self.reserved);
            self.reserved = 0;
            self.body = Vec::new();
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
        let max = self.store.max_object.load(Ordering::Acquire);
        if self.body.len() + data.len() > max || !self.store.reserve(data.len()) {
            self.abandon();
            return Ok(());
        }
        self.reserved += data.len();
        if let Some(h) = self.hasher.as_mut() {
            h.update(&data);
        }
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let Some(policy) = self.policy.take() else {
            return Ok(MissFinishType::Created(0));
        };
        if self.abandoned || self.store.purged_since(&self.primary, self.epoch) {
            return Ok(MissFinishType::Created(0));
        }
        let mut header = std::mem::replace(
            &mut self.header,
            pingora_http::ResponseHeader::build(200, Some(0))?,
        );
        let mut computed = false;
        if let Some(h) = self.hasher.take() {
            if header.headers.get(http::header::ETAG).is_none() {
                set_content_etag(&mut header, &h.finalize())?;
                computed = true;
            }
        }
        let mut body = std::mem::take(&mut self.body);
        body.shrink_to_fit();
        let entry = Arc::new(Entry::new(
            self.store.next_id(),
            header,
            Bytes::from(body),
            policy.freshness,
            self.variance,
            policy.vary,
            computed,
        ));
        let weight = entry.weight;
        self.store.insert(self.primary, entry);
        self.store.release(self.reserved);
        self.reserved = 0;
        Ok(MissFinishType::Created(weight))
    }
}

#[async_trait]
impl Storage for MemStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(slot) = self.index.get(&key.primary_bin()) else {
            return Ok(None);
        };
        let variance = key.variance_bin();
        let Some(entry) = slot.variants.iter().find(|e| e.variance == variance) else {
            return Ok(None);
        };
        let hit = MemHit {
            body: Some(entry.body.clone()),
        };
        Ok(Some((entry.to_meta(), Box::new(hit))))
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
        };
        if declared.is_some_and(|n| n > max) {
            miss.abandon();
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
        let policy = FillPolicy {
            freshness: fresh(),
            compute_etag: false,
            vary: VarySpec::None,
        };
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
}
