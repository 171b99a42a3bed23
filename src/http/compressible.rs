//! Whether etagate may compress a response ([`may_compress`]), and the `Vary` every
//! representation of such a response carries ([`merge_vary`]).
//!
//! etagate compresses a response only when all of these hold:
//!
//! - the status is 200: a 206 is a part of a representation, never compressed on its own (its
//!   ranges are cut from a complete representation, see `docs/etags-and-caching.md`), and a 304
//!   or an error page has no body worth it;
//! - the content has no coding yet (`Content-Encoding` absent or `identity`): an encoded
//!   response is never encoded again;
//! - the response does not say `Cache-Control: no-transform` (RFC 9110 §7.7, RFC 9111
//!   §5.2.2.6);
//! - its media type is in the route's list ([`DEFAULT_TYPES`] by default); a response without
//!   a readable `Content-Type` is not compressed (etagate does not sniff), nor is
//!   `text/event-stream`, whatever the list says (events must reach the client one by one);
//! - the body has at least the route's minimum size ([`DEFAULT_MIN_SIZE`] by default).
//!
//! The answer depends on the response alone, never on the request: a HEAD is judged on the
//! response a GET gets, so it gets the same header fields.

use super::cache_control::directives;
use super::coding::{Coding, ContentEncoding};
use http::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    VARY,
};
use pingora_http::ResponseHeader;

/// The media types a route compresses unless it lists its own: text, and the structured text
/// formats served as `application/*` (JSON, JavaScript, XML and their `+json` / `+xml`
/// dialects, SVG included), WebAssembly, YAML, uncompressed font formats and icons. Formats
/// that are compressed already (JPEG, PNG, WebP, WOFF2, video, audio, archives, PDF) gain
/// nothing and are left out.
pub const DEFAULT_TYPES: [&str; 16] = [
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "*/*+xml",
    "application/wasm",
    "application/yaml",
    "application/x-yaml",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
    "image/x-icon",
    "image/vnd.microsoft.icon",
];

/// Bodies smaller than this are sent as they are by default: with its header, a body under
/// 1 KiB fits in one TCP segment (1460 bytes) compressed or not, so compressing it saves no
/// round trip, and gzip's 18 bytes of framing eat much of what it would save.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// A media range in a route's list: `type/subtype`, `type/*`, or a structured-syntax suffix
/// `type/*+suffix` (RFC 6838 §4.2.8); `*` as the type matches any type. Case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPattern {
    /// Lowercase; `None` for `*`.
    kind: Option<Box<str>>,
    subtype: Subtype,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subtype {
    Any,
    /// Lowercase.
    Exact(Box<str>),
    /// Lowercase, with its `+`.
    Suffix(Box<str>),
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl MediaPattern {
    /// Parse a pattern; `None` when it is not one of the shapes above (no `/`, empty parts,
    /// parameters, characters outside a token).
    pub fn parse(s: &str) -> Option<MediaPattern> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, sub) = s.split_once('/')?;
        if !is_token(kind) || !is_token(sub) {
            return None;
        }
        let kind = (kind != "*").then(|| kind.into());
        let subtype = if sub == "*" {
            Subtype::Any
        } else if let Some(suffix) = sub.strip_prefix("*+") {
            if suffix.is_empty() || suffix.contains('*') {
                return None;
            }
            Subtype::Suffix(format!("+{suffix}").into())
        } else if sub.contains('*') {
            return None;
        } else {
            Subtype::Exact(sub.into())
        };
        Some(MediaPattern { kind, subtype })
    }

    /// Whether a media type's essence (`type/subtype`, any case) matches.
    pub fn matches(&self, essence: &str) -> bool {
        let Some((t, st)) = essence.split_once('/') else {
            return false;
        };
        self.kind
            .as_deref()
            .is_none_or(|k| t.eq_ignore_ascii_case(k))
            && match &self.subtype {
                Subtype::Any => true,
                Subtype::Exact(e) => st.eq_ignore_ascii_case(e),
                Subtype::Suffix(x) => {
                    st.len() > x.len()
                        && st.is_char_boundary(st.len() - x.len())
                        && st[st.len() - x.len()..].eq_ignore_ascii_case(x)
                }
            }
    }
}

