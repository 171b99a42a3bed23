//! Writing a response etagate assembled itself (a stored one, one it buffered to hash, or a
//! short answer of its own): preconditions, ranges and HEAD applied in one place.

use crate::http::coding::ContentEncoding;
use crate::http::headers::not_modified_from;
use crate::http::preconditions::{
    evaluate, has_preconditions, if_range_allows, Outcome, Validators,
};
use crate::http::range::{parse_range, RangeRequest};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE, TRANSFER_ENCODING};
use http::Method;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::ops::Range;

/// What to send for a response, decided before any byte goes out.
#[derive(Debug)]
pub enum Decision {
    /// 304 (header only).
    NotModified(Box<ResponseHeader>),
    /// 412 (header only).
    PreconditionFailed(Box<ResponseHeader>),
    /// 416 (header only).
    Unsatisfiable(Box<ResponseHeader>),
    /// The response (200, 206 when `range` is set, or any other status), body unless
    /// `head_only`.
    Send {
        header: Box<ResponseHeader>,
        range: Option<Range<usize>>,
        head_only: bool,
    },
}

impl Decision {
    pub fn status(&self) -> u16 {
        match self {
            Decision::NotModified(_) => 304,
            Decision::PreconditionFailed(_) => 412,
            Decision::Unsatisfiable(_) => 416,
            Decision::Send { header, .. } => header.status.as_u16(),
        }
    }
}

fn empty(status: u16) -> Result<Box<ResponseHeader>> {
    let mut h = ResponseHeader::build(status, Some(2))?;
    h.insert_header(CONTENT_LENGTH, "0")?;
    Ok(Box::new(h))
}

fn bodiless(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Where the response being answered with comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Fetched from the origin for this very request: a 304 may carry its `Set-Cookie`.
    Fetched,
    /// A stored response (or one just validated): never replay its `Set-Cookie`, and its
    /// `Date` stands in for a missing `Last-Modified`.
    Stored,
}

/// The 304 or 412 that `req`'s preconditions call for against `header`, if any (RFC 9110
/// section 13.2.2; ranges are decided later).
pub fn precondition_decision(
    req: &RequestHeader,
    header: &ResponseHeader,
    from: Origin,
) -> Result<Option<Decision>> {
    if !has_preconditions(&req.headers) || !(200..300).contains(&header.status.as_u16()) {
        return Ok(None);
    }
    let v = match from {
        Origin::Fetched => Validators::of(&header.headers),
        Origin::Stored => Validators::of_stored(&header.headers),
    };
    Ok(match evaluate(&req.method, &req.headers, &v) {
        Outcome::NotModified => Some(Decision::NotModified(Box::new(not_modified_from(
            header,
            from == Origin::Fetched,
        )?))),
        Outcome::PreconditionFailed => Some(Decision::PreconditionFailed(empty(412)?)),
        Outcome::Proceed => None,
    })
}

/// Decide the answer to `req` from the full response `header` whose body has `full_len`
/// bytes (`None`: unknown, still streaming).
pub fn decide(
    req: &RequestHeader,
    header: ResponseHeader,
    full_len: Option<usize>,
    from: Origin,
) -> Result<Decision> {
    match precondition_decision(req, &header, from)? {
        Some(d) => Ok(d),
        None => decide_unconditionally(req, header, full_len),
    }
}

/// The rest of [`decide`], once the preconditions (if any) let the request proceed: range,
/// HEAD and framing.
pub fn decide_unconditionally(
    req: &RequestHeader,
    mut header: ResponseHeader,
    full_len: Option<usize>,
) -> Result<Decision> {
    let status = header.status.as_u16();
    let head_only = req.method == Method::HEAD;
    let mut range = None;
    if status == 200 && req.method == Method::GET {
        if let (Some(r), Some(len)) = (req.headers.get(RANGE), full_len) {
            let mut validators = Validators::of(&header.headers);
            if ContentEncoding::of(&header.headers) != ContentEncoding::Identity {
                // A date names no bytes of a content-coded representation: the same content
                // is encoded at other levels on other paths (or padded randomly by the origin),
                // so only its entity-tag may select a range of it.
                validators.last_modified = None;
            }
            if if_range_allows(&req.headers, &validators) {
                match parse_range(r.as_bytes(), len) {
                    RangeRequest::Partial(rg) => {
                        header.set_status(206)?;
                        header.insert_header(
                            CONTENT_RANGE,
                            format!("bytes {}-{}/{}", rg.start, rg.end - 1, len),
                        )?;
                        range = Some(rg);
                    }
                    RangeRequest::Unsatisfiable => {
                        let mut h = empty(416)?;
                        h.insert_header(CONTENT_RANGE, format!("bytes */{len}"))?;
                        return Ok(Decision::Unsatisfiable(h));
                    }
                    RangeRequest::Full => {}
                }
            }
        }
    }
    if let Some(len) = full_len {
        header.remove_header(&TRANSFER_ENCODING);
        if bodiless(status) {
            header.remove_header(&CONTENT_LENGTH);
        } else {
            let n = range.as_ref().map(|r| r.len()).unwrap_or(len);
            header.insert_header(CONTENT_LENGTH, n)?;
        }
    }
    Ok(Decision::Send {
        header: Box::new(header),
        range,
        head_only,
    })
}

