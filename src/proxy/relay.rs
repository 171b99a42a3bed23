//! Relaying an inner response to the client, holding it back when it needs a content ETag.
//!
//! Pingora writes a response header before it reads the body, so no filter can add an ETag
//! computed from that body. The client's request (the outer) reads the inner's response
//! through a channel instead, buffers it up to the route's limit while hashing, and then
//! writes it itself with the ETag in place and the client's preconditions applied
//! (200/206/304/412/416). Bodies over the limit (or when the shared buffer budget is spent)
//! go out as they arrive, without a computed ETag; they get one once stored, because the
//! cache hashes while filling.

use super::budget::{BufferBudget, Held};
use super::ctx::{EtagSource, Fwd, RequestCtx};
use super::encoding::{self, Compressed};
use super::outcome::{self, Forwarded};
use super::respond::{decide, send_complete, slice_chunks, Decision, Delivery, Origin};
use super::stored::serve_stale_on_error;
use super::subrequest::{Inner, InnerReport, Piece};
use crate::cache::entry::Encoded;
use crate::cache::pass_through::{PassThrough, Unshared};
use crate::cache::storage::MemStore;
use crate::http::coding::Coding;
use crate::http::compressible::represent;
use crate::http::etag::{is_content_etag, EntityTag};
use crate::http::headers::{content_length, set_content_etag};
use crate::http::range::representation_len;
use crate::metrics::compression::Compression;
use crate::metrics::METRICS;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::ops::Range;

/// Forward through an inner subrequest and answer the client. `Ok(false)` when subrequests are
/// unavailable (the caller then lets the request continue through the normal pipeline).
pub async fn forward(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    buffers: &BufferBudget,
    pass: &PassThrough,
) -> Result<bool> {
    let Some(mut inner) = Inner::start(session, ctx.routed()?) else {
        return Ok(false);
    };
    let result = relay(session, ctx, store, buffers, pass, &mut inner).await;
    // Whichever way the answer went, a response being stored is read to its end.
    inner.release();
    result.map(|()| true)
}

/// The body read so far, and whether it is all of it.
struct Buffered<'a> {
    chunks: Vec<Bytes>,
    complete: bool,
    /// The budget reservation for `chunks`, released once they are written.
    held: Held<'a>,
}

