//! `Vary` and the variance of a request (`etagate::http::vary`). Input: `name: value` header
//! lines; the map serves as both the response (its `Vary`) and the request.
//!
//! Asserts (RFC 9111 §4.1):
//! - nominated names come out lowercase, sorted, without duplicates, never empty;
//! - the order of `Vary` field lines does not change the spec;
//! - a nominated header's normalized value is absent exactly when the request lacks it, and
//!   combining its field lines into one does not change it nor the variance;
//! - reversing the field lines of an `Accept-*` list header does not change the variance.
#![no_main]

use etagate::http::vary::{normalized_value, variance, VarySpec};
use etagate_fuzz::{header_map, with_lines_combined, with_lines_reversed};
use http::header::VARY;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let map = header_map(data);
    let spec = VarySpec::of(&map);
    assert_eq!(VarySpec::of(&with_lines_reversed(&map, &VARY)), spec);
    let VarySpec::Headers(names) = spec else {
        return;
    };
    assert!(!names.is_empty());
    for pair in names.windows(2) {
        assert!(
            pair[0].as_str() < pair[1].as_str(),
            "not sorted or duplicated: {names:?}"
        );
    }
    let v = variance(&names, &map);
    assert_eq!(variance(&names, &map), v, "variance is not deterministic");
    for n in &names {
        let nv = normalized_value(n, &map);
        assert_eq!(nv.is_some(), map.contains_key(n));
        if let Some(combined) = with_lines_combined(&map, n) {
            assert_eq!(normalized_value(n, &combined), nv, "combining lines of {n}");
            assert_eq!(variance(&names, &combined), v, "combining lines of {n}");
        }
        if matches!(
            n.as_str(),
            "accept-encoding" | "accept-language" | "accept-charset"
        ) {
            let r = with_lines_reversed(&map, n);
            assert_eq!(variance(&names, &r), v, "order of {n} lines matters");
        }
    }
});
