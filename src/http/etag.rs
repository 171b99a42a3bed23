//! Entity tags (RFC 9110 §8.8.3): parsing, comparison, and the tags etagate computes.
//!
//! Content tag format: `"b3-` + base64url (no padding) of the first 16 bytes of the BLAKE3
//! hash of the body bytes sent + `"`, e.g. `"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg"`. 128 bits make a
//! collision between two versions of one resource negligible; the `b3-` prefix lets etagate
//! recognise its own tags (an origin cannot validate them, so they are never sent upstream).
//! For an identity response the bytes hashed are exactly the bytes sent.
//!
//! A representation etagate compresses itself (`docs/compression.md`) gets the strong tag
//! `"b3-X.gz.Z"` ([`encoded_etag`]): `X` is the identity content's, `Z` names the encoded
//! bytes. `If-None-Match` matches any representation of the same content ([`same_content`]);
//! `If-Match` and `If-Range` compare exactly, representation by representation.
//!
//! A response the origin encoded itself (`Content-Encoding: gzip`, `br` or `zstd`) is tagged by
//! its decoded content instead ([`decoded_etag`]): `W/"b3-X.gz"`, `.br`, `.zst`. Origins send
//! different bytes for one content (Django's `GZipMiddleware` pads each response randomly
//! against BREACH; servers in a pool compress at different levels), and a tag of the bytes
//! would never let a client revalidate. Such a tag is weak by RFC 9110 §8.8.1: a strong
//! validator must change whenever the representation's bytes do, and these bytes change while
//! the tag does not. Weak, it serves `If-None-Match` (weak comparison, §13.1.2), and
//! `If-Match` / `If-Range` (strong comparison) never match it, so a range request gets the
//! whole response rather than a piece of other bytes. A body that cannot be decoded within
//! the bounds of [`super::decode`] gets the strong tag of its bytes, as before.

use super::coding::{Coding, ContentEncoding};
use super::decode::{decoded_hash, Limits};
use base64::Engine;
use http::HeaderMap;

/// An entity-tag: `W/"opaque"` or `"opaque"`; `opaque` is without the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a [u8],
}

