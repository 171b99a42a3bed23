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

#[cfg(test)]
mod tests {
    use super::*;
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
