//! What the cache keeps: the decision for each origin response, the stored form of its
//! header (cache tags included), what of it clients do not see, and the invalidations an
//! unsafe request causes.

use crate::cache::entry::{new_meta, FillPolicy, Tags};
use crate::cache::key::{url_text, PrimaryKey};
use crate::http::headers::{merge_not_modified, strip_hop_by_hop};
use crate::http::storability::{assess, Exchange, NotStored, StorePolicy};
use crate::http::tags;
use crate::http::targeted::Targets;
use crate::http::vary::VarySpec;
use crate::runtime::{Route, RuntimeConfig};
use http::header::{CONTENT_LOCATION, CONTENT_TYPE, ETAG, LOCATION};
use pingora_cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora_http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::time::SystemTime;

/// The request a response would be stored for, as it was keyed.
pub struct Keyed<'a> {
    pub key: &'a PrimaryKey,
    pub scheme: &'a str,
    /// The canonical authority the key was built from.
    pub authority: &'a str,
}

impl Keyed<'_> {
    /// The URL text the stored response keeps for prefix purges: the key's own when it was
    /// built with it, else the same text built now (only for a response being stored).
    fn url(&self, req: &RequestHeader) -> Arc<str> {
        match self.key.url() {
            Some(u) => u.clone(),
            None => {
                let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                Arc::from(url_text(self.scheme, self.authority, pq))
            }
        }
    }
}

/// Remove what only this cache reads from a response going out (the stored copy keeps it):
/// the route's tag headers (the tag index is built from them) and etagate's own targeted field
/// (`http::targeted`), except `via_peer` (to a fleet member: the edge learns from it what the
/// owner did).
pub fn strip_for_client(
    resp: &mut ResponseHeader,
    route: &Route,
    config: &RuntimeConfig,
    via_peer: bool,
) {
    for h in route.spec.tags.stripped() {
        resp.remove_header(&h.name());
    }
    if !via_peer {
        resp.remove_header(config.config.cache.targets.own());
    }
}

/// A representation of `len` bytes is larger than the cache stores and than the route holds
/// back to tag: nothing would be done with it but stream it.
pub fn beyond_keeping(route: &Route, config: &RuntimeConfig, len: u64) -> bool {
    let etag = &route.spec.etag;
    let held = if etag.enabled { etag.max_buffer } else { 0 };
    let cache = &config.config.cache;
    let disk = cache.disk.as_ref().map_or(0, |d| d.max_object_size);
    len > cache.max_object_size.max(disk).max(held) as u64
}

fn uncacheable(reason: NotStored) -> RespCacheable {
    RespCacheable::Uncacheable(NoCacheReason::Custom(reason.as_str()))
}

fn exchange(sent_at: Option<SystemTime>) -> Exchange {
    let response_time = SystemTime::now();
    Exchange {
        request_time: sent_at.unwrap_or(response_time),
        response_time,
    }
}

fn meta_for(header: ResponseHeader, policy: FillPolicy) -> CacheMeta {
    let mut meta = new_meta(&policy.freshness, SystemTime::now(), header);
    meta.extensions_mut().insert(policy);
    meta
}

/// Decide whether to store a response fetched from the origin (the request method is already
/// GET: HEAD was turned into GET for the fetch). `sent_at`: when the request left for the
/// origin.
pub fn decide_fresh_response(
    req: &RequestHeader,
    resp: &ResponseHeader,
    route: &Route,
    keyed: &Keyed<'_>,
    sent_at: Option<SystemTime>,
    targets: &Targets,
) -> RespCacheable {
    let policy = StorePolicy {
        store_set_cookie: route.spec.cache.store_set_cookie,
        targets,
    };
    let status = resp.status.as_u16();
    match assess(
        &req.method,
        &req.headers,
        status,
        &resp.headers,
        &exchange(sent_at),
        &policy,
    ) {
        Err(reason) => uncacheable(reason),
        Ok(freshness) => {
            let mut stored = resp.clone();
            strip_hop_by_hop(&mut stored);
            let compute_etag = status == 200
                && !stored.headers.contains_key(ETAG)
                && route
                    .spec
                    .etag
                    .applies_to(stored.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()));
            let vary = VarySpec::of(&stored.headers);
            let found = tags::parse(&stored.headers, &route.spec.tags.headers);
            if found.overflow {
                // Stored with only some of its tags, it would survive a purge by the others.
                return RespCacheable::Uncacheable(NoCacheReason::Custom("too many cache tags"));
            }
            let tags: Tags = found.tags.into_iter().map(Arc::from).collect();
            RespCacheable::Cacheable(meta_for(
                stored,
                FillPolicy {
                    freshness,
                    compute_etag,
                    vary,
                    tags,
                    url: Some(keyed.url(req)),
                },
            ))
        }
    }
}

/// After the origin answered a revalidation with 304: the stored header updated with the 304's
/// fields (RFC 9111 §4.3.4), and the freshness that header now gives. A stored response that
/// may no longer be stored is still used this once (it was validated), just not kept.
pub fn decide_revalidated(
    req: &RequestHeader,
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
    route: &Route,
    keyed: &Keyed<'_>,
    sent_at: Option<SystemTime>,
    targets: &Targets,
) -> RespCacheable {
    let Ok(merged) = merge_not_modified(stored, not_modified) else {
        return uncacheable(NotStored::Status);
    };
    decide_fresh_response(req, &merged, route, keyed, sent_at, targets)
}

/// The URLs a successful unsafe request invalidates (RFC 9111 §4.4): its own, and the
/// same-origin `Location` and `Content-Location`.
pub fn invalidation_targets(
    req: &RequestHeader,
    resp: &ResponseHeader,
    scheme: &str,
    authority: &str,
) -> Vec<PrimaryKey> {
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = vec![PrimaryKey::with_text(scheme, authority, path)];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(v) = resp.headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(target) = resolve_same_origin(v.trim(), scheme, authority, req.uri.path()) {
            out.push(PrimaryKey::with_text(scheme, authority, &target));
        }
    }
    out
}

/// Resolve a URI reference against the request; `None` for another origin.
fn resolve_same_origin(
    reference: &str,
    scheme: &str,
    authority: &str,
    base_path: &str,
) -> Option<String> {
    let lower = reference.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix(&format!("{scheme}://")) {
        Some(&reference[reference.len() - r.len()..])
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        return None;
    } else {
        reference.strip_prefix("//")
    };
    if let Some(r) = rest {
        let (auth, path) = match r.find('/') {
            Some(p) => (&r[..p], &r[p..]),
            None => (r, "/"),
        };
        let same = crate::cache::key::key_host(auth, scheme)
            == crate::cache::key::key_host(authority, scheme);
        return same.then(|| path.to_string());
    }
    if reference.starts_with('/') {
        return Some(reference.to_string());
    }
    if reference.is_empty() {
        return None;
    }
    let dir = match base_path.rfind('/') {
        Some(p) => &base_path[..=p],
        None => "/",
    };
    Some(format!("{dir}{reference}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_references_and_rejects_other_origins() {
        let r = |s| resolve_same_origin(s, "http", "a.test", "/test/x");
        assert_eq!(r("/y"), Some("/y".to_string()));
        assert_eq!(r("y"), Some("/test/y".to_string()));
        assert_eq!(r("http://A.test/z?q"), Some("/z?q".to_string()));
        assert_eq!(r("http://a.test:80/z"), Some("/z".to_string()));
        assert_eq!(r("http://b.test/z"), None);
        assert_eq!(r("https://a.test/z"), None);
        assert_eq!(r("//a.test/w"), Some("/w".to_string()));
    }
}
