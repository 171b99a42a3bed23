//! Content codings (RFC 9110 §8.4.1): the ones etagate produces and decodes, their tokens, and
//! what a response's `Content-Encoding` says about its content.
//!
//! etagate knows three codings besides `identity`: `gzip` (§8.4.1.3; `x-gzip` is read as
//! `gzip`, as the section asks of recipients), `br` (RFC 7932) and `zstd` (RFC 8878, with the
//! 8 MiB window RFC 9659 requires of HTTP). `deflate` and `compress` are deliberately absent:
//! `deflate` is ambiguous in the wild (zlib-wrapped or raw) and `compress` is obsolete; a
//! response in either is passed through untouched, like any coding etagate does not know.

use http::header::{HeaderMap, CONTENT_ENCODING};

/// A content coding etagate can produce or decode, or none (`Identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    /// The codings that compress, in etagate's default order of preference (measured in
    /// `docs/compression.md`, "Levels": at the stored levels zstd and brotli compress text
    /// alike, and for a response compressed per request zstd costs a quarter of brotli's CPU
    /// for a ratio within 3 %; gzip is the fallback every client has).
    pub const COMPRESSED: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

    /// The token written in `Content-Encoding` and read in `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding a token names, case-insensitively; `x-gzip` is `gzip` (RFC 9110 §8.4.1.3).
    /// `None` for codings etagate does not know.
    pub fn from_token(token: &[u8]) -> Option<Coding> {
        const TOKENS: [(&[u8], Coding); 5] = [
            (b"identity", Coding::Identity),
            (b"gzip", Coding::Gzip),
            (b"x-gzip", Coding::Gzip),
            (b"br", Coding::Br),
            (b"zstd", Coding::Zstd),
        ];
        TOKENS
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(token))
            .map(|&(_, c)| c)
    }

    /// The suffix naming this coding in an entity-tag (`""` for identity); see
    /// [`super::etag`].
    pub fn tag_suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => "gz",
            Coding::Br => "br",
            Coding::Zstd => "zst",
        }
    }

    /// The coding a tag suffix names (never `Identity`: identity tags have no suffix).
    pub fn from_tag_suffix(suffix: &[u8]) -> Option<Coding> {
        [Coding::Gzip, Coding::Br, Coding::Zstd]
            .into_iter()
            .find(|c| c.tag_suffix().as_bytes() == suffix)
    }
}

/// What a response's `Content-Encoding` says its content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No `Content-Encoding`, an empty one, or only `identity` (which RFC 9110 §8.4.1 reserves
    /// for `Accept-Encoding`, but senders write it anyway).
    Identity,
    /// Exactly one coding etagate knows (`identity` members aside).
    Coded(Coding),
    /// A coding etagate does not know (`deflate`, `compress`, `dcz`, ...), or several codings
    /// applied in turn (`gzip, br`): etagate neither decodes nor re-encodes such content.
    Other,
}

impl ContentEncoding {
    pub fn of(headers: &HeaderMap) -> ContentEncoding {
        let mut found = ContentEncoding::Identity;
        for line in headers.get_all(CONTENT_ENCODING) {
            for member in line.as_bytes().split(|&b| b == b',') {
                let m = member.trim_ascii();
                if m.is_empty() {
                    continue;
                }
                match (Coding::from_token(m), found) {
                    (Some(Coding::Identity), _) => {}
                    (Some(c), ContentEncoding::Identity) => found = ContentEncoding::Coded(c),
                    // a second coding, or one etagate does not know
                    _ => return ContentEncoding::Other,
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tokens_are_case_insensitive_and_x_gzip_is_gzip() {
        let rows: [(&str, Option<Coding>); 10] = [
            ("gzip", Some(Coding::Gzip)),
            ("GZIP", Some(Coding::Gzip)),
            ("x-gzip", Some(Coding::Gzip)),
            ("X-Gzip", Some(Coding::Gzip)),
            ("br", Some(Coding::Br)),
            ("Br", Some(Coding::Br)),
            ("zstd", Some(Coding::Zstd)),
            ("identity", Some(Coding::Identity)),
            ("deflate", None),
            ("", None),
        ];
        for (token, want) in rows {
            assert_eq!(Coding::from_token(token.as_bytes()), want, "{token}");
        }
        for c in [Coding::Identity, Coding::Gzip, Coding::Br, Coding::Zstd] {
            assert_eq!(Coding::from_token(c.token().as_bytes()), Some(c));
        }
    }

    #[test]
    fn tag_suffixes_round_trip_and_identity_has_none() {
        for c in Coding::COMPRESSED {
            assert_eq!(Coding::from_tag_suffix(c.tag_suffix().as_bytes()), Some(c));
        }
        assert_eq!(Coding::Identity.tag_suffix(), "");
        assert_eq!(Coding::from_tag_suffix(b""), None);
        assert_eq!(Coding::from_tag_suffix(b"GZ"), None, "suffixes are exact");
    }

    #[test]
    fn content_encoding_of_a_response() {
        use ContentEncoding::*;
        let rows: [(&[&str], ContentEncoding); 12] = [
            (&[], Identity),
            (&[""], Identity),
            (&["identity"], Identity),
            (&[" Identity , "], Identity),
            (&["gzip"], Coded(Coding::Gzip)),
            (&["x-gzip"], Coded(Coding::Gzip)),
            (&["BR"], Coded(Coding::Br)),
            (&["identity, zstd"], Coded(Coding::Zstd)),
            (&["deflate"], Other),
            (&["gzip, br"], Other),
            (&["gzip", "gzip"], Other),
            (&["dcz"], Other),
        ];
        for (lines, want) in rows {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(CONTENT_ENCODING, HeaderValue::from_str(l).expect("value"));
            }
            assert_eq!(ContentEncoding::of(&h), want, "{lines:?}");
        }
    }
}
