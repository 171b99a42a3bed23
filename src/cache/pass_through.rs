//! Which keys answer `no-store` or `private`: learned from the responses themselves, so that
//! later misses for them skip the inner subrequest (issue #15) or, in a fleet, the owner
//! (issue #13).
//!
//! A GET or HEAD that no stored response answers goes through an inner subrequest so that
//! etagate can hold the response back, tag it and judge the client's preconditions. For a
//! response that says `Cache-Control: no-store` none of that happens (it gets no tag, nobody
//! keeps it to revalidate), yet the subrequest costs every such request a second HTTP/1
//! round trip inside the process. Like pingora-cache's predictor for uncacheable keys, this
//! remembers the keys whose last response said `no-store`, and their next requests go through
//! Pingora's pipeline directly, without the cache.
//!
//! Bounded and forgetful:
//!
//! - at most [`CAPACITY`] keys (an LRU-ish `quick_cache`; about 3 MiB when full), so a client
//!   walking endless URLs of a `no-store` API costs no more than that;
//! - a key is remembered for [`REMEMBER_FOR`], then its next request takes the subrequest again
//!   and relearns;
//! - a key whose response, sent through the pipeline, no longer says `no-store` is forgotten at
//!   once: the request after it is tagged and stored again. The one response in between goes
//!   out untagged and unstored, which is the price of the prediction, the same one Pingora's own
//!   predictor pays.
//!
//! `no-store` skips the subrequest. A `private` response still gets a content tag (so it needs
//! the subrequest); in a fleet it is the one thing learned for it: no member may share it, so
//! its next requests go to the origin from the member the client reached instead of through
//! the key's owner (`docs/fleet.md`). A representation larger than both the cache's
//! `max_object_size` and the route's `etag.max_buffer` is neither stored nor tagged, so it skips
//! the subrequest and the cache like `no-store`, and its range requests are forwarded as ranges
//! (issue #14). One only too large to hold back, or of a skipped type, is not learned: it may
//! still be stored, and its misses must go through the cache.

use crate::http::cache_control::directives;
use crate::http::targeted::{effective, Targets, CDN_CACHE_CONTROL};
use crate::metrics::METRICS;
use http::HeaderMap;
use pingora_cache::key::HashBinary;
use prometheus::IntCounter;
use quick_cache::sync::Cache;
use std::time::{Duration, Instant};

/// Keys remembered at most.
pub const CAPACITY: usize = 65_536;
/// How long a `no-store` answer is believed.
pub const REMEMBER_FOR: Duration = Duration::from_secs(300);

/// What the last response for a key said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unshared {
    /// `no-store`: no subrequest, no cache, no owner.
    NoStore,
    /// `private`: no owner (the subrequest still tags it).
    Private,
    /// Larger than the cache stores and than the route holds back to tag: no subrequest, no
    /// cache, no owner, and a `Range` goes to the origin as a range (RFC 9111 §3.3 allows it;
    /// otherwise every range of it would cost a transfer of the whole representation).
    TooLarge,
}

impl Unshared {
    /// What a response says against sharing it (`no-store` first). A targeted field
    /// (RFC 9213, `http::targeted`) decides what this cache may share; `Cache-Control` alone
    /// still decides that a client gets no content ETag, so `NoStore` (skip everything) needs
    /// both to say so, and a response only the targeted field keeps from the cache is `Private`.
    pub fn of(headers: &HeaderMap, targets: &Targets) -> Option<Unshared> {
        Unshared::given_cache_control(Unshared::of_cache_control(headers), headers, targets)
    }

    /// [`Unshared::of`] for a caller that already has what `Cache-Control` alone says.
    pub fn given_cache_control(
        plain: Option<Unshared>,
        headers: &HeaderMap,
        targets: &Targets,
    ) -> Option<Unshared> {
        if !headers.contains_key(targets.own()) && !headers.contains_key(&CDN_CACHE_CONTROL) {
            return plain;
        }
        let (shared, targeted) = effective(headers, targets);
        if !targeted {
            return plain;
        }
        match (shared.no_store, shared.private) {
            (true, _) if plain == Some(Unshared::NoStore) => Some(Unshared::NoStore),
            (true, _) | (_, true) => Some(Unshared::Private),
            _ => None,
        }
    }

    /// `Cache-Control` alone, in one pass over its directives.
    pub fn of_cache_control(headers: &HeaderMap) -> Option<Unshared> {
        let mut found = None;
        for d in directives(headers.get_all(http::header::CACHE_CONTROL)) {
            if d.is("no-store") {
                return Some(Unshared::NoStore);
            }
            if d.is("private") {
                found = Some(Unshared::Private);
            }
        }
        found
    }
}

pub struct PassThrough {
    /// Key → what it said, and until when that is believed.
    keys: Cache<HashBinary, (Instant, Unshared), quick_cache::UnitWeighter, ahash::RandomState>,
    learned: IntCounter,
    predicted: IntCounter,
    forgotten: IntCounter,
    expired: IntCounter,
}

impl Default for PassThrough {
    fn default() -> Self {
        PassThrough::new(CAPACITY)
    }
}

