//! `Cache-Control` and `Surrogate-Control` directives (`etagate::http::cache_control`), request
//! and response side. Input: the header's field lines, one per `\n`-separated line.
//!
//! Asserts, beyond "no panic and no hang":
//! - every directive name is non-empty and holds no separator (`,` `=` SP HTAB);
//! - a delta-seconds value is never above `DELTA_SECONDS_MAX`, and only digits give one;
//! - the first occurrence of a directive wins (RFC 9111 §4.2.1), boolean directives are set
//!   exactly when present;
//! - without quoted strings, combining the field lines into one comma-separated line does not
//!   change what either side parses (RFC 9110 §5.3).
#![no_main]

use etagate::http::cache_control::{
    delta_seconds, directives, Delta, RequestDirectives, ResponseDirectives, SurrogateDirectives,
    DELTA_SECONDS_MAX,
};
use etagate_fuzz::{field_lines, with_lines_combined};
use http::header::CACHE_CONTROL;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    for v in field_lines(data) {
        map.append(CACHE_CONTROL, v.clone());
        map.append("surrogate-control", v);
    }

    let all: Vec<_> = directives(map.get_all(CACHE_CONTROL)).collect();
    for d in &all {
        assert!(!d.name.is_empty(), "empty directive name");
        assert!(
            !d.name
                .iter()
                .any(|b| matches!(b, b',' | b'=' | b' ' | b'\t')),
            "separator inside a directive name: {:?}",
            String::from_utf8_lossy(d.name)
        );
        match delta_seconds(d.value) {
            Delta::Seconds(n) => {
                assert!(n <= DELTA_SECONDS_MAX);
                let v = d.value.expect("a delta-seconds needs a value");
                assert!(!v.is_empty() && v.iter().all(u8::is_ascii_digit));
            }
            Delta::Invalid => {}
        }
    }
    let first = |name: &str| all.iter().find(|d| d.is(name));
    let any = |name: &str| all.iter().any(|d| d.is(name));

    let resp = ResponseDirectives::parse(map.get_all(CACHE_CONTROL));
    assert_eq!(
        resp.max_age,
        first("max-age").map(|d| delta_seconds(d.value))
    );
    assert_eq!(
        resp.s_maxage,
        first("s-maxage").map(|d| delta_seconds(d.value))
    );
    assert_eq!(resp.no_store, any("no-store"));
    assert_eq!(resp.no_cache, any("no-cache"));
    assert_eq!(resp.private, any("private"));
    assert_eq!(resp.must_revalidate, any("must-revalidate"));
    if resp.no_cache || resp.must_revalidate || resp.s_maxage.is_some() {
        assert!(resp.forbids_stale());
    }

    let req = RequestDirectives::parse(map.get_all(CACHE_CONTROL));
    let first_seconds = |name: &str| {
        all.iter()
            .filter(|d| d.is(name))
            .find_map(|d| match delta_seconds(d.value) {
                Delta::Seconds(s) => Some(s),
                Delta::Invalid => None,
            })
    };
    assert_eq!(req.max_age, first_seconds("max-age"));
    assert_eq!(req.min_fresh, first_seconds("min-fresh"));
    assert_eq!(req.stale_if_error, first_seconds("stale-if-error"));
    assert_eq!(req.no_cache, any("no-cache"));
    assert_eq!(req.no_store, any("no-store"));
    assert_eq!(req.only_if_cached, any("only-if-cached"));
    assert_eq!(req.is_empty(), req == RequestDirectives::default());

    let sur = SurrogateDirectives::parse(map.get_all("surrogate-control"), "etagate");
    if !data.contains(&b';') {
        // without targets every directive applies
        assert_eq!(sur.max_age, resp.max_age);
        assert_eq!(sur.no_store, resp.no_store);
    }

    if !data.contains(&b'"') {
        if let Some(combined) = with_lines_combined(&map, &CACHE_CONTROL) {
            assert_eq!(
                ResponseDirectives::parse(combined.get_all(CACHE_CONTROL)),
                resp,
                "combining field lines changed the response directives"
            );
            assert_eq!(
                RequestDirectives::parse(combined.get_all(CACHE_CONTROL)),
                req,
                "combining field lines changed the request directives"
            );
        }
    }
});
