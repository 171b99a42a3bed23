//! One stored response.

use crate::http::coding::Coding;
use crate::http::etag::{encoded_etag, EntityTag};
use crate::http::freshness::Freshness;
use crate::http::vary::VarySpec;
use bytes::Bytes;
use http::HeaderValue;
use pingora_cache::key::HashBinary;
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bookkeeping bytes charged per entry beyond its header and body (the entry struct, its
/// `Arc`, the index slot).
const ENTRY_OVERHEAD: usize = 256;
/// Bytes charged per tag beyond its text: the tag index's map entry for it, so the index is
/// paid for out of the cache budget like everything else an entry holds.
const TAG_OVERHEAD: usize = 64;

/// The tags of a stored response (see [`crate::http::tags`]), shared by its revalidated and
/// soft-purged copies.
pub type Tags = Arc<[Arc<str>]>;

/// What the storage needs to know about a response it is asked to store, handed over in the
/// `CacheMeta` extensions by `response_cache_filter`.
#[derive(Debug, Clone)]
pub struct FillPolicy {
    pub freshness: Freshness,
    /// Hash the body and add a content ETag if the response has none.
    pub compute_etag: bool,
    pub vary: VarySpec,
    /// The response's cache tags, for purge by tag.
    pub tags: Tags,
    /// The URL as keyed (`scheme://host[:port]/path?query`), for purge by prefix.
    pub url: Option<Arc<str>>,
}

impl FillPolicy {
    /// A policy without tags or URL (tests, benches).
    pub fn plain(freshness: Freshness, compute_etag: bool, vary: VarySpec) -> FillPolicy {
        FillPolicy {
            freshness,
            compute_etag,
            vary,
            tags: no_tags(),
            url: None,
        }
    }
}

/// The empty tag list.
pub fn no_tags() -> Tags {
    Arc::from(Vec::<Arc<str>>::new())
}

#[derive(Debug)]
pub struct Entry {
    /// Unique per stored generation.
    pub id: u64,
    /// The stored header: hop-by-hop fields removed, the ETag (origin's or computed) in place.
    pub header: ResponseHeader,
    pub body: Bytes,
    pub freshness: Freshness,
    pub variance: Option<HashBinary>,
    pub vary: VarySpec,
    /// The ETag was computed by etagate (the origin cannot validate it).
    pub etag_computed: bool,
    /// Cache tags; the storage's tag index lists this entry's key under each of them.
    pub tags: Tags,
    /// The URL as keyed; `None` only for entries stored without one (tests).
    pub url: Option<Arc<str>>,
    pub created: SystemTime,
    pub weight: usize,
    /// Unix seconds at which a background refresh of this entry started (0: none).
    refresh_started: AtomicU64,
    /// Unix seconds at which a hit on this entry last renewed its disk copy's place in the
    /// disk tier's eviction order (0: never).
    disk_used: AtomicU64,
    /// The body compressed in other codings, each made once on the first request that asked
    /// for it (`proxy::encoding`). Kept in memory only: a restart compresses again.
    pub encoded: Encodings,
    /// The codings being compressed for this entry right now (a bit per coding), so that one
    /// request compresses and the others do not.
    compressing: AtomicU8,
}

/// An entry's encoded bodies, shared by its copies with the same content.
pub type Encodings = Arc<[Encoded]>;

/// The body of a stored response in one coding.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub coding: Coding,
    /// The level it was compressed at (a route whose level changes compresses again).
    pub level: i32,
    /// `None`: compressing did not make it smaller, so this coding is never sent for it.
    pub body: Option<Bytes>,
    /// The BLAKE3 hash of `body`, which its tag names (`http::etag::encoded_etag`).
    pub hash: blake3::Hash,
    /// The representation's tag, made once: `None` when the stored response's own tag is not
    /// etagate's content tag (the representation then carries that tag weakened).
    pub etag: Option<HeaderValue>,
}

impl Encoded {
    /// The encoding of a body whose identity representation is tagged `identity`.
    pub fn new(
        coding: Coding,
        level: i32,
        body: Option<Bytes>,
        identity: Option<&HeaderValue>,
    ) -> Encoded {
        let hash = blake3::hash(body.as_deref().unwrap_or_default());
        let etag = identity
            .and_then(|t| encoded_etag(t.as_bytes(), coding, &hash))
            .and_then(|t| HeaderValue::from_str(&t).ok());
        Encoded {
            coding,
            level,
            body,
            hash,
            etag,
        }
    }
}

/// Bytes charged per encoding beyond its body.
const ENCODED_OVERHEAD: usize = 96;

fn no_encodings() -> Encodings {
    Arc::from(Vec::<Encoded>::new())
}

