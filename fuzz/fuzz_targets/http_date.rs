//! HTTP-dates (`etagate::http::date`). Input: the raw field value.
//!
//! Asserts: a parsed date formats as a 29-byte IMF-fixdate that parses back to the same
//! instant (Display/parse round trip), and surrounding whitespace does not change the result.
#![no_main]

use etagate::http::date::{fmt_http_date, parse_http_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_http_date(data);
    if let Some(t) = parsed {
        let written = fmt_http_date(t);
        assert_eq!(written.len(), 29, "not an IMF-fixdate: {written}");
        assert!(written.ends_with(" GMT"));
        assert_eq!(parse_http_date(written.as_bytes()), Some(t), "{written}");
    }
    let mut padded = b" \t".to_vec();
    padded.extend_from_slice(data);
    padded.extend_from_slice(b" ");
    assert_eq!(
        parse_http_date(&padded),
        parsed,
        "surrounding whitespace changed the date"
    );
});
