//! One stored response.

use crate::http::etag::EntityTag;
use crate::http::freshness::Freshness;
use crate::http::vary::VarySpec;
use bytes::Bytes;
use pingora_cache::key::HashBinary;
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bookkeeping bytes charged per entry beyond its header and body (the entry struct, its
/// `Arc`, the index slot).
const ENTRY_OVERHEAD: usize = 256;

/// What the storage needs to know about a response it is asked to store, handed over in the
/// `CacheMeta` extensions by `response_cache_filter`.
#[derive(Debug, Clone)]
pub struct FillPolicy {
    pub freshness: Freshness,
    /// Hash the body and add a content ETag if the response has none.
    pub compute_etag: bool,
    pub vary: VarySpec,
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
    pub created: SystemTime,
    pub weight: usize,
    /// Unix seconds at which a background refresh of this entry started (0: none).
    refresh_started: AtomicU64,
}

/// How long a background refresh may run before another request may start one.
const REFRESH_TIMEOUT_SECS: u64 = 30;

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
            created: SystemTime::now(),
            weight,
            refresh_started: AtomicU64::new(0),
        }
    }

    /// The same body with a new header and freshness (a 304 revalidation).
    pub fn revalidated(&self, id: u64, header: ResponseHeader, freshness: Freshness) -> Entry {
        let mut e = Entry::new(
            id,
            header,
            self.body.clone(),
            freshness,
            self.variance,
            self.vary.clone(),
            self.etag_computed,
        );
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
        );
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let prev = self.refresh_started.load(Ordering::Acquire);
        if prev != 0 && now.saturating_sub(prev) < REFRESH_TIMEOUT_SECS {
            return false;
        }
        self.refresh_started
            .compare_exchange(prev, now, Ordering::AcqRel, Ordering::Acquire)
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
        });
        meta
    }
}

/// A pingora `CacheMeta` with the freshness windows of `f`. A `no-cache` response is stale from
/// the start, so every use goes through revalidation.
pub fn new_meta(f: &Freshness, created: SystemTime, header: ResponseHeader) -> CacheMeta {
    let fresh_until = if f.no_cache {
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
