//! Response header transformations: what a hop must drop, what a 304 carries, and how a 304
//! from the origin updates a stored response.

use super::names;
use http::header::{self, HeaderName};
use pingora_error::Result;
use pingora_http::ResponseHeader;

/// Which of `names` (lowercase field names) `headers` holds, found in one pass over the
/// message's own fields. Removing a field by name costs a name parse and two hash lookups
/// (Pingora keeps a second map of the names' case) whether it is there or not; on every
/// proxied message most such lists are all absent, so look first (issue #15: this halved what
/// the hop-by-hop and unkeyed-input lists cost a pass-through request).
pub fn present(headers: &http::HeaderMap, names: &[&'static str]) -> Vec<&'static str> {
    headers
        .keys()
        .filter_map(|k| names.iter().find(|n| **n == k.as_str()).copied())
        .collect()
}

/// The declared body length, when `Content-Length` is a single valid number.
pub fn content_length(resp: &ResponseHeader) -> Option<usize> {
    resp.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Give a response the ETag etagate computes for it ([`super::etag::computed_etag`]): `body`
/// in pieces, whose bytes hash to `hash`.
pub fn set_content_etag<B: AsRef<[u8]>>(
    resp: &mut ResponseHeader,
    body: &[B],
    hash: &blake3::Hash,
) -> Result<()> {
    let tag = super::etag::computed_etag(&resp.headers, body, hash);
    resp.insert_header(names::ETAG, tag)?;
    Ok(())
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) plus the proxy-authentication fields, which belong to
/// one connection and are never stored (RFC 9111 §3.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Remove the fields named in `Connection` and the hop-by-hop fields (framing fields such as
/// `Transfer-Encoding` are the transport's business and handled by it).
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    let listed: Vec<HeaderName> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| {
            let t: Vec<u8> = t
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .map(u8::to_ascii_lowercase)
                .collect();
            HeaderName::from_bytes(&t).ok()
        })
        .collect();
    for n in listed {
        resp.remove_header(&n);
    }
    for n in present(&resp.headers, &HOP_BY_HOP) {
        resp.remove_header(n);
    }
}

/// Fields a 304 from the origin must not change in a stored response: the stored body's own
/// framing and coding, and its validator (RFC 9111 §3.2 lets a cache keep fields its stored
/// response depends on).
const KEEP_ON_UPDATE: [&str; 6] = [
    "content-length",
    "content-encoding",
    "content-md5",
    "content-range",
    "etag",
    "transfer-encoding",
];

/// RFC 9111 §3.2/§4.3.4: update a stored response with the fields of a 304: each field the 304
/// carries replaces every line of that field in the stored response; fields it omits stay.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> Result<ResponseHeader> {
    let mut merged = stored.clone();
    let mut fresh = not_modified.clone();
    strip_hop_by_hop(&mut fresh);
    let names: Vec<HeaderName> = fresh
        .headers
        .keys()
        .filter(|n| !KEEP_ON_UPDATE.contains(&n.as_str()))
        .cloned()
        .collect();
    for name in &names {
        merged.remove_header(name);
    }
    // In the origin's spelling where the 304 kept it (one from the wire always does).
    if fresh.has_case() {
        for (name, v) in fresh.case_header_iter() {
            let kept = KEEP_ON_UPDATE
                .iter()
                .any(|k| k.as_bytes().eq_ignore_ascii_case(name.as_slice()));
            if !kept {
                merged.append_header(name.clone(), v.clone())?;
            }
        }
    } else {
        for name in names {
            for v in fresh.headers.get_all(&name) {
                merged.append_header(name.clone(), v.clone())?;
            }
        }
    }
    Ok(merged)
}

/// Fields a 304 carries (RFC 9110 §15.4.5: those a 200 would have sent among ETag,
/// Cache-Control, Content-Location, Date, Expires, Vary; Last-Modified since it can guide cache
/// updates; Age and Cache-Status, which describe this response rather than the
/// representation). `Set-Cookie` only when the response was just fetched for this client.
/// Spelled as registered: the 304 writes them so whatever the stored response's spelling.
const NOT_MODIFIED_FIELDS: [&str; 11] = [
    names::ETAG,
    "Cache-Control",
    "Content-Location",
    "Date",
    "Expires",
    "Vary",
    "Last-Modified",
    "Age",
    names::CACHE_STATUS,
    names::X_CACHE_KEY,
    names::X_CACHE_HIT,
];