async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    buffers: &BufferBudget,
    pass: &PassThrough,
    inner: &mut Inner,
) -> Result<()> {
    let report = inner.report.clone();
    let mut header = loop {
        match inner.next().await {
            // RFC 9110 §15.2: a proxy forwards 1xx responses. Pingora drops them on HTTP/2
            // (docs/conformance/README.md says what that would take).
            Ok(Piece::Interim(h)) => session.write_response_header(h, false).await?,
            Ok(Piece::Header(h)) => break h,
            Ok(_) | Err(_) => {
                // The inner produced no response at all (it writes its own 502/504 for origin
                // failures, so this is an internal failure).
                if serve_stale_on_error(session, ctx, store, 0).await? {
                    return Ok(());
                }
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    "the inner request produced no response",
                );
            }
        }
    };
    let status = header.status.as_u16();
    ctx.origin.wait = report.origin_wait();
    if report.origin_status().is_some() || matches!(status, 502 | 504) {
        ctx.origin.tries = ctx.origin.tries.max(1);
    }
    if matches!(status, 500 | 502 | 503 | 504)
        && serve_stale_on_error(session, ctx, store, status).await?
    {
        return Ok(());
    }

    let routed = ctx.routed()?;
    let route = routed.route.clone();
    let limit = routed.config.config.etag_buffer_budget;
    let debug_key = route.spec.debug_headers.then(|| routed.key.clone());
    let stale = routed.stale.clone();
    let fwd = routed.fwd;
    let via_peer = routed.via_peer;
    let config = routed.config.clone();
    let primary = routed.key.hash;

    // Whether the client may get a content tag follows Cache-Control alone; a targeted field
    // (`http::targeted`) only decides what this cache keeps.
    let plain = Unshared::of_cache_control(&header.headers);
    let no_store = plain == Some(Unshared::NoStore);
    let unshared =
        Unshared::given_cache_control(plain, &header.headers, &config.config.cache.targets);
    // An error page proves nothing either way.
    if status < 500 {
        // Learned only from an answer every client of the URL gets: one that varies with the
        // request, or answers credentials, says nothing of the others' (one client could
        // otherwise take the cache and the tags from everyone for a while).
        let everyones = || {
            let req = &session.req_header().headers;
            !header.headers.contains_key(http::header::VARY)
                && !req.contains_key(http::header::AUTHORIZATION)
                && !req.contains_key(http::header::COOKIE)
        };
        let too_large = representation_len(status, &header.headers)
            .is_some_and(|n| super::storing::beyond_keeping(&route, &config, n));
        match unshared {
            // The next misses for this key skip the subrequest.
            Some(Unshared::NoStore) => pass.learn(routed.key.hash, Unshared::NoStore),
            // And these the cache too, and their ranges go to the origin as ranges. (A length
            // the header does not give is not learned.)
            _ if too_large && everyones() => pass.learn(routed.key.hash, Unshared::TooLarge),
            // A key a member learned was private (and so kept from its owner) is shared again.
            None if routed.unshared == Some(Some(Unshared::Private)) => {
                pass.forget(&routed.key.hash)
            }
            _ => {}
        }
    }
    let want_hash = status == 200
        && !header.headers.contains_key(ETAG)
        && route
            .spec
            .etag
            .applies_to(header.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()))
        && !no_store;
    let mut body = Buffered {
        chunks: Vec::new(),
        complete: inner.ended(),
        held: buffers.hold(),
    };
    if want_hash && !body.complete {
        let hash =
            buffer_and_hash(inner, &mut body, buffers, route.spec.etag.max_buffer, limit).await?;
        if let Some(hash) = hash {
            set_content_etag(&mut header, &body.chunks, &hash)?;
            ctx.sent.etag_source = EtagSource::Computed;
            route.metrics.content_etags.inc();
        }
    } else if header.headers.contains_key(ETAG) {
        ctx.sent.etag_source = if report.served_from_cache() || report.revalidated() {
            EtagSource::Stored
        } else {
            EtagSource::Origin
        };
    }

    // After tagging: a refetched body compares by its content tag.
    let same_content = same_content(stale.as_ref().and_then(|e| e.etag()), &header);
    let (cache_status, cache_outcome) =
        outcome::of_forwarded(&facts(&report, fwd, &header, same_content));
    super::storing::strip_for_client(&mut header, &route, &config, via_peer);
    outcome::label(
        &mut header,
        cache_status,
        debug_key.as_deref(),
        report.served_from_cache(),
        config.cache_name(),
    )?;
    ctx.sent.cache_outcome = Some(cache_outcome);
    let validator_from_cache = report.served_from_cache() || report.revalidated();
    let from = if validator_from_cache {
        Origin::Stored
    } else {
        Origin::Fetched
    };

    // The representation: compressed whole when the body is all here (held back to tag it),
    // else while it streams. A response the cache keeps is compressed at the stored levels
    // and the result kept beside it, so the miss and its hits send the same bytes and tag.
    let policy = route.spec.compression.as_ref();
    let known_len = if body.complete {
        Some(body.chunks.iter().map(Bytes::len).sum())
    } else {
        content_length(&header)
    };
    let req = session.req_header();
    let coding = encoding::choose(
        policy,
        &req.headers,
        status,
        &header.headers,
        known_len.map_or(u64::MAX, |n| n as u64),
    );
    let mut streaming = None;
    let mut sent_coding = coding;
    if let (Some(c), Some(p)) = (coding, policy) {
        // (a response kept on disk only is sent from its file in identity: no point)
        let kept = (report.storing() || validator_from_cache)
            && known_len.is_some_and(|n| n <= config.config.cache.max_object_size);
        let (kind, levels) = match kept {
            true => (Compression::Stored, &p.stored_levels),
            false => (Compression::PerRequest, &p.per_request_levels),
        };
        let level = levels.of(c);
        let mut identity = c == Coding::Identity;
        if !identity && body.complete {
            match encoding::compress(c, level, &body.chunks, kind).await {
                Compressed::Done(encoded) => {
                    // hashed and tagged once, for the client and for the stored copy
                    let tag = header.headers.get(ETAG);
                    let e = Encoded::new(c, level, Some(encoded.clone()), tag);
                    let representation_tag = e.etag.clone();
                    if kept {
                        let source = encoding::Source {
                            tag,
                            len: known_len.unwrap_or(0),
                            from_cache: validator_from_cache,
                        };
                        encoding::keep_beside_stored(store, &primary, &req.headers, source, e);
                    }
                    represent(&mut header, c, representation_tag)?;
                    body.chunks = vec![encoded];
                }
                Compressed::NoGain | Compressed::Skipped => identity = true,
            }
        } else if !identity {
            if encoding::may_stream(req) {
                streaming = encoding::Streaming::new(c, p.per_request_levels.of(c));
            }
            match streaming {
                Some(_) => encoding::represent_streamed(&mut header, c)?,
                None => identity = true,
            }
        }
        if identity {
            represent(&mut header, Coding::Identity, None)?;
            sent_coding = Some(Coding::Identity);
        }
    }

    let full_len = if body.complete {
        Some(body.chunks.iter().map(Bytes::len).sum())
    } else {
        content_length(&header)
    };
    let decision = decide(session.req_header(), *header, full_len, from)?;
    let delivery = if body.complete {
        let delivery = send_complete(session, decision, &body.chunks).await?;
        drop(body);
        delivery
    } else {
        stream(session, ctx, inner, decision, body, streaming).await?
    };
    if let (Some(c), 200 | 206, 1..) = (sent_coding, delivery.status, delivery.body_bytes) {
        METRICS.compression.sent(c);
    }
    outcome::record_delivery(
        &mut ctx.sent,
        &route.metrics,
        delivery.status,
        delivery.body_bytes,
        full_len,
        validator_from_cache,
    );
    Ok(())
}

