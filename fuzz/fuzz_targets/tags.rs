//! Cache tags from `Surrogate-Key` and `Cache-Tag` (`etagate::http::tags`). Input: `name: value`
//! header lines, as an origin could send them.
//!
//! Asserts:
//! - every tag is one a purge may name (`is_valid_tag`: not empty, at most 256 bytes, trimmed,
//!   no control characters), and appears in a header it was read from;
//! - no tag twice, at most `MAX_TAGS`, and an overflow only with exactly `MAX_TAGS` kept;
//! - reading a header's lines twice changes nothing (duplicates are kept once);
//! - reading one header alone gives a subset of reading both.
#![no_main]

use etagate::http::tags::{is_valid_tag, parse, TagHeader, MAX_TAGS};
use etagate_fuzz::{header_map, with_lines_doubled};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let map = header_map(data);
    let both = parse(&map, &TagHeader::ALL);
    assert!(both.tags.len() <= MAX_TAGS);
    assert!(!both.overflow || both.tags.len() == MAX_TAGS);
    for (i, t) in both.tags.iter().enumerate() {
        assert!(is_valid_tag(t), "{t:?} is not a valid tag");
        assert!(!both.tags[..i].contains(t), "{t:?} twice");
        let seen = TagHeader::ALL.iter().any(|h| {
            map.get_all(h.name())
                .iter()
                .any(|v| std::str::from_utf8(v.as_bytes()).is_ok_and(|s| s.contains(t.as_str())))
        });
        assert!(seen, "{t:?} is in no tag header");
    }
    for h in TagHeader::ALL {
        let doubled = with_lines_doubled(&map, &h.name());
        assert_eq!(parse(&doubled, &TagHeader::ALL), both, "doubling {h:?} lines");
        let alone = parse(&map, &[h]);
        if !both.overflow {
            assert!(alone.tags.iter().all(|t| both.tags.contains(t)));
        }
    }
});