/// Build the 304 for a full response. No body, no `Content-Length`.
pub fn not_modified_from(
    full: &ResponseHeader,
    include_set_cookie: bool,
) -> Result<ResponseHeader> {
    let mut r = ResponseHeader::build(304, Some(NOT_MODIFIED_FIELDS.len() + 1))?;
    for name in NOT_MODIFIED_FIELDS {
        for v in full.headers.get_all(name) {
            r.append_header(name, v.clone())?;
        }
    }
    if include_set_cookie {
        for v in full.headers.get_all(header::SET_COOKIE) {
            r.append_header(header::SET_COOKIE, v.clone())?;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, pairs: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("build");
        for (k, v) in pairs {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    fn get<'a>(r: &'a ResponseHeader, n: &str) -> Vec<&'a str> {
        r.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn present_names_the_listed_fields_a_message_holds_in_any_case() {
        let names = ["keep-alive", "te", "upgrade"];
        type Fields<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Fields, &[&str]); 4] = [
            (&[], &[]),
            (&[("content-type", "a"), ("etag", "\"x\"")], &[]),
            (
                &[("Keep-Alive", "x"), ("te", "trailers"), ("x", "1")],
                &["keep-alive", "te"],
            ),
            (&[("upgrade", "a"), ("upgrade", "b")], &["upgrade"]),
        ];
        for (fields, want) in cases {
            let r = resp(200, fields);
            assert_eq!(present(&r.headers, &names), want, "{fields:?}");
        }
    }

    #[test]
    fn connection_listed_fields_are_removed() {
        let mut r = resp(
            200,
            &[
                ("connection", "a, B"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("keep-alive", "x"),
            ],
        );
        strip_hop_by_hop(&mut r);
        assert!(
            get(&r, "a").is_empty() && get(&r, "b").is_empty() && get(&r, "keep-alive").is_empty()
        );
        assert_eq!(get(&r, "c"), ["3"]);
    }

    #[test]
    fn a_304_replaces_fields_it_carries_and_keeps_the_rest() {
        let stored = resp(
            200,
            &[
                ("test-header", "old"),
                ("kept", "yes"),
                ("content-length", "5"),
                ("etag", "\"abc\""),
                ("set-cookie", "a=b"),
                ("set-cookie", "c=d"),
            ],
        );
        let nm = resp(
            304,
            &[
                ("Test-Header", "new"),
                ("content-length", "10"),
                ("etag", "\"other\""),
                ("set-cookie", "a=c"),
                ("connection", "x"),
                ("x", "hop"),
            ],
        );
        let m = merge_not_modified(&stored, &nm).expect("merge");
        assert_eq!(m.status.as_u16(), 200);
        assert_eq!(get(&m, "test-header"), ["new"]);
        assert_eq!(get(&m, "kept"), ["yes"]);
        assert_eq!(get(&m, "content-length"), ["5"]);
        assert_eq!(get(&m, "etag"), ["\"abc\""]);
        assert_eq!(get(&m, "set-cookie"), ["a=c"]);
        assert!(get(&m, "x").is_empty());
        let spelled: Vec<&[u8]> = m.case_header_iter().map(|(n, _)| n.as_slice()).collect();
        assert!(
            spelled.contains(&&b"Test-Header"[..]) && !spelled.contains(&&b"test-header"[..]),
            "a replaced field takes the 304's spelling"
        );
    }

    #[test]
    fn a_304_carries_validators_and_caching_fields_only() {
        let full = resp(
            200,
            &[
                ("etag", "\"abc\""),
                ("cache-control", "max-age=60"),
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("vary", "accept"),
                ("content-length", "1000"),
                ("content-type", "text/html"),
                ("set-cookie", "s=1"),
                ("age", "3"),
            ],
        );
        let r = not_modified_from(&full, false).expect("304");
        assert_eq!(r.status.as_u16(), 304);
        assert_eq!(get(&r, "etag"), ["\"abc\""]);
        assert_eq!(get(&r, "vary"), ["accept"]);
        assert_eq!(get(&r, "age"), ["3"]);
        assert!(get(&r, "content-length").is_empty());
        assert!(get(&r, "content-type").is_empty());
        assert!(get(&r, "set-cookie").is_empty());
        let r = not_modified_from(&full, true).expect("304");
        assert_eq!(get(&r, "set-cookie"), ["s=1"]);
    }
}