fn facts(
    report: &InnerReport,
    fwd: Option<Fwd>,
    header: &ResponseHeader,
    same_content: bool,
) -> Forwarded {
    Forwarded {
        fwd,
        served_from_cache: report.served_from_cache(),
        revalidated: report.revalidated(),
        storing: report.storing(),
        origin_status: report.origin_status(),
        status: header.status.as_u16(),
        same_content,
    }
}

/// Whether a full response to a revalidation carries the stale entry's content tag.
fn same_content(old: Option<EntityTag<'_>>, new: &ResponseHeader) -> bool {
    match (old, new.headers.get(ETAG)) {
        // etagate's own tags name contents, weak ones included (a decoded content's tag).
        (Some(old), Some(new)) if is_content_etag(new.as_bytes()) => {
            EntityTag::parse(new.as_bytes()).is_some_and(|n| n.weak_eq(&old))
        }
        (Some(old), Some(new)) => {
            EntityTag::parse(new.as_bytes()).is_some_and(|n| n.strong_eq(&old))
        }
        _ => false,
    }
}

/// Read the body while it fits the route's limit and the shared budget, hashing it. The hash
/// when the whole body was read; `None` when it did not fit (what was read stays buffered).
async fn buffer_and_hash<'a>(
    inner: &mut Inner,
    body: &mut Buffered<'a>,
    buffers: &'a BufferBudget,
    max_buffer: usize,
    limit: usize,
) -> Result<Option<blake3::Hash>> {
    let mut hasher = blake3::Hasher::new();
    let mut buffered = 0usize;
    loop {
        match inner.next().await {
            Ok(Piece::Body(b)) => {
                let fits = buffered + b.len() <= max_buffer
                    && buffers.try_reserve(&mut body.held, b.len(), limit);
                if fits {
                    hasher.update(&b);
                }
                buffered += b.len();
                body.chunks.push(b);
                if !fits {
                    return Ok(None);
                }
            }
            Ok(Piece::End) => {
                body.complete = true;
                return Ok(Some(hasher.finalize()));
            }
            Ok(Piece::Header(_) | Piece::Interim(_)) => {}
            Err(e) => {
                // Nothing has been sent: never a complete-looking response, but the status
                // says what happened (an origin that fell silent is a 504).
                return Err(broke_off(e));
            }
        }
    }
}

/// The error for an inner response that ended before anything was sent to the client: 504 when
/// the origin fell silent, 502 otherwise.
fn broke_off(cause: Box<Error>) -> Box<Error> {
    let status = match cause.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout => 504,
        _ => 502,
    };
    Error::because(
        ErrorType::HTTPStatus(status),
        "the origin's response broke off",
        cause,
    )
}

