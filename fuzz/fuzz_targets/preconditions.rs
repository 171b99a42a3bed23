//! Conditional request evaluation (`etagate::http::preconditions::evaluate` and
//! `if_range_allows`) with arbitrary request header maps. Input, `\n`-separated:
//! line 1 the method, line 2 the stored response's `ETag`, line 3 its `Last-Modified`, line 4
//! its `Date` (each as raw field bytes, malformed ones count as absent), then the request's
//! `name: value` header lines.
//!
//! Asserts (RFC 9110 §13):
//! - no method other than GET and HEAD is ever answered 304; GET and HEAD are answered alike;
//! - without any precondition field the answer is to proceed;
//! - `If-Match` against an absent or weak validator never passes unless it is `*` (strong
//!   comparison), and an absent one never passes at all;
//! - the answer depends neither on the order of the `If-Match` / `If-None-Match` field lines
//!   nor on duplicated lines;
//! - `If-Modified-Since` is ignored when `If-None-Match` is present;
//! - `If-Range` without a strong current validator never allows a range by entity-tag, and a
//!   request without `If-Range` is always allowed one.
#![no_main]

use etagate::http::etag::{EntityTag, TagList};
use etagate::http::preconditions::{evaluate, if_range_allows, Outcome, Validators};
use etagate_fuzz::{header_map_from, with_lines_doubled, with_lines_reversed};
use http::header::{
    DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED,
};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Some(method) = lines.next().and_then(|m| Method::from_bytes(m).ok()) else {
        return;
    };
    let mut stored = HeaderMap::new();
    for name in [ETAG, LAST_MODIFIED, DATE] {
        if let Some(v) = lines.next().and_then(|l| HeaderValue::from_bytes(l).ok()) {
            if !v.is_empty() {
                stored.insert(name, v);
            }
        }
    }
    let req = header_map_from(lines);
    let v = Validators::of_stored(&stored);

    let outcome = evaluate(&method, &req, &v);
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if !get_or_head {
        assert_ne!(outcome, Outcome::NotModified, "304 for {method}");
    } else {
        let other = if method == Method::GET {
            Method::HEAD
        } else {
            Method::GET
        };
        assert_eq!(evaluate(&other, &req, &v), outcome, "GET and HEAD differ");
    }

    let conditional = [
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
    ];
    if !conditional.iter().any(|n| req.contains_key(n)) {
        assert_eq!(outcome, Outcome::Proceed);
    }

    if req.contains_key(IF_MATCH) {
        let list = TagList::parse(req.get_all(IF_MATCH).iter().map(|h| h.as_bytes()));
        let weak_or_absent = v.etag.is_none_or(|t| t.weak);
        if v.etag.is_none() || (weak_or_absent && list != TagList::Any) {
            assert_eq!(
                outcome,
                Outcome::PreconditionFailed,
                "If-Match passed weakly"
            );
        }
    }

    for name in [IF_MATCH, IF_NONE_MATCH] {
        if req.contains_key(&name) {
            let r = with_lines_reversed(&req, &name);
            assert_eq!(
                evaluate(&method, &r, &v),
                outcome,
                "{name} line order matters"
            );
            let d = with_lines_doubled(&req, &name);
            assert_eq!(
                evaluate(&method, &d, &v),
                outcome,
                "{name} duplicates matter"
            );
        }
    }

    if req.contains_key(IF_NONE_MATCH) {
        let mut without = req.clone();
        without.remove(IF_MODIFIED_SINCE);
        assert_eq!(
            evaluate(&method, &without, &v),
            outcome,
            "If-Modified-Since counted beside If-None-Match"
        );
    }

    let allowed = if_range_allows(&req, &v);
    match req.get(IF_RANGE) {
        None => assert!(allowed),
        Some(ir) => {
            if EntityTag::parse(ir.as_bytes()).is_some() && v.etag.is_none_or(|t| t.weak) {
                assert!(!allowed, "If-Range matched a weak or absent tag");
            }
        }
    }
});