/// Seconds since the epoch (1 on a clock before it, so 0 keeps meaning "never").
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
}

/// How often a hit in memory renews the disk copy's place in the disk eviction order.
const DISK_USE_INTERVAL_SECS: u64 = 10;
/// How long a background refresh may run before another request may start one.
const REFRESH_TIMEOUT_SECS: u64 = 30;

fn coding_bit(c: Coding) -> u8 {
    match c {
        Coding::Identity => 0,
        Coding::Gzip => 1,
        Coding::Br => 2,
        Coding::Zstd => 4,
    }
}

fn encodings_weight(e: &[Encoded]) -> usize {
    e.iter()
        .map(|e| e.body.as_ref().map_or(0, Bytes::len) + ENCODED_OVERHEAD)
        .sum()
}

fn header_weight(h: &ResponseHeader) -> usize {
    h.headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum::<usize>()
        + 64
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        header: ResponseHeader,
        body: Bytes,
        freshness: Freshness,
        variance: Option<HashBinary>,
        vary: VarySpec,
        etag_computed: bool,
    ) -> Entry {
        let weight = body.len() + header_weight(&header) + ENTRY_OVERHEAD;
        Entry {
            id,
            header,
            body,
            freshness,
            variance,
            vary,
            etag_computed,
            tags: no_tags(),
            url: None,
            created: SystemTime::now(),
            weight,
            refresh_started: AtomicU64::new(0),
            disk_used: AtomicU64::new(0),
            encoded: no_encodings(),
            compressing: AtomicU8::new(0),
        }
    }

    /// Claim the compression of this entry's body in `coding`; false if another request
    /// holds the claim.
    pub fn claim_compression(&self, coding: Coding) -> bool {
        let bit = coding_bit(coding);
        self.compressing.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Give up a claim that produced nothing to keep.
    pub fn release_compression(&self, coding: Coding) {
        self.compressing
            .fetch_and(!coding_bit(coding), Ordering::AcqRel);
    }

    /// The entry with its encoded bodies (a copy with the same content), weighed with them.
    fn with_encodings(mut self, encoded: Encodings) -> Entry {
        self.weight = self.weight - encodings_weight(&self.encoded) + encodings_weight(&encoded);
        self.encoded = encoded;
        self
    }

    /// The encoding of this entry's body in `coding` at `level`, if it was made.
    pub fn encoding(&self, coding: Coding, level: i32) -> Option<&Encoded> {
        self.encoded
            .iter()
            .find(|e| e.coding == coding && e.level == level)
    }

    /// The same response with one more encoding of its body (replacing one in the same coding
    /// at another level).
    pub fn encoded_as(&self, add: Encoded) -> Entry {
        let mut encoded: Vec<Encoded> = self
            .encoded
            .iter()
            .filter(|e| e.coding != add.coding)
            .cloned()
            .collect();
        encoded.push(add);
        let mut e = Entry::new(
            self.id,
            self.header.clone(),
            self.body.clone(),
            self.freshness,
            self.variance,
            self.vary.clone(),
            self.etag_computed,
        )
        .labelled(self.tags.clone(), self.url.clone())
        .with_encodings(Arc::from(encoded));
        e.created = self.created;
        // the same response: a refresh under way and its place on disk stay as they were
        e.refresh_started = AtomicU64::new(self.refresh_started.load(Ordering::Acquire));
        e.disk_used = AtomicU64::new(self.disk_used.load(Ordering::Relaxed));
        e
    }

    /// The entry with the encodings of `previous`, when it is the same content (equal
    /// content tags, computed by etagate): a response fetched again in full because its origin
    /// gives no validators keeps what was compressed of it.
    pub fn carrying_encodings_of(self, previous: &Entry) -> Entry {
        let same = self.etag_computed
            && previous.etag_computed
            && self.body.len() == previous.body.len()
            && self.header.headers.get(http::header::ETAG).is_some()
            && self.header.headers.get(http::header::ETAG)
                == previous.header.headers.get(http::header::ETAG);
        if same && !previous.encoded.is_empty() {
            let encoded = previous.encoded.clone();
            self.with_encodings(encoded)
        } else {
            self
        }
    }

    /// The entry with its tags and URL, weighed with them.
    pub fn labelled(mut self, tags: Tags, url: Option<Arc<str>>) -> Entry {
        let before = self.label_weight();
        self.tags = tags;
        self.url = url;
        self.weight = self.weight - before + self.label_weight();
        self
    }

    fn label_weight(&self) -> usize {
        self.url.as_ref().map_or(0, |u| u.len())
            + self
                .tags
                .iter()
                .map(|t| t.len() + TAG_OVERHEAD)
                .sum::<usize>()
    }

    /// Whether the entry carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| &**t == tag)
    }

    /// The same body with a new header, freshness and tags (a 304 revalidation: the origin's
    /// 304 may bring new tags).
    pub fn revalidated(&self, id: u64, header: ResponseHeader, policy: &FillPolicy) -> Entry {
        // Encodings carry their tags, made from the identity tag: kept under the same tag only.
        let same_tag =
            header.headers.get(http::header::ETAG) == self.header.headers.get(http::header::ETAG);
        let encoded = if same_tag {
            self.encoded.clone()
        } else {
            no_encodings()
        };
        let mut e = Entry::new(
            id,
            header,
            self.body.clone(),
            policy.freshness,
            self.variance,
            self.vary.clone(),
            self.etag_computed,
        )
        .labelled(
            policy.tags.clone(),
            policy.url.clone().or_else(|| self.url.clone()),
        )
        .with_encodings(encoded);
        e.created = self.created;
        e
    }

    /// The same response marked stale at `now` (a soft purge).
    pub fn invalidated(&self, now: SystemTime) -> Entry {
        let mut freshness = self.freshness;
        freshness.invalidate(now);
        let mut e = Entry::new(
            self.id,
            self.header.clone(),
            self.body.clone(),
            freshness,
            self.variance,
            self.vary.clone(),
            self.etag_computed,
        )
        .labelled(self.tags.clone(), self.url.clone())
        .with_encodings(self.encoded.clone());
        e.created = self.created;
        e
    }

    /// The same response under a header that now carries a content ETag etagate computed
    /// (an entry stored before its route enabled ETags).
    pub fn retagged(&self, header: ResponseHeader) -> Entry {
        let mut e = Entry::new(
            self.id,
            header,
            self.body.clone(),
            self.freshness,
            self.variance,
            self.vary.clone(),
            true,
        )
        .labelled(self.tags.clone(), self.url.clone());
        e.created = self.created;
        e
    }

    pub fn etag(&self) -> Option<EntityTag<'_>> {
        self.header
            .headers
            .get(http::header::ETAG)
            .and_then(|v| EntityTag::parse(v.as_bytes()))
    }

    /// Claim the right to refresh this entry in the background; false if a refresh is already
    /// running (and not timed out).
    pub fn claim_refresh(&self) -> bool {
        let now = unix_secs();
        let prev = self.refresh_started.load(Ordering::Acquire);
        if prev != 0 && now.saturating_sub(prev) < REFRESH_TIMEOUT_SECS {
            return false;
        }
        self.refresh_started
            .compare_exchange(prev, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a hit on this entry now should renew its disk copy's place in the disk tier's
    /// eviction order: at most once per [`DISK_USE_INTERVAL_SECS`], so a hot entry does not
    /// take the disk index's lock on every hit, yet never looks unused to the disk tier.
    pub fn claim_disk_use(&self) -> bool {
        let now = unix_secs();
        let prev = self.disk_used.load(Ordering::Relaxed);
        now.saturating_sub(prev) >= DISK_USE_INTERVAL_SECS
            && self
                .disk_used
                .compare_exchange(prev, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// A pingora `CacheMeta` describing this entry (for pingora's own lookup path).
    pub fn to_meta(&self) -> CacheMeta {
        let f = &self.freshness;
        let mut meta = new_meta(f, self.created, self.header.clone());
        if let Some(v) = self.variance {
            meta.set_variance(v);
        }
        // Pingora's Age is `now - epoch`; anchor the epoch so that equals our current age.
        if f.initial_age != Duration::MAX {
            if let Some(epoch) = f.response_time.checked_sub(f.initial_age) {
                meta.set_epoch_override(epoch);
            }
        }
        meta.extensions_mut().insert(FillPolicy {
            freshness: self.freshness,
            compute_etag: false,
            vary: self.vary.clone(),
            tags: self.tags.clone(),
            url: self.url.clone(),
        });
        meta
    }
}

/// A pingora `CacheMeta` with the freshness windows of `f`. A `no-cache` response is stale from
/// the start, so every use goes through revalidation; so is a soft-purged one.
pub fn new_meta(f: &Freshness, created: SystemTime, header: ResponseHeader) -> CacheMeta {
    let fresh_until = if f.no_cache || f.invalidated {
        f.response_time
    } else {
        f.fresh_until()
    };
    CacheMeta::new(
        fresh_until,
        created,
        f.stale_while_revalidate.as_secs().min(u32::MAX as u64) as u32,
        f.stale_if_error.as_secs().min(u32::MAX as u64) as u32,
        header,
    )
}