/// A small plain-text response written by etagate itself (400, 404, 502, 503, 504...), with
/// `extra` header fields.
pub async fn respond_text(
    session: &mut Session,
    status: u16,
    text: &str,
    extra: &[(&'static str, &str)],
) -> Result<Delivery> {
    let body = Bytes::from(format!("{status} {text}\n"));
    respond_body(session, status, "text/plain; charset=utf-8", body, extra).await
}

/// A complete response etagate writes itself, never stored (`no-store`).
pub async fn respond_body(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&'static str, &str)],
) -> Result<Delivery> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    for (name, value) in extra {
        resp.insert_header(*name, *value)?;
    }
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    let decision = Decision::Send {
        header: Box::new(resp),
        range: None,
        head_only: session.req_header().method == Method::HEAD,
    };
    send_complete(session, decision, &[body]).await
}

/// Counts of what was sent, for metrics and the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    pub status: u16,
    pub body_bytes: u64,
}

/// The part of `chunks` (consecutive pieces of one body) inside `range`.
pub fn slice_chunks(chunks: &[Bytes], range: &Range<usize>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0;
    for c in chunks {
        let (start, end) = (offset, offset + c.len());
        offset = end;
        if end <= range.start || start >= range.end {
            continue;
        }
        let from = range.start.saturating_sub(start);
        let to = (range.end - start).min(c.len());
        out.push(c.slice(from..to));
    }
    out
}

/// Send a decision whose whole body is at hand.
pub async fn send_complete(
    session: &mut Session,
    decision: Decision,
    body: &[Bytes],
) -> Result<Delivery> {
    let status = decision.status();
    match decision {
        Decision::NotModified(h) | Decision::PreconditionFailed(h) | Decision::Unsatisfiable(h) => {
            session.write_response_header(h, true).await?;
            Ok(Delivery {
                status,
                body_bytes: 0,
            })
        }
        Decision::Send {
            header,
            range,
            head_only,
        } => {
            let pieces = match &range {
                Some(r) => slice_chunks(body, r),
                None => body.to_vec(),
            };
            let total: usize = pieces.iter().map(Bytes::len).sum();
            let no_body = head_only || bodiless(status) || total == 0;
            session.write_response_header(header, no_body).await?;
            if no_body {
                return Ok(Delivery {
                    status,
                    body_bytes: 0,
                });
            }
            let last = pieces.len() - 1;
            for (i, p) in pieces.into_iter().enumerate() {
                session.write_response_body(Some(p), i == last).await?;
            }
            Ok(Delivery {
                status,
                body_bytes: total as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, pairs: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/", None).expect("req");
        for (k, v) in pairs {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    fn resp(pairs: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).expect("resp");
        for (k, v) in pairs {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    #[test]
    fn a_matching_if_none_match_gives_a_bodyless_304() {
        let d = decide(
            &req("GET", &[("if-none-match", "\"a\"")]),
            resp(&[("etag", "\"a\""), ("content-length", "10")]),
            Some(10),
            Origin::Stored,
        )
        .expect("decide");
        let Decision::NotModified(h) = d else {
            panic!("not a 304")
        };
        assert_eq!(h.status.as_u16(), 304);
        assert!(h.headers.get("content-length").is_none());
        assert_eq!(h.headers["etag"], "\"a\"");
    }

    #[test]
    fn ranges_need_a_strong_if_range_match() {
        let r = resp(&[("etag", "\"a\"")]);
        let d = decide(
            &req("GET", &[("range", "bytes=0-1")]),
            r.clone(),
            Some(11),
            Origin::Stored,
        )
        .expect("decide");
        let Decision::Send { header, range, .. } = d else {
            panic!("not sent")
        };
        assert_eq!(header.status.as_u16(), 206);
        assert_eq!(header.headers["content-range"], "bytes 0-1/11");
        assert_eq!(header.headers["content-length"], "2");
        assert_eq!(range, Some(0..2));
        let d = decide(
            &req("GET", &[("range", "bytes=0-1"), ("if-range", "W/\"a\"")]),
            r.clone(),
            Some(11),
            Origin::Stored,
        )
        .expect("decide");
        assert!(matches!(d, Decision::Send { range: None, .. }));
        let d = decide(
            &req("GET", &[("range", "bytes=20-")]),
            r,
            Some(11),
            Origin::Stored,
        )
        .expect("decide");
        assert_eq!(d.status(), 416);
    }

    #[test]
    fn head_gets_the_full_length_and_no_body() {
        let d = decide(
            &req("HEAD", &[]),
            resp(&[("transfer-encoding", "chunked")]),
            Some(5),
            Origin::Stored,
        )
        .expect("decide");
        let Decision::Send {
            header, head_only, ..
        } = d
        else {
            panic!("not sent")
        };
        assert!(head_only);
        assert_eq!(header.headers["content-length"], "5");
        assert!(header.headers.get("transfer-encoding").is_none());
    }

    #[test]
    fn slices_across_chunk_boundaries() {
        let chunks = [
            Bytes::from_static(b"0123"),
            Bytes::from_static(b"4567"),
            Bytes::from_static(b"89"),
        ];
        let s: Vec<u8> = slice_chunks(&chunks, &(2..9)).concat();
        assert_eq!(s, b"2345678");
        assert_eq!(slice_chunks(&chunks, &(8..10)).concat(), b"89");
    }

    #[test]
    fn preconditions_are_ignored_for_non_2xx() {
        let mut r = resp(&[("etag", "\"a\"")]);
        r.set_status(404).expect("status");
        let d = decide(
            &req("GET", &[("if-none-match", "\"a\"")]),
            r,
            Some(3),
            Origin::Stored,
        )
        .expect("decide");
        assert_eq!(d.status(), 404);
    }
}
