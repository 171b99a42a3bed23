//! `Range` (`etagate::http::range::parse_range`) against an arbitrary representation length.
//! Input: the length in decimal on the first line (saturating; no digits means 0), then the
//! raw `Range` field value.
//!
//! Asserts (RFC 9110 §14): a partial range is non-empty and lies inside the representation; an
//! empty representation is never served partially; a `Range` that is not `bytes=` is ignored;
//! an answer never changes with whitespace around the value.
#![no_main]

use etagate::http::range::{parse_range, RangeRequest};
use etagate_fuzz::leading_number;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (len, value) = leading_number(data);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let r = parse_range(value, len);
    match &r {
        RangeRequest::Partial(range) => {
            assert!(range.start < range.end, "empty range {range:?}");
            assert!(range.end <= len, "{range:?} beyond {len}");
        }
        RangeRequest::Unsatisfiable | RangeRequest::Full => {}
    }
    if len == 0 {
        assert!(!matches!(r, RangeRequest::Partial(_)));
    }
    if !value.windows(6).any(|w| w == b"bytes=") {
        assert_eq!(
            r,
            RangeRequest::Full,
            "a Range that is not bytes= was honoured"
        );
    }
    let mut padded = b" ".to_vec();
    padded.extend_from_slice(value);
    padded.push(b'\t');
    assert_eq!(parse_range(&padded, len), r);
});