/// The essence of a `Content-Type` (`type/subtype`, parameters and whitespace removed), when
/// there is exactly one field line and it is readable.
pub fn media_type(headers: &HeaderMap) -> Option<&str> {
    let mut lines = headers.get_all(CONTENT_TYPE).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let essence = first.to_str().ok()?.split(';').next()?.trim();
    let (t, st) = essence.split_once('/')?;
    (is_token(t) && is_token(st)).then_some(essence)
}

/// What a route compresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub types: Vec<MediaPattern>,
    /// Bodies shorter than this many bytes are not compressed.
    pub min_size: u64,
}

impl Default for Rules {
    /// [`DEFAULT_TYPES`] and [`DEFAULT_MIN_SIZE`].
    fn default() -> Rules {
        Rules {
            types: DEFAULT_TYPES
                .iter()
                .filter_map(|t| MediaPattern::parse(t))
                .collect(),
            min_size: DEFAULT_MIN_SIZE,
        }
    }
}

/// The verdict on one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Compress,
    Skip(Skip),
}

/// Why a response is sent as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a 200.
    Status,
    /// Its content has a coding already.
    Encoded,
    /// `Cache-Control: no-transform`.
    NoTransform,
    /// No readable `Content-Type`.
    NoMediaType,
    /// `text/event-stream`.
    EventStream,
    /// A media type outside the route's list.
    MediaType,
    /// Fewer bytes than the route's minimum.
    TooSmall,
}

/// Whether etagate may compress a response with this status and these header fields, whose
/// complete (identity) body has `body_len` bytes. For a HEAD, pass the status, header and body
/// length of the GET response it stands for.
pub fn may_compress(status: u16, resp: &HeaderMap, body_len: u64, rules: &Rules) -> Verdict {
    let skip = if status != 200 {
        Skip::Status
    } else if ContentEncoding::of(resp) != ContentEncoding::Identity {
        Skip::Encoded
    } else if directives(resp.get_all(CACHE_CONTROL)).any(|d| d.is("no-transform")) {
        Skip::NoTransform
    } else {
        match media_type(resp) {
            None => Skip::NoMediaType,
            Some(m) if m.eq_ignore_ascii_case("text/event-stream") => Skip::EventStream,
            Some(m) if !rules.types.iter().any(|p| p.matches(m)) => Skip::MediaType,
            Some(_) if body_len < rules.min_size => Skip::TooSmall,
            Some(_) => return Verdict::Compress,
        }
    };
    Verdict::Skip(skip)
}

/// The `Vary` of every representation of a response etagate compresses (the identity one
/// included, since which one a request gets depends on its `Accept-Encoding`): the response's
/// own members, in their order and spelling, without duplicates (compared
/// case-insensitively), then `Accept-Encoding` unless already there. `Vary: *` stays `*`.
///
/// This is the field clients see; the cache keeps selecting stored responses by the origin's
/// `Vary` (one stored response holds all its codings, see `docs/etags-and-caching.md`).
pub fn merge_vary(existing: &HeaderMap) -> HeaderValue {
    let mut members: Vec<&[u8]> = Vec::new();
    for line in existing.get_all(VARY) {
        for m in line.as_bytes().split(|&b| b == b',') {
            let m = m.trim_ascii();
            if m.is_empty() {
                continue;
            }
            if m == b"*" {
                return HeaderValue::from_static("*");
            }
            if !members.iter().any(|k| k.eq_ignore_ascii_case(m)) {
                members.push(m);
            }
        }
    }
    if !members
        .iter()
        .any(|k| k.eq_ignore_ascii_case(b"accept-encoding"))
    {
        members.push(b"Accept-Encoding");
    }
    // Every member comes from a valid field value and the separator is visible ASCII, so this
    // cannot fail; `*` would be the safe answer if it did (no response selected for another).
    HeaderValue::from_bytes(&members.join(&b", "[..])).unwrap_or(HeaderValue::from_static("*"))
}

/// The weak form of a strong `ETag` value (`"v1"` → `W/"v1"`); `None` for one weak already.
pub fn weakened(tag: &HeaderValue) -> Option<HeaderValue> {
    let b = tag.as_bytes();
    if b.starts_with(b"W/") {
        return None;
    }
    HeaderValue::from_bytes(&[b"W/", b].concat()).ok()
}

