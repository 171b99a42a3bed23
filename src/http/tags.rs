//! Cache tags (surrogate keys): the names an origin gives a response so that everything sharing
//! one can be purged together, from `Surrogate-Key` (space separated, as Fastly and Varnish
//! read it) and `Cache-Tag` (comma separated, as Cloudflare and Akamai read it).
//!
//! A tag is matched exactly, byte for byte (no case folding: `Product-1` and `product-1` are
//! two tags). What one response may carry is bounded, because every tag becomes an entry in
//! the cache's tag index:
//!
//! - a tag longer than [`MAX_TAG_LEN`] bytes is **dropped, not truncated**: a truncated tag
//!   could equal another, shorter tag and a purge of that one would remove this response too.
//!   A purge request naming such a tag is refused, so nobody waits for it to match;
//! - more than [`MAX_TAGS`] distinct tags make [`Tags::overflow`] true: the caller decides
//!   (etagate does not store such a response, so a purge by its 65th tag cannot silently miss
//!   it).

use http::header::HeaderName;
use http::HeaderMap;

/// Distinct tags kept per response.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// A response header that carries tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagHeader {
    /// `Surrogate-Key: a b c`: tags separated by spaces (and tabs).
    SurrogateKey,
    /// `Cache-Tag: a,b,c`: tags separated by commas; a tag may contain spaces inside.
    CacheTag,
}

impl TagHeader {
    pub const ALL: [TagHeader; 2] = [TagHeader::SurrogateKey, TagHeader::CacheTag];

    pub fn name(self) -> HeaderName {
        match self {
            TagHeader::SurrogateKey => HeaderName::from_static("surrogate-key"),
            TagHeader::CacheTag => HeaderName::from_static("cache-tag"),
        }
    }

    fn split(self, value: &str) -> impl Iterator<Item = &str> {
        let sep: fn(char) -> bool = match self {
            TagHeader::SurrogateKey => |c| c == ' ' || c == '\t',
            TagHeader::CacheTag => |c| c == ',',
        };
        value.split(sep)
    }
}

/// The tags of one response, in the order first seen, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    pub tags: Vec<String>,
    /// More than [`MAX_TAGS`] distinct tags were given (only the first ones are in `tags`).
    pub overflow: bool,
}

/// Whether `tag` could ever come out of [`parse`]: not empty, at most [`MAX_TAG_LEN`] bytes,
/// no surrounding whitespace and no control characters.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag.trim() == tag
        && !tag.chars().any(char::is_control)
}

/// The tags in `headers` under the headers `from`: every line of each header, split by the
/// header's separator, each piece trimmed; empty, over-long and control-character pieces
/// dropped, duplicates (across headers too) removed. A header line that is not UTF-8 is
/// ignored as a whole.
pub fn parse(headers: &HeaderMap, from: &[TagHeader]) -> Tags {
    let mut out = Tags::default();
    for which in from {
        for line in headers.get_all(which.name()) {
            let Ok(text) = std::str::from_utf8(line.as_bytes()) else {
                continue;
            };
            for tag in which.split(text).map(str::trim) {
                if !is_valid_tag(tag) || out.tags.iter().any(|t| t == tag) {
                    continue;
                }
                if out.tags.len() == MAX_TAGS {
                    out.overflow = true;
                    return out;
                }
                out.tags.push(tag.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    struct Case {
        name: &'static str,
        headers: &'static [(&'static str, &'static [u8])],
        from: &'static [TagHeader],
        expect: &'static [&'static str],
    }

    const BOTH: &[TagHeader] = &[TagHeader::SurrogateKey, TagHeader::CacheTag];

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn tags_from_surrogate_key_and_cache_tag() {
        let cases = [
            Case {
                name: "Surrogate-Key is separated by spaces",
                headers: &[("surrogate-key", b"a b  c")],
                from: BOTH,
                expect: &["a", "b", "c"],
            },
            Case {
                name: "Surrogate-Key also splits on tabs, and a comma is part of a key",
                headers: &[("surrogate-key", b"a\tb,c")],
                from: BOTH,
                expect: &["a", "b,c"],
            },
            Case {
                name: "Cache-Tag is separated by commas, pieces trimmed, inner spaces kept",
                headers: &[("cache-tag", b" a , b c,, ,d ")],
                from: BOTH,
                expect: &["a", "b c", "d"],
            },
            Case {
                name: "several lines of one header are all read",
                headers: &[("cache-tag", b"a"), ("cache-tag", b"b,c")],
                from: BOTH,
                expect: &["a", "b", "c"],
            },
            Case {
                name: "duplicates within and across headers are kept once, first order",
                headers: &[("surrogate-key", b"b a b"), ("cache-tag", b"a,c,b")],
                from: BOTH,
                expect: &["b", "a", "c"],
            },
            Case {
                name: "only the configured headers are read",
                headers: &[("surrogate-key", b"a"), ("cache-tag", b"b")],
                from: &[TagHeader::CacheTag],
                expect: &["b"],
            },
            Case {
                name: "no tag headers configured: no tags",
                headers: &[("surrogate-key", b"a")],
                from: &[],
                expect: &[],
            },
            Case {
                name: "empty and blank values give no tags",
                headers: &[("surrogate-key", b""), ("cache-tag", b" , ,")],
                from: BOTH,
                expect: &[],
            },
            Case {
                name: "matching is exact: case and punctuation count",
                headers: &[("surrogate-key", b"Product-1 product-1 product-1/")],
                from: BOTH,
                expect: &["Product-1", "product-1", "product-1/"],
            },
            Case {
                name: "UTF-8 tags are kept; a line that is not UTF-8 is ignored",
                headers: &[("cache-tag", b"caf\xc3\xa9"), ("cache-tag", b"x\xff,y")],
                from: BOTH,
                expect: &["caf\u{e9}"],
            },
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                let got = parse(&headers(c.headers), c.from);
                let want: Vec<String> = c.expect.iter().map(|s| s.to_string()).collect();
                (got.tags != want || got.overflow).then(|| {
                    format!(
                        "{}: got {:?} (overflow {}), want {want:?}",
                        c.name, got.tags, got.overflow
                    )
                })
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn a_tag_longer_than_the_limit_is_dropped_not_truncated() {
        let at_limit = "a".repeat(MAX_TAG_LEN);
        let over = "b".repeat(MAX_TAG_LEN + 1);
        let mut h = HeaderMap::new();
        h.insert(
            "surrogate-key",
            HeaderValue::from_str(&format!("{over} {at_limit} short")).expect("value"),
        );
        let got = parse(&h, BOTH);
        assert_eq!(got.tags, vec![at_limit, "short".to_string()]);
        assert!(!got.overflow);
        assert!(!is_valid_tag(&over));
    }

    #[test]
    fn more_than_the_limit_of_distinct_tags_is_an_overflow() {
        let exactly: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        let mut h = HeaderMap::new();
        // Duplicates do not count against the limit.
        h.insert(
            "cache-tag",
            HeaderValue::from_str(&format!("{},t0,t1", exactly.join(","))).expect("value"),
        );
        let got = parse(&h, BOTH);
        assert_eq!(got.tags, exactly);
        assert!(!got.overflow);
        h.append("surrogate-key", HeaderValue::from_static("one-more"));
        let got = parse(&h, BOTH);
        assert_eq!(got.tags.len(), MAX_TAGS);
        assert!(got.overflow);
    }

    #[test]
    fn valid_tags_are_what_parse_can_produce() {
        assert!(is_valid_tag("a"));
        assert!(is_valid_tag("b c"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag(" a"));
        assert!(!is_valid_tag("a\u{1}"));
    }
}
