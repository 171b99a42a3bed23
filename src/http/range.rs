//! Byte ranges (RFC 9110 §14) for responses etagate writes itself.
//!
//! One range is served as a 206; a request for several ranges gets the full 200, which §14.2
//! allows ("a server MAY ignore the Range header field") and which is what a multipart
//! response would cost more to build than it saves for the rare client that asks.

use std::ops::Range;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole representation (no Range, several ranges, or a malformed header).
    Full,
    /// Serve these bytes as a 206.
    Partial(Range<usize>),
    /// None of the requested bytes exist: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interpret one `Range` header value against a representation of `len` bytes.
pub fn parse_range(value: &[u8], len: usize) -> RangeRequest {
    let Ok(s) = std::str::from_utf8(value) else {
        return RangeRequest::Full;
    };
    let Some(spec) = s.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() != 1 {
        return RangeRequest::Full;
    }
    let Some((first, last)) = specs[0].split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // suffix-range: the last N bytes
        if !digits(last) {
            return RangeRequest::Full;
        }
        let n: usize = last.parse().unwrap_or(usize::MAX);
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial(len.saturating_sub(n)..len);
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeRequest::Full;
    }
    let start: usize = first.parse().unwrap_or(usize::MAX);
    let end_inclusive: usize = if last.is_empty() {
        usize::MAX
    } else {
        last.parse().unwrap_or(usize::MAX)
    };
    if end_inclusive < start {
        return RangeRequest::Full;
    }
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(start..end_inclusive.saturating_add(1).min(len))
}

/// The length of the whole representation a 200 or 206 response is (part of): its
/// `Content-Length`, or for a 206 the complete length after the `/` of `Content-Range`
/// (RFC 9110 §14.4); `None` when the response does not say.
pub fn representation_len(status: u16, h: &http::HeaderMap) -> Option<u64> {
    let text = |name| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    match status {
        200 => text(http::header::CONTENT_LENGTH)?.parse().ok(),
        206 => text(http::header::CONTENT_RANGE)?
            .strip_prefix("bytes ")?
            .rsplit_once('/')?
            .1
            .parse()
            .ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_length_of_a_response_or_of_the_representation_a_part_is_of() {
        let h = crate::http::testing::headers;
        type Case = (u16, &'static [(&'static str, &'static str)], Option<u64>);
        let cases: [Case; 6] = [
            (200, &[("content-length", "5000")], Some(5000)),
            (200, &[], None),
            (
                206,
                &[
                    ("content-length", "1024"),
                    ("content-range", "bytes 0-1023/67108864"),
                ],
                Some(67_108_864),
            ),
            (206, &[("content-range", "bytes 0-1023/*")], None),
            (206, &[("content-range", "items 0-1/2")], None),
            (304, &[("content-length", "5000")], None),
        ];
        for (status, fields, want) in cases {
            assert_eq!(
                representation_len(status, &h(fields)),
                want,
                "{status} {fields:?}"
            );
        }
    }
    use RangeRequest::*;

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(parse_range(b"bytes=0-1", 11), Partial(0..2));
        assert_eq!(parse_range(b"bytes=1-", 11), Partial(1..11));
        assert_eq!(parse_range(b"bytes=-1", 11), Partial(10..11));
        assert_eq!(parse_range(b"bytes=-100", 11), Partial(0..11));
        assert_eq!(parse_range(b"bytes=5-100", 11), Partial(5..11));
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(parse_range(b"bytes=11-", 11), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 11), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,3-4", 11), Full);
        assert_eq!(parse_range(b"items=0-1", 11), Full);
        assert_eq!(parse_range(b"bytes=5-2", 11), Full);
        assert_eq!(parse_range(b"bytes=a-b", 11), Full);
        assert_eq!(parse_range(b"bytes=0-0", 0), Unsatisfiable);
    }
}