/// Fields that carry a digest of the content's bytes.
const DIGESTS: [&str; 4] = ["content-digest", "repr-digest", "digest", "content-md5"];

/// Turn the header fields of a response etagate may compress into those of its representation
/// in `coding`: `Vary` merged ([`merge_vary`]) whatever the coding; for a compressed coding,
/// `Content-Encoding` set, `Content-Length` removed (the sender frames the encoded body) and
/// the `ETag` replaced by `tag`, the encoded representation's own. Without one (a body
/// compressed while it streams, or a tag that is not etagate's), a strong `ETag` is weakened:
/// it names the identity bytes, and a strong validator must change with the bytes (RFC 9110
/// §8.8.1), while a weak one only asserts the same content, which still holds.
pub fn represent(
    resp: &mut ResponseHeader,
    coding: Coding,
    tag: Option<HeaderValue>,
) -> pingora_error::Result<()> {
    // Through `ResponseHeader`'s own methods: it keeps the case of field names beside the map.
    let vary = merge_vary(&resp.headers);
    resp.insert_header(VARY, vary)?;
    if coding == Coding::Identity {
        return Ok(());
    }
    resp.insert_header(CONTENT_ENCODING, coding.token())?;
    resp.remove_header(&CONTENT_LENGTH);
    // Digests of the identity bytes (RFC 9530, and the obsolete ones) would not match.
    for name in DIGESTS {
        // (looked up first: a removal costs more than a lookup, and these are rarely there)
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    if let Some(t) = tag.or_else(|| resp.headers.get(ETAG).and_then(weakened)) {
        resp.insert_header(ETAG, t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::headers;

    #[test]
    fn the_default_list_compresses_text_formats_and_not_compressed_ones() {
        let rules = Rules::default();
        assert_eq!(
            rules.types.len(),
            DEFAULT_TYPES.len(),
            "every default parses"
        );
        let yes = [
            "text/html",
            "text/css",
            "text/plain",
            "text/javascript",
            "text/csv",
            "TEXT/HTML",
            "application/json",
            "application/ld+json",
            "application/problem+json",
            "application/manifest+json",
            "application/vnd.api+json",
            "application/javascript",
            "application/x-javascript",
            "application/xml",
            "application/atom+xml",
            "application/rss+xml",
            "application/xhtml+xml",
            "image/svg+xml",
            "Image/SVG+XML",
            "application/wasm",
            "application/yaml",
            "font/ttf",
            "font/otf",
            "image/x-icon",
            "image/vnd.microsoft.icon",
        ];
        let no = [
            "image/png",
            "image/jpeg",
            "image/webp",
            "image/avif",
            "font/woff2",
            "font/woff",
            "video/mp4",
            "audio/mpeg",
            "application/octet-stream",
            "application/pdf",
            "application/zip",
            "application/gzip",
            "application/zstd",
            "application/jsonx",
            "application/x-json+",
            "multipart/form-data",
        ];
        for m in yes {
            assert!(
                rules.types.iter().any(|p| p.matches(m)),
                "{m} is compressed"
            );
        }
        for m in no {
            assert!(!rules.types.iter().any(|p| p.matches(m)), "{m} is not");
        }
    }

    #[test]
    fn patterns_parse_and_match() {
        let rows: [(&str, &str, bool); 14] = [
            ("text/*", "text/html", true),
            ("text/*", "texts/html", false),
            ("*/*", "anything/at-all", true),
            ("application/json", "application/json", true),
            ("application/json", "application/json5", false),
            ("*/*+xml", "image/svg+xml", true),
            ("*/*+xml", "application/xml", false),
            ("*/*+xml", "application/+xml", false),
            ("application/*+json", "application/geo+json", true),
            ("application/*+json", "text/x+json", false),
            ("Application/JSON", "application/json", true),
            ("text/html", "text/html", true),
            ("*/json", "text/json", true),
            ("text/*", "text", false),
        ];
        for (pattern, essence, want) in rows {
            let p = MediaPattern::parse(pattern).expect(pattern);
            assert_eq!(p.matches(essence), want, "{pattern} ~ {essence}");
        }
        for bad in [
            "text",
            "/html",
            "text/",
            "text/ht ml",
            "text/*+",
            "text/a*",
            "*+xml",
            "t/*+x*",
            "",
        ] {
            assert_eq!(MediaPattern::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn media_type_is_the_essence_of_one_readable_content_type() {
        let rows: [(&[&str], Option<&str>); 7] = [
            (&["text/html; charset=utf-8"], Some("text/html")),
            (&[" application/json "], Some("application/json")),
            (&["Text/HTML;charset=UTF-8"], Some("Text/HTML")),
            (&[], None),
            (&["text/html", "text/plain"], None),
            (&["html"], None),
            (&["text/ html"], None),
        ];
        for (lines, want) in rows {
            let h = headers(
                &lines
                    .iter()
                    .map(|l| ("content-type", *l))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(media_type(&h), want, "{lines:?}");
        }
    }

    #[test]
    fn what_may_be_compressed() {
        use Skip::*;
        let html = ("content-type", "text/html; charset=utf-8");
        let big = 16_384;
        let rules = Rules::default();
        // (case, status, response header fields, body length, verdict)
        type Row<'a> = (&'a str, u16, Vec<(&'a str, &'a str)>, u64, Verdict);
        let rows: Vec<Row> = vec![
            ("a page", 200, vec![html], big, Verdict::Compress),
            (
                "exactly the minimum",
                200,
                vec![html],
                1024,
                Verdict::Compress,
            ),
            (
                "one byte short",
                200,
                vec![html],
                1023,
                Verdict::Skip(TooSmall),
            ),
            (
                "a 206",
                206,
                vec![html, ("content-range", "bytes 0-99/16384")],
                big,
                Verdict::Skip(Status),
            ),
            ("a 304", 304, vec![html], 0, Verdict::Skip(Status)),
            ("a 404 page", 404, vec![html], big, Verdict::Skip(Status)),
            ("a 203", 203, vec![html], big, Verdict::Skip(Status)),
            (
                "gzip already",
                200,
                vec![html, ("content-encoding", "gzip")],
                big,
                Verdict::Skip(Encoded),
            ),
            (
                "br already",
                200,
                vec![html, ("content-encoding", "br")],
                big,
                Verdict::Skip(Encoded),
            ),
            (
                "an unknown coding",
                200,
                vec![html, ("content-encoding", "deflate")],
                big,
                Verdict::Skip(Encoded),
            ),
            (
                "identity is no coding",
                200,
                vec![html, ("content-encoding", "identity")],
                big,
                Verdict::Compress,
            ),
            (
                "no-transform",
                200,
                vec![html, ("cache-control", "public, no-transform")],
                big,
                Verdict::Skip(NoTransform),
            ),
            (
                "NO-TRANSFORM on a second line",
                200,
                vec![
                    html,
                    ("cache-control", "max-age=60"),
                    ("cache-control", "NO-TRANSFORM"),
                ],
                big,
                Verdict::Skip(NoTransform),
            ),
            (
                "other directives",
                200,
                vec![html, ("cache-control", "no-cache, private")],
                big,
                Verdict::Compress,
            ),
            (
                "no content type",
                200,
                vec![],
                big,
                Verdict::Skip(NoMediaType),
            ),
            (
                "an unreadable content type",
                200,
                vec![("content-type", "html")],
                big,
                Verdict::Skip(NoMediaType),
            ),
            (
                "an image",
                200,
                vec![("content-type", "image/png")],
                big,
                Verdict::Skip(MediaType),
            ),
            (
                "svg",
                200,
                vec![("content-type", "image/svg+xml")],
                big,
                Verdict::Compress,
            ),
            (
                "json",
                200,
                vec![("content-type", "application/json")],
                big,
                Verdict::Compress,
            ),
            (
                "an event stream",
                200,
                vec![("content-type", "text/event-stream")],
                big,
                Verdict::Skip(EventStream),
            ),
        ];
        for (name, status, pairs, len, want) in rows {
            assert_eq!(
                may_compress(status, &headers(&pairs), len, &rules),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_event_stream_exclusion_holds_whatever_the_list() {
        let rules = Rules {
            types: vec![MediaPattern::parse("*/*").expect("pattern")],
            min_size: 0,
        };
        let h = headers(&[("content-type", "Text/Event-Stream")]);
        assert_eq!(
            may_compress(200, &h, 1 << 20, &rules),
            Verdict::Skip(Skip::EventStream)
        );
        let h = headers(&[("content-type", "application/octet-stream")]);
        assert_eq!(may_compress(200, &h, 0, &rules), Verdict::Compress);
    }

    #[test]
    fn vary_gains_accept_encoding_once() {
        let rows: [(&[&str], &str); 12] = [
            (&[], "Accept-Encoding"),
            (&[""], "Accept-Encoding"),
            (&["Accept"], "Accept, Accept-Encoding"),
            (&["accept-encoding"], "accept-encoding"),
            (&["Accept-Encoding, Accept"], "Accept-Encoding, Accept"),
            (&["Cookie", "ACCEPT-ENCODING"], "Cookie, ACCEPT-ENCODING"),
            (
                &["Accept, accept", "Origin"],
                "Accept, Origin, Accept-Encoding",
            ),
            (&[" Accept ,, Origin "], "Accept, Origin, Accept-Encoding"),
            (&["*"], "*"),
            (&["Accept, *"], "*"),
            (&["Accept", "*"], "*"),
            (&["accept-encoding", "accept-encoding"], "accept-encoding"),
        ];
        for (lines, want) in rows {
            let h = headers(&lines.iter().map(|l| ("vary", *l)).collect::<Vec<_>>());
            assert_eq!(merge_vary(&h), want, "{lines:?}");
        }
    }

    #[test]
    fn the_merged_vary_means_what_the_origin_said_plus_accept_encoding() {
        use crate::http::vary::VarySpec;
        let h = headers(&[("vary", "Origin, accept"), ("vary", "origin")]);
        let mut merged = HeaderMap::new();
        merged.insert(VARY, merge_vary(&h));
        let VarySpec::Headers(names) = VarySpec::of(&merged) else {
            panic!("not a list")
        };
        let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept", "accept-encoding", "origin"]);
    }

    #[test]
    fn a_representations_header_fields() {
        let get = |h: &HeaderMap, n| h.get(n).map(|v| v.to_str().expect("ascii").to_string());
        type Row<'a> = (
            &'a [(&'a str, &'a str)],
            Coding,
            Option<&'a str>,
            [Option<&'a str>; 4],
        );
        // (response fields, coding, new tag) -> [Vary, Content-Encoding, Content-Length, ETag]
        let rows: [Row; 5] = [
            (
                &[("etag", "\"b3-X\""), ("content-length", "9")],
                Coding::Identity,
                None,
                [Some("Accept-Encoding"), None, Some("9"), Some("\"b3-X\"")],
            ),
            (
                &[
                    ("etag", "\"b3-X\""),
                    ("content-length", "9"),
                    ("vary", "Origin"),
                ],
                Coding::Gzip,
                Some("\"b3-X.gz.Z\""),
                [
                    Some("Origin, Accept-Encoding"),
                    Some("gzip"),
                    None,
                    Some("\"b3-X.gz.Z\""),
                ],
            ),
            (
                &[("etag", "\"origin\"")],
                Coding::Br,
                None,
                [
                    Some("Accept-Encoding"),
                    Some("br"),
                    None,
                    Some("W/\"origin\""),
                ],
            ),
            (
                &[("etag", "W/\"origin\"")],
                Coding::Zstd,
                None,
                [
                    Some("Accept-Encoding"),
                    Some("zstd"),
                    None,
                    Some("W/\"origin\""),
                ],
            ),
            (
                &[],
                Coding::Zstd,
                None,
                [Some("Accept-Encoding"), Some("zstd"), None, None],
            ),
        ];
        for (fields, coding, tag, want) in rows {
            let mut r = ResponseHeader::build(200, None).expect("build");
            for (k, v) in fields {
                r.append_header(k.to_string(), *v).expect("field");
            }
            represent(&mut r, coding, tag.map(HeaderValue::from_static)).expect("represent");
            let got = [VARY, CONTENT_ENCODING, CONTENT_LENGTH, ETAG].map(|n| get(&r.headers, n));
            assert_eq!(
                got,
                want.map(|v| v.map(str::to_string)),
                "{fields:?} {coding:?}"
            );
        }
    }
}
