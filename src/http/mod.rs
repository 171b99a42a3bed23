//! HTTP semantics as pure functions over headers, testable without sockets:
//! validators and conditional requests (RFC 9110 §8.8, §13), ranges (§14), and what a shared
//! cache may store ([`storability`]) and reuse ([`usability`]), with the [`freshness`] facts they
//! share (RFC 9111, RFC 5861), and the cache [`tags`] an origin gives a response. Content
//! codings ([`coding`], [`encode`]), and bounded [`decode`]-ing of what an origin encoded, so
//! that its content gets a tag that does not change with the bytes ([`etag`]); which coding a
//! request accepts ([`accept_encoding`]) and which responses may be compressed
//! ([`compressible`]), for the compression the gateway does not do yet (issue #16).

pub mod accept_encoding;
pub mod authority;
pub mod cache_control;
pub mod cache_status;
pub mod coding;
pub mod compressible;
pub mod date;
pub mod decode;
pub mod encode;
pub mod etag;
pub mod freshness;
pub mod headers;
pub mod names;
pub mod preconditions;
pub mod range;
pub mod storability;
pub mod tags;
pub mod targeted;
pub mod usability;
pub mod vary;

/// What the table-driven tests of these modules share.
#[cfg(test)]
pub(crate) mod testing {
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// Header fields in order; a repeated name makes several field lines.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }
}