fn is_etagc(b: u8) -> bool {
    // etagc = %x21 / %x23-7E / obs-text
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl<'a> EntityTag<'a> {
    /// Parse one entity-tag, surrounding whitespace allowed. `None` when malformed.
    pub fn parse(v: &'a [u8]) -> Option<EntityTag<'a>> {
        let v = trim(v);
        let (weak, rest) = match v.strip_prefix(b"W/") {
            Some(r) => (true, r),
            None => (false, v),
        };
        let inner = rest.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if !inner.iter().all(|&b| is_etagc(b)) {
            return None;
        }
        Some(EntityTag {
            weak,
            opaque: inner,
        })
    }

    /// Strong comparison: both strong and the same opaque value.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque value, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map(|p| p + 1)
        .unwrap_or(start);
    &v[start..end.max(start)]
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList<'a> {
    /// `*`: any current representation.
    Any,
    /// The well-formed members; malformed members are dropped, so a wholly malformed header is
    /// an empty list that matches nothing.
    Tags(Vec<EntityTag<'a>>),
}

impl<'a> TagList<'a> {
    /// Parse all field lines of the header. Commas inside a tag's quotes belong to the tag.
    pub fn parse<I: IntoIterator<Item = &'a [u8]>>(lines: I) -> TagList<'a> {
        let mut tags = Vec::new();
        for line in lines {
            if trim(line) == b"*" {
                return TagList::Any;
            }
            let mut rest = line;
            while !rest.is_empty() {
                // find the end of this member: a comma outside quotes
                let mut in_quotes = false;
                let mut end = rest.len();
                for (i, &b) in rest.iter().enumerate() {
                    match b {
                        b'"' => in_quotes = !in_quotes,
                        b',' if !in_quotes => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                let member = trim(&rest[..end]);
                if member == b"*" {
                    return TagList::Any;
                }
                if let Some(t) = EntityTag::parse(member) {
                    tags.push(t);
                }
                rest = if end < rest.len() {
                    &rest[end + 1..]
                } else {
                    &[]
                };
            }
        }
        TagList::Tags(tags)
    }

    /// RFC 9110 §13.1.1: If-Match uses the strong comparison.
    pub fn matches_strong(&self, current: Option<&EntityTag<'_>>) -> bool {
        match (self, current) {
            (TagList::Any, c) => c.is_some(),
            (TagList::Tags(tags), Some(c)) => tags.iter().any(|t| t.strong_eq(c)),
            (TagList::Tags(_), None) => false,
        }
    }

    /// RFC 9110 §13.1.2: If-None-Match uses the weak comparison. Two of etagate's own tags
    /// also match when they name the same content in different codings ([`same_content`]).
    pub fn matches_weak(&self, current: Option<&EntityTag<'_>>) -> bool {
        match (self, current) {
            (TagList::Any, c) => c.is_some(),
            (TagList::Tags(tags), Some(c)) => {
                tags.iter().any(|t| t.weak_eq(c) || same_content(t, c))
            }
            (TagList::Tags(_), None) => false,
        }
    }
}

/// The strong ETag etagate gives a body whose BLAKE3 hash is `hash`.
pub fn content_etag(hash: &blake3::Hash) -> String {
    let mut s = String::with_capacity(27);
    s.push_str("\"b3-");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&hash.as_bytes()[..16], &mut s);
    s.push('"');
    s
}

/// The weak tag of content the origin encoded in `coding`, from the hash of the decoded
/// content: `W/"b3-X.gz"` (see the module documentation for why weak). `Identity` gives
/// [`content_etag`].
pub fn decoded_etag(decoded: &blake3::Hash, coding: Coding) -> String {
    if coding == Coding::Identity {
        return content_etag(decoded);
    }
    let mut s = String::with_capacity(34);
    s.push_str("W/\"b3-");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_string(&decoded.as_bytes()[..16], &mut s);
    s.push('.');
    s.push_str(coding.tag_suffix());
    s.push('"');
    s
}

/// The tag etagate gives a response with these header fields and this body (in pieces), whose
/// bytes hash to `bytes_hash`: the decoded content's weak tag when the origin encoded it in a
/// coding etagate knows and the body decodes within [`Limits::DEFAULT`], else the strong tag
/// of the bytes.
pub fn computed_etag<B: AsRef<[u8]>>(
    headers: &HeaderMap,
    body: &[B],
    bytes_hash: &blake3::Hash,
) -> String {
    // `of` never says `Coded(Identity)`: identity content is `ContentEncoding::Identity`.
    if let ContentEncoding::Coded(coding) = ContentEncoding::of(headers) {
        let joined;
        let input: &[u8] = match body {
            [one] => one.as_ref(),
            _ => {
                joined = body
                    .iter()
                    .flat_map(|b| b.as_ref())
                    .copied()
                    .collect::<Vec<u8>>();
                &joined
            }
        };
        if let Ok(h) = decoded_hash(coding, input, &Limits::DEFAULT) {
            return decoded_etag(&h, coding);
        }
    }
    content_etag(bytes_hash)
}

/// Length of the content part `X` of a tag (16 bytes of BLAKE3, base64url).
const CONTENT_LEN: usize = 22;
/// Length of the part naming an encoded representation's bytes (6 bytes of BLAKE3, base64url).
const BYTES_LEN: usize = 8;

/// The strong tag of the representation etagate encoded in `coding` from content whose
/// identity tag is `identity` (a [`content_etag`]), whose encoded bytes hash to `encoded`:
/// `"b3-X.gz.Z"`, `.br.Z`, `.zst.Z`.
///
/// `X` is the identity content's, so every representation of one content shares it (and an
/// `If-None-Match` holding any of them matches, [`same_content`]); `Z` names the encoded bytes
/// themselves (48 bits of their BLAKE3 hash), so the tag changes whenever those bytes do, as
/// a strong validator must (RFC 9110 §8.8.1): after a change of level or of compressor
/// version, `If-Match` and `If-Range` fail rather than splice two encodings. `None` when
/// `identity` is not an identity content tag.
pub fn encoded_etag(identity: &[u8], coding: Coding, encoded: &blake3::Hash) -> Option<String> {
    let parts = tag_parts(identity)?;
    if parts.weak || parts.coding.is_some() || coding == Coding::Identity {
        return None;
    }
    let mut s = String::with_capacity(4 + CONTENT_LEN + 5 + BYTES_LEN + 1);
    s.push_str("\"b3-");
    s.push_str(std::str::from_utf8(parts.content).ok()?);
    s.push('.');
    s.push_str(coding.tag_suffix());
    s.push('.');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_string(&encoded.as_bytes()[..6], &mut s);
    s.push('"');
    Some(s)
}

fn is_b64url(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The parts of one of etagate's tags.
struct TagParts<'a> {
    weak: bool,
    /// `X`: the identity content's hash.
    content: &'a [u8],
    /// The coding after `X`: the origin's (a weak decoded tag) or etagate's (a strong encoded
    /// tag); `None` for identity.
    coding: Option<Coding>,
}

/// Read an `ETag` value as one of etagate's three shapes: `"b3-X"` (identity content),
/// `W/"b3-X.gz"` (content the origin encoded), `"b3-X.gz.Z"` (content etagate encoded).
fn tag_parts(v: &[u8]) -> Option<TagParts<'_>> {
    let t = EntityTag::parse(v)?;
    if t.opaque.len() != v.len() - 2 - if t.weak { 2 } else { 0 } {
        return None; // whitespace around it: not a value etagate wrote
    }
    opaque_parts(&t)
}

fn opaque_parts<'a>(t: &EntityTag<'a>) -> Option<TagParts<'a>> {
    let rest = t.opaque.strip_prefix(b"b3-")?;
    if rest.len() < CONTENT_LEN || !is_b64url(&rest[..CONTENT_LEN]) {
        return None;
    }
    let (content, tail) = rest.split_at(CONTENT_LEN);
    let coding = match tail {
        // etagate writes identity tags strong only
        [] if t.weak => return None,
        [] => None,
        [b'.', tail @ ..] => {
            let (suffix, bytes) = match tail.iter().position(|&b| b == b'.') {
                Some(p) => (&tail[..p], Some(&tail[p + 1..])),
                None => (tail, None),
            };
            let coding = Coding::from_tag_suffix(suffix)?;
            match bytes {
                // decoded content: weak; encoded by etagate: strong, with the bytes named
                None if t.weak => {}
                Some(z) if !t.weak && z.len() == BYTES_LEN && is_b64url(z) => {}
                _ => return None,
            }
            Some(coding)
        }
        _ => return None,
    };
    Some(TagParts {
        weak: t.weak,
        content,
        coding,
    })
}

/// Whether two tags are etagate's and name the same content, whatever coding each
/// representation is in.
///
/// This widens `If-None-Match`'s weak comparison (RFC 9110 §13.1.2) for etagate's own tags:
/// the representations of one content in different codings are semantically equivalent, which
/// is exactly what a weak match asserts (§8.8.1), and etagate, having minted every one of those
/// tags, knows it. A client that holds the gzip representation and now asks with an
/// `Accept-Encoding` that selects brotli gets a 304 rather than the same content again; the
/// 304 carries the tag of the representation it would have received (§15.4.5).
pub fn same_content(a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
    match (opaque_parts(a), opaque_parts(b)) {
        (Some(a), Some(b)) => a.content == b.content,
        _ => false,
    }
}

/// Whether an `ETag` value is one etagate computed (and the origin therefore cannot validate):
/// a strong content tag, a weak decoded-content tag or a strong encoded-representation tag.
pub fn is_content_etag(v: &[u8]) -> bool {
    tag_parts(v).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> EntityTag<'_> {
        EntityTag::parse(s.as_bytes()).expect("valid tag")
    }

    /// RFC 9110 §8.8.3.2, the comparison table, row by row.
    #[test]
    fn rfc9110_comparison_table() {
        let rows = [
            // (a, b, strong, weak)
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in rows {
            assert_eq!(tag(a).strong_eq(&tag(b)), strong, "{a} vs {b} strong");
            assert_eq!(tag(a).weak_eq(&tag(b)), weak, "{a} vs {b} weak");
            assert_eq!(tag(b).strong_eq(&tag(a)), strong, "symmetric");
            assert_eq!(tag(b).weak_eq(&tag(a)), weak, "symmetric");
        }
    }

    #[test]
    fn malformed_tags_are_rejected() {
        for bad in [
            "abc",
            "\"abc",
            "w/\"abc\"",
            "W\\\"abc\"",
            "W\"abc\"",
            "\"a\"b\"",
            "",
        ] {
            assert!(EntityTag::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(
            EntityTag::parse("\"abcdefü\"".as_bytes()).is_some(),
            "obs-text is allowed"
        );
        assert!(
            EntityTag::parse(b" \"a\" ").is_some(),
            "whitespace around is allowed"
        );
    }

    #[test]
    fn lists_across_lines_with_star_and_garbage() {
        let l = TagList::parse([b"\"1234\", W/\"abc\"".as_slice(), b"\"x,y\"".as_slice()]);
        let TagList::Tags(tags) = &l else {
            panic!("not a list")
        };
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[2].opaque, b"x,y");
        assert!(l.matches_weak(Some(&tag("\"abc\""))));
        assert!(!l.matches_strong(Some(&tag("\"abc\""))));
        assert_eq!(TagList::parse([b" * ".as_slice()]), TagList::Any);
        let junk = TagList::parse([b"not-a-tag".as_slice()]);
        assert!(!junk.matches_weak(Some(&tag("\"1\""))));
        assert!(!junk.matches_strong(Some(&tag("\"1\""))));
    }

    #[test]
    fn star_matches_only_an_existing_representation() {
        assert!(TagList::Any.matches_strong(Some(&tag("\"1\""))));
        assert!(!TagList::Any.matches_weak(None));
    }

    /// Found by the `etag_list` fuzz target: any 22 bytes between `"b3-` and `"` passed, NULs
    /// included, so a value that is not even an entity-tag was taken for one of etagate's.
    #[test]
    fn only_the_documented_shape_is_a_content_tag() {
        let mut bogus = b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\"".to_vec();
        assert!(is_content_etag(&bogus));
        for b in [0u8, b' ', b'"', b'+', b'/', b'=', 0xff] {
            bogus[10] = b;
            assert!(!is_content_etag(&bogus), "byte {b:#x}");
        }
    }

    fn gzip_named(name: &str, content: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut w = flate2::GzBuilder::new()
            .filename(name)
            .write(Vec::new(), flate2::Compression::default());
        w.write_all(content).expect("write");
        w.finish().expect("finish")
    }

    fn encoded(coding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_str(coding).expect("value"),
        );
        h
    }

    /// Django's GZipMiddleware writes a random file name into each gzip header: the bytes
    /// differ, the content and so the tag do not.
    #[test]
    fn an_origins_encoded_content_gets_one_weak_tag_whatever_its_bytes() {
        let content = br#"{"user": 7, "items": [1, 2, 3]}"#.repeat(20);
        let (a, b) = (gzip_named("x1", &content), gzip_named("y22", &content));
        assert_ne!(a, b);
        let tag = |h: &HeaderMap, body: &[u8]| computed_etag(h, &[body], &blake3::hash(body));
        let gz = encoded("gzip");
        let t = tag(&gz, &a);
        assert_eq!(t, tag(&gz, &b), "same content, same tag");
        assert_eq!(t, decoded_etag(&blake3::hash(&content), Coding::Gzip));
        assert!(t.starts_with("W/\"b3-") && t.ends_with(".gz\""), "{t}");
        assert!(is_content_etag(t.as_bytes()), "recognised as etagate's own");
        let parsed = EntityTag::parse(t.as_bytes()).expect("a valid entity-tag");
        assert!(parsed.weak);
        // Pieces hash the same as the whole.
        let (p1, p2) = a.split_at(a.len() / 3);
        assert_eq!(computed_etag(&gz, &[p1, p2], &blake3::hash(&a)), t);

        let other = gzip_named("x1", b"other content");
        assert_ne!(tag(&gz, &other), t, "another content, another tag");

        for (headers, body, why) in [
            (
                encoded("gzip"),
                &b"not gzip at all"[..],
                "not in the coding it claims",
            ),
            (encoded("deflate"), &a[..], "a coding etagate does not know"),
            (encoded("gzip, br"), &a[..], "two codings"),
            (HeaderMap::new(), &a[..], "no coding"),
            (encoded("identity"), &a[..], "identity"),
        ] {
            assert_eq!(
                tag(&headers, body),
                content_etag(&blake3::hash(body)),
                "{why}: the strong tag of the bytes"
            );
        }
    }

    #[test]
    fn a_compression_bomb_gets_the_tag_of_its_bytes() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip_named("b", &zeros);
        let gz = encoded("gzip");
        assert_eq!(
            computed_etag(&gz, &[&bomb], &blake3::hash(&bomb)),
            content_etag(&blake3::hash(&bomb))
        );
    }

    #[test]
    fn decoded_tags_have_the_documented_shape() {
        for (v, ok) in [
            (&b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz\""[..], true),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.br\"", true),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.zst\"", true),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.xz\"", false),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\"", false),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4S.gz\"", false),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4S/.gz\"", false),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz\"", false),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz", false),
        ] {
            assert_eq!(is_content_etag(v), ok, "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn encoded_tags_keep_the_content_and_name_the_bytes() {
        let identity = content_etag(&blake3::hash(b"hello"));
        let gz = encoded_etag(
            identity.as_bytes(),
            Coding::Gzip,
            &blake3::hash(b"gz bytes"),
        )
        .expect("tag");
        let br =
            encoded_etag(identity.as_bytes(), Coding::Br, &blake3::hash(b"br bytes")).expect("tag");
        assert_eq!(gz.len(), 27 + 3 + 9);
        assert!(gz.starts_with(&identity[..26]) && gz[26..].starts_with(".gz."));
        assert!(br[26..].starts_with(".br."));
        for t in [&gz, &br] {
            assert!(is_content_etag(t.as_bytes()), "{t}");
        }
        // other bytes (another level, another compressor version): another tag
        let gz2 = encoded_etag(
            identity.as_bytes(),
            Coding::Gzip,
            &blake3::hash(b"gz bytes!"),
        )
        .expect("tag");
        assert_ne!(gz, gz2);
        // only an identity content tag can be encoded, and never to identity
        assert_eq!(
            encoded_etag(gz.as_bytes(), Coding::Br, &blake3::hash(b"x")),
            None
        );
        assert_eq!(
            encoded_etag(b"\"origin\"", Coding::Br, &blake3::hash(b"x")),
            None
        );
        assert_eq!(
            encoded_etag(identity.as_bytes(), Coding::Identity, &blake3::hash(b"x")),
            None
        );
        for (v, ok) in [
            (&b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz.abcdefgh\""[..], true),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.zst.ab-_EFgh\"", true),
            (b"W/\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz.abcdefgh\"", false),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz.abcdefg\"", false),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz.abcdefg=\"", false),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.xz.abcdefgh\"", false),
            (b"\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg..abcdefgh\"", false),
            (b" \"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg.gz.abcdefgh\"", false),
        ] {
            assert_eq!(is_content_etag(v), ok, "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn if_none_match_matches_any_representation_of_the_same_content() {
        let x = content_etag(&blake3::hash(b"hello"));
        let y = content_etag(&blake3::hash(b"other"));
        let x_gz = encoded_etag(x.as_bytes(), Coding::Gzip, &blake3::hash(b"1")).expect("tag");
        let x_br = encoded_etag(x.as_bytes(), Coding::Br, &blake3::hash(b"2")).expect("tag");
        let x_decoded = decoded_etag(&blake3::hash(b"hello"), Coding::Gzip);
        let y_gz = encoded_etag(y.as_bytes(), Coding::Gzip, &blake3::hash(b"1")).expect("tag");
        let rows: [(&str, &str, bool); 7] = [
            (&x_gz, &x_br, true),
            (&x_gz, &x, true),
            (&x, &x_br, true),
            (&x_decoded, &x_gz, true),
            (&y_gz, &x_gz, false),
            (&y, &x_br, false),
            ("\"b3-other\"", &x, false),
        ];
        for (held, current, want) in rows {
            let list = TagList::parse([held.as_bytes()]);
            let c = tag(current);
            assert_eq!(list.matches_weak(Some(&c)), want, "{held} vs {current}");
            // If-Match and If-Range stay exact per representation
            assert_eq!(list.matches_strong(Some(&c)), held == current);
        }
    }

    #[test]
    fn content_tags_have_the_documented_shape() {
        let h = blake3::hash(b"hello");
        let t = content_etag(&h);
        assert_eq!(t.len(), 27);
        assert!(t.starts_with("\"b3-") && t.ends_with('"'));
        assert!(is_content_etag(t.as_bytes()));
        assert!(EntityTag::parse(t.as_bytes()).is_some());
        assert!(!is_content_etag(b"\"abcdef\""));
        assert_ne!(t, content_etag(&blake3::hash(b"hello!")));
    }
}