impl PassThrough {
    pub fn new(capacity: usize) -> PassThrough {
        let counter = |outcome: &str| METRICS.pass_through.with_label_values(&[outcome]);
        PassThrough {
            learned: counter("learned"),
            predicted: counter("predicted"),
            forgotten: counter("forgotten"),
            expired: counter("expired"),
            keys: Cache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                ahash::RandomState::new(),
                Default::default(),
            ),
        }
    }

    /// What the last response for `key` said, while it is believed.
    pub fn predict(&self, key: &HashBinary) -> Option<Unshared> {
        self.predict_at(key, Instant::now())
    }

    #[cfg(test)]
    fn predicts_at(&self, key: &HashBinary, now: Instant) -> bool {
        self.predict_at(key, now) == Some(Unshared::NoStore)
    }

    fn predict_at(&self, key: &HashBinary, now: Instant) -> Option<Unshared> {
        match self.keys.get(key) {
            Some((until, what)) if until > now => {
                self.predicted.inc();
                Some(what)
            }
            Some(_) => {
                self.keys.remove(key);
                self.expired.inc();
                None
            }
            None => None,
        }
    }

    /// The response for `key` said `what`.
    pub fn learn(&self, key: HashBinary, what: Unshared) {
        self.learn_at(key, what, Instant::now());
    }

    fn learn_at(&self, key: HashBinary, what: Unshared, now: Instant) {
        if self.keys.get(&key).is_none() {
            self.learned.inc();
        }
        self.keys.insert(key, (now + REMEMBER_FOR, what));
    }

    /// The response for `key` no longer says what was learned.
    pub fn forget(&self, key: &HashBinary) {
        if self.keys.remove(key).is_some() {
            self.forgotten.inc();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> HashBinary {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k
    }

    #[test]
    fn learned_keys_are_predicted_until_they_expire_or_are_forgotten() {
        let p = PassThrough::new(16);
        let t0 = Instant::now();
        assert!(!p.predicts_at(&key(1), t0), "nothing learned yet");
        p.learn_at(key(1), Unshared::NoStore, t0);
        p.learn_at(key(2), Unshared::NoStore, t0);
        assert!(p.predicts_at(&key(1), t0 + Duration::from_secs(1)));
        assert!(!p.predicts_at(&key(3), t0), "only what was learned");
        p.forget(&key(1));
        assert!(!p.predicts_at(&key(1), t0), "forgotten at once");
        assert!(
            !p.predicts_at(&key(2), t0 + REMEMBER_FOR + Duration::from_secs(1)),
            "expired"
        );
        assert!(p.is_empty(), "an expired key is dropped when found");
    }

    #[test]
    fn what_a_response_says_against_sharing_it() {
        for (lines, expect) in [
            (&[][..], None),
            (&["max-age=60"][..], None),
            (&["private"][..], Some(Unshared::Private)),
            (
                &["Private=\"set-cookie\", max-age=0"][..],
                Some(Unshared::Private),
            ),
            (&["no-store"][..], Some(Unshared::NoStore)),
            (&["private", "no-store"][..], Some(Unshared::NoStore)),
            (&["no-store, private"][..], Some(Unshared::NoStore)),
        ] {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_str(l).expect("value"),
                );
            }
            assert_eq!(Unshared::of(&h, &Targets::default()), expect, "{lines:?}");
        }
    }

    /// A targeted field (RFC 9213) decides what the cache may share; Cache-Control what the
    /// client is told. Skipping everything needs both to say no-store.
    #[test]
    fn a_targeted_field_decides_what_may_be_shared() {
        for (fields, expect) in [
            (
                &[("cdn-cache-control", "no-store")][..],
                Some(Unshared::Private),
            ),
            (
                &[
                    ("cdn-cache-control", "no-store"),
                    ("cache-control", "no-store"),
                ][..],
                Some(Unshared::NoStore),
            ),
            (
                &[
                    ("cdn-cache-control", "max-age=60"),
                    ("cache-control", "no-store"),
                ][..],
                None,
            ),
            (
                &[
                    ("etagate-cache-control", "private"),
                    ("cache-control", "max-age=60"),
                ][..],
                Some(Unshared::Private),
            ),
            (
                &[("cdn-cache-control", "&&&"), ("cache-control", "no-store")][..],
                Some(Unshared::NoStore),
            ),
        ] {
            let h = crate::http::testing::headers(fields);
            assert_eq!(Unshared::of(&h, &Targets::default()), expect, "{fields:?}");
        }
    }

    #[test]
    fn a_private_key_skips_the_owner_but_not_the_subrequest() {
        let p = PassThrough::new(16);
        let t0 = Instant::now();
        p.learn_at(key(1), Unshared::Private, t0);
        assert_eq!(p.predict_at(&key(1), t0), Some(Unshared::Private));
        assert!(!p.predicts_at(&key(1), t0), "the subrequest still tags it");
        p.learn_at(key(1), Unshared::NoStore, t0);
        assert!(p.predicts_at(&key(1), t0), "the last answer counts");
    }

    #[test]
    fn the_number_of_keys_is_bounded() {
        let p = PassThrough::new(64);
        let t0 = Instant::now();
        for i in 0..10_000 {
            p.learn_at(key(i), Unshared::NoStore, t0);
        }
        assert!(p.len() <= 64, "{} keys", p.len());
        assert!(p.predicts_at(&key(9_999), t0), "the newest is kept");
    }
}