/// Send the decided answer while the body is still arriving: what was buffered first, then
/// the rest as it comes.
async fn stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    inner: &mut Inner,
    decision: Decision,
    body: Buffered<'_>,
    mut encoder: Option<encoding::Streaming>,
) -> Result<Delivery> {
    let (mut header, range, head_only) = match decision {
        Decision::Send {
            header,
            range,
            head_only,
        } => (header, range, head_only),
        other => return send_complete(session, other, &[]).await,
    };
    let status = header.status.as_u16();
    if content_length(&header).is_none() && !head_only {
        // Length unknown: chunked framing, so a response cut short by the origin is visibly
        // incomplete to the client (HTTP/2 signals it with a stream reset instead).
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    session.write_response_header(header, head_only).await?;
    if head_only {
        return Ok(Delivery {
            status,
            body_bytes: 0,
        });
    }
    let mut sent = 0u64;
    let mut offset = 0usize;
    let Buffered { chunks, held, .. } = body;
    // A compressed stream has no range: its length is unknown, so `decide` chose none.
    // What was held back is flushed once, after its last piece.
    let mut encode = |p: Bytes, flush: bool| -> Result<Bytes> {
        match encoder.as_mut() {
            Some(e) => e.push(&p, flush).map_err(compressing),
            None => Ok(p),
        }
    };
    let held_back = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        if let Some(p) = in_range(&range, c, &mut offset) {
            let p = encode(p, i + 1 == held_back)?;
            sent += p.len() as u64;
            if !p.is_empty() {
                session.write_response_body(Some(p), false).await?;
            }
        }
    }
    drop(held);
    loop {
        match inner.next().await {
            Ok(Piece::Body(b)) => {
                if let Some(p) = in_range(&range, b, &mut offset) {
                    let p = encode(p, true)?;
                    sent += p.len() as u64;
                    if !p.is_empty() {
                        session.write_response_body(Some(p), false).await?;
                    }
                }
            }
            Ok(Piece::End) => {
                if let Some(e) = encoder.as_mut() {
                    let tail = e.finish().map_err(compressing)?;
                    sent += tail.len() as u64;
                    session.write_response_body(Some(tail), false).await?;
                }
                break;
            }
            Ok(Piece::Header(_) | Piece::Interim(_)) => {}
            Err(e) => {
                // The header is out: the only honest signal left is to break the connection
                // so the client sees a truncated response, never a complete one.
                ctx.sent.status = status;
                ctx.sent.body_bytes += sent;
                return Err(e.into_up());
            }
        }
    }
    session.write_response_body(None, true).await?;
    Ok(Delivery {
        status,
        body_bytes: sent,
    })
}

/// A compressor's failure once the header is out: only breaking the connection is left.
fn compressing(e: std::io::Error) -> Box<Error> {
    Error::because(
        ErrorType::InternalError,
        "compressing the response failed",
        e,
    )
}

/// The part of chunk `b`, which starts at `offset` of the body, that `range` selects (all of
/// it without a range); advances `offset`.
fn in_range(range: &Option<Range<usize>>, b: Bytes, offset: &mut usize) -> Option<Bytes> {
    let start = *offset;
    *offset += b.len();
    match range {
        None => Some(b),
        Some(r) => {
            let shifted = r.start.saturating_sub(start)..r.end.saturating_sub(start);
            slice_chunks(std::slice::from_ref(&b), &shifted)
                .into_iter()
                .next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_select_across_streamed_chunks() {
        let range = Some(3..7);
        let mut offset = 0;
        let pieces: Vec<Option<Bytes>> = ["0123", "45", "6789"]
            .into_iter()
            .map(|c| in_range(&range, Bytes::from_static(c.as_bytes()), &mut offset))
            .collect();
        assert_eq!(
            pieces,
            vec![
                Some(Bytes::from_static(b"3")),
                Some(Bytes::from_static(b"45")),
                Some(Bytes::from_static(b"6"))
            ]
        );
        let mut offset = 0;
        assert_eq!(
            in_range(&None, Bytes::from_static(b"ab"), &mut offset),
            Some(Bytes::from_static(b"ab"))
        );
        assert_eq!(offset, 2);
    }
}
