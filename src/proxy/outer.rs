//! The outer request: answering a client from the cache directly, or through an inner
//! subrequest whose response it can hold back, hash and judge before the first byte leaves.
//!
//! Pingora writes a response header before it reads the body, so no filter can add an ETag
//! computed from that body. Instead the client's request (the outer) spawns a subrequest (the
//! inner) that runs Pingora's normal cache and proxy pipeline, reads its response through a
//! channel, buffers up to the route's limit while hashing, and then writes the response itself
//! with the ETag in place and the client's preconditions applied (200/206/304/412/416).
//! Bodies over the limit (or when the shared buffer budget is spent) go out as they arrive,
//! without a computed ETag; they get one once stored, because the cache hashes while filling.
//!
//! A stored response that the request may use is written directly from the cache, with no
//! subrequest at all: hits pay for neither the channel hop nor the hashing.

use super::ctx::{EtagSource, Fwd, InnerPlan, InnerReport, RequestCtx};
use super::respond::{
    decide, decide_unconditionally, precondition_decision, send_complete, slice_chunks, Decision,
    Origin,
};
use crate::cache::entry::Entry;
use crate::cache::storage::MemStore;
use crate::http::cache_status::CacheStatus;
use crate::http::etag::content_etag;
use crate::http::usability::{may_serve_on_error, may_serve_while_revalidating, usability, Use};
use crate::metrics::{CacheOutcome, METRICS};
use bytes::Bytes;
use http::header::{AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use pingora_core::protocols::http::HttpTask;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora_proxy::Session;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;

/// Bytes held back for hashing by all requests together.
#[derive(Default)]
pub struct BufferBudget {
    used: AtomicUsize,
}

impl BufferBudget {
    fn try_reserve(&self, n: usize, limit: usize) -> bool {
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + n <= limit).then_some(cur + n)
            })
            .is_ok();
        if ok {
            METRICS.etag_buffer_bytes.add(n as i64);
        }
        ok
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            METRICS.etag_buffer_bytes.sub(n as i64);
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A reservation returned to the budget when dropped, whatever path the request takes.
struct Held<'a> {
    budget: &'a BufferBudget,
    bytes: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// How a stored response is being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredUse {
    /// Fresh (or stale within the request's max-stale).
    Hit,
    /// Stale, served while a background refresh runs.
    WhileRevalidating,
    /// Stale, served because the origin failed with this status (0: no response at all).
    OnError(u16),
}

fn add_debug_headers(
    header: &mut ResponseHeader,
    ctx: &RequestCtx,
    status: &mut CacheStatus,
    from_cache: bool,
) -> Result<()> {
    let debug = ctx.route.as_ref().is_some_and(|r| r.debug_headers);
    if debug {
        if let Some(k) = &ctx.key {
            if let Some(text) = k.text() {
                status.key = Some(text.to_string());
                header.insert_header("x-cache-key", text)?;
            }
        }
        header.insert_header("x-cache-hit", if from_cache { "true" } else { "false" })?;
    }
    header.insert_header("cache-status", status.render())?;
    Ok(())
}

fn record_delivery(
    ctx: &mut RequestCtx,
    status: u16,
    body_bytes: u64,
    full_len: Option<usize>,
    validator_from_cache: bool,
) {
    ctx.status = status;
    ctx.body_bytes += body_bytes;
    let Some(route) = ctx.route.as_ref() else {
        return;
    };
    let m = &route.metrics;
    match status {
        304 => {
            if validator_from_cache {
                m.not_modified_cache.inc();
            } else {
                m.not_modified_origin.inc();
            }
            if let Some(n) = full_len {
                m.saved_bytes.inc_by(n as u64);
            }
        }
        412 => m.precondition_failed.inc(),
        _ => {}
    }
}

/// Answer from a stored response. The caller has decided the request may use it.
pub async fn serve_stored(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    entry: &Arc<Entry>,
    how: StoredUse,
) -> Result<()> {
    let now = SystemTime::now();
    let ttl = Some(entry.freshness.ttl_secs(now));
    let mut status = match how {
        StoredUse::Hit => CacheStatus {
            hit: true,
            ttl,
            ..Default::default()
        },
        StoredUse::WhileRevalidating => CacheStatus {
            hit: true,
            ttl,
            detail: Some("stale-while-revalidate"),
            ..Default::default()
        },
        StoredUse::OnError(code) => CacheStatus {
            fwd: Some("stale"),
            fwd_status: (code > 0).then_some(code),
            ttl,
            detail: Some("stale-if-error"),
            ..Default::default()
        },
    };
    // A response stored without an ETag (before the route enabled them) gets one now, once:
    // the tagged copy replaces the stored one.
    let len = entry.body.len();
    let mut tagged = None;
    let untagged = entry.header.status.as_u16() == 200
        && !entry.header.headers.contains_key(ETAG)
        && ctx.route.as_ref().is_some_and(|r| {
            r.etag
                .applies_to(entry.header.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()))
        });
    if untagged {
        let mut h = entry.header.clone();
        h.insert_header(ETAG, content_etag(&blake3::hash(&entry.body)))?;
        if let Some(k) = ctx.key.as_ref() {
            store.insert(
                k.hash,
                Arc::new(Entry::new(
                    entry.id,
                    h.clone(),
                    entry.body.clone(),
                    entry.freshness,
                    entry.variance,
                    entry.vary.clone(),
                    true,
                )),
            );
        }
        tagged = Some(h);
    }
    let stored = tagged.as_ref().unwrap_or(&entry.header);
    ctx.etag_source = etag_source(stored, entry.etag_computed);
    // A 304 or 412 is built from the stored header itself, without copying it first.
    if let Some(mut decision) = precondition_decision(session.req_header(), stored, Origin::Stored)?
    {
        if let Decision::NotModified(h) = &mut decision {
            h.insert_header(AGE, entry.freshness.age_header(now))?;
            add_debug_headers(h, ctx, &mut status, true)?;
        }
        let delivery = send_complete(session, decision, &[]).await?;
        record_delivery(ctx, delivery.status, 0, Some(len), true);
        ctx.cache_outcome = Some(outcome_of(how));
        return Ok(());
    }
    let mut header = tagged.unwrap_or_else(|| entry.header.clone());
    header.insert_header(AGE, entry.freshness.age_header(now))?;
    add_debug_headers(&mut header, ctx, &mut status, true)?;
    let decision = decide_unconditionally(session.req_header(), header, Some(len))?;
    let delivery = send_complete(session, decision, std::slice::from_ref(&entry.body)).await?;
    record_delivery(ctx, delivery.status, delivery.body_bytes, Some(len), true);
    ctx.cache_outcome = Some(outcome_of(how));
    Ok(())
}

fn etag_source(header: &ResponseHeader, computed: bool) -> EtagSource {
    match (header.headers.contains_key(ETAG), computed) {
        (false, _) => EtagSource::None,
        (true, true) => EtagSource::Stored,
        (true, false) => EtagSource::Origin,
    }
}

fn outcome_of(how: StoredUse) -> CacheOutcome {
    match how {
        StoredUse::Hit => CacheOutcome::Hit,
        StoredUse::WhileRevalidating => CacheOutcome::StaleWhileRevalidate,
        StoredUse::OnError(_) => CacheOutcome::Stale,
    }
}

/// Whether a stored response may answer this request without the origin, and how.
pub fn stored_use(entry: &Entry, ctx: &RequestCtx) -> Option<StoredUse> {
    let now = SystemTime::now();
    match usability(&entry.freshness, &ctx.request_directives, now) {
        Use::Fresh | Use::StaleAccepted => Some(StoredUse::Hit),
        Use::Validate => {
            may_serve_while_revalidating(&entry.freshness, &ctx.request_directives, now)
                .then_some(StoredUse::WhileRevalidating)
        }
    }
}

fn plan(ctx: &RequestCtx, report: Arc<InnerReport>, refresh: bool) -> Result<InnerPlan> {
    let missing = || {
        Error::explain(
            ErrorType::InternalError,
            "outer request without route or key",
        )
    };
    Ok(InnerPlan {
        config: ctx.config.clone().ok_or_else(missing)?,
        route: ctx.route.clone().ok_or_else(missing)?,
        key: ctx.key.clone().ok_or_else(missing)?,
        report,
        refresh,
    })
}

/// Run `f` (which creates a subrequest) on an HTTP/1.1 view of the request.
///
/// Pingora 0.9.1 builds a subrequest by serializing the parent request as HTTP/1 text and
/// parsing it again; for an HTTP/2 parent the request line says `HTTP/2`, which the parser
/// rejects, and `:authority` is not a `Host` line. So for the instant the subrequest is built
/// the parent claims HTTP/1.1 and carries `Host`; both are put back right after.
fn as_http1<R>(session: &mut Session, f: impl FnOnce(&Session) -> R) -> R {
    let req = session.req_header_mut();
    let version = req.version;
    let mut added_host = false;
    if version == http::Version::HTTP_2 {
        req.set_version(http::Version::HTTP_11);
        if !req.headers.contains_key(http::header::HOST) {
            if let Some(a) = req.uri.authority().map(|a| a.as_str().to_string()) {
                added_host = req.insert_header(http::header::HOST, a).is_ok();
            }
        }
    }
    let r = f(session);
    let req = session.req_header_mut();
    req.set_version(version);
    if added_host {
        req.remove_header(&http::header::HOST);
    }
    r
}

/// Start a background refresh of a stale entry (stale-while-revalidate), at most one at a time
/// per entry.
pub fn spawn_refresh(session: &mut Session, ctx: &RequestCtx, entry: &Entry) {
    if !entry.claim_refresh() {
        return;
    }
    let Ok(p) = plan(ctx, Arc::new(InnerReport::default()), true) else {
        return;
    };
    let sub = SubrequestCtx::builder()
        .body_mode(BodyMode::NoBody)
        .user_ctx(Box::new(p))
        .build();
    as_http1(session, |s| {
        if let Some(spawner) = s.subrequest_spawner.as_ref() {
            spawner.spawn_background_subrequest(s.as_downstream(), sub);
        }
    });
}

/// One piece of the inner response.
enum Piece {
    Header(Box<ResponseHeader>),
    Body(Bytes),
    End,
}

/// The outer side of the subrequest channel.
struct Inner {
    tx: Option<mpsc::Sender<HttpTask>>,
    rx: mpsc::Receiver<HttpTask>,
    join: Option<tokio::task::JoinHandle<()>>,
    ended: bool,
}

impl Inner {
    async fn next(&mut self) -> Result<Piece> {
        if self.ended {
            return Ok(Piece::End);
        }
        loop {
            match self.rx.recv().await {
                Some(HttpTask::Header(h, eos)) => {
                    if h.status.is_informational() {
                        continue;
                    }
                    self.ended = eos;
                    return Ok(Piece::Header(h));
                }
                Some(HttpTask::Body(Some(b), eos)) | Some(HttpTask::UpgradedBody(Some(b), eos)) => {
                    self.ended = eos;
                    if b.is_empty() {
                        if eos {
                            return Ok(Piece::End);
                        }
                        continue;
                    }
                    return Ok(Piece::Body(b));
                }
                Some(HttpTask::Body(None, eos)) | Some(HttpTask::UpgradedBody(None, eos)) => {
                    if eos {
                        self.ended = true;
                        return Ok(Piece::End);
                    }
                }
                Some(HttpTask::Trailer(_)) => {}
                Some(HttpTask::Done) => {
                    self.ended = true;
                    return Ok(Piece::End);
                }
                Some(HttpTask::Failed(e)) => return Err(e),
                None => {
                    return Error::e_explain(
                        ErrorType::ReadError,
                        "the response from the origin ended before it was complete",
                    )
                }
            }
        }
    }

    /// Stop reading. A response being stored is read to its end in the background (so the
    /// cache fill completes); anything else is abandoned at once.
    fn release(mut self, storing: bool) {
        if self.ended || !storing {
            return;
        }
        tokio::spawn(async move {
            let _keep_input_open = self.tx.take();
            while self.rx.recv().await.is_some() {}
            if let Some(j) = self.join.take() {
                let _ = j.await;
            }
        });
    }
}

fn cache_control_no_store(h: &ResponseHeader) -> bool {
    h.headers
        .get_all(CACHE_CONTROL)
        .iter()
        .any(|v| crate::http::cache_control::directives_of(v.as_bytes()).any(|d| d.is("no-store")))
}

fn content_length(h: &ResponseHeader) -> Option<usize> {
    h.headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Forward through an inner subrequest and answer the client. `Ok(false)` when subrequests are
/// unavailable (the caller then lets the request continue through the normal pipeline).
pub async fn forward(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    buffers: &BufferBudget,
) -> Result<bool> {
    let report = Arc::new(InnerReport::default());
    if session.subrequest_spawner.is_none() {
        return Ok(false);
    }
    let sub = SubrequestCtx::builder()
        .body_mode(BodyMode::NoBody)
        .user_ctx(Box::new(plan(ctx, report.clone(), false)?))
        .build();
    let created = as_http1(session, |s| {
        s.subrequest_spawner
            .as_ref()
            .map(|spawner| spawner.create_subrequest(s.as_downstream(), sub))
    });
    let Some((prepared, handle)) = created else {
        return Ok(false);
    };
    let join = tokio::spawn(prepared.run());
    let mut inner = Inner {
        tx: Some(handle.tx),
        rx: handle.rx,
        join: Some(join),
        ended: false,
    };

    let first = inner.next().await;
    let mut header = match first {
        Ok(Piece::Header(h)) => h,
        Ok(_) | Err(_) => {
            // The inner produced no response at all (it writes its own 502/504 for origin
            // failures, so this is an internal failure).
            if serve_stale_on_error(session, ctx, store, 0).await? {
                return Ok(true);
            }
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "the inner request produced no response",
            ));
        }
    };
    let status = header.status.as_u16();
    ctx.origin_wait = report.origin_wait();
    if report.origin_status.load(Ordering::Acquire) > 0 || matches!(status, 502 | 504) {
        ctx.origin_tries = ctx.origin_tries.max(1);
    }
    if matches!(status, 500 | 502 | 503 | 504)
        && serve_stale_on_error(session, ctx, store, status).await?
    {
        inner.release(report.storing.load(Ordering::Acquire));
        return Ok(true);
    }

    let route = ctx
        .route
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
    let limit = ctx
        .config
        .as_ref()
        .map(|c| c.etag_buffer_budget)
        .unwrap_or(0);
    let from_cache = report.served_from_cache.load(Ordering::Acquire);
    let revalidated = report.revalidated.load(Ordering::Acquire);
    let want_hash = status == 200
        && !header.headers.contains_key(ETAG)
        && route
            .etag
            .applies_to(header.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()))
        && !cache_control_no_store(&header);

    let mut chunks: Vec<Bytes> = Vec::new();
    let mut buffered = 0usize;
    let mut held = Held {
        budget: buffers,
        bytes: 0,
    };
    let mut complete = inner.ended;
    if want_hash && !complete {
        let mut hasher = blake3::Hasher::new();
        loop {
            match inner.next().await {
                Ok(Piece::Body(b)) => {
                    let fits = buffered + b.len() <= route.etag.max_buffer
                        && buffers.try_reserve(b.len(), limit);
                    if fits {
                        held.bytes += b.len();
                        hasher.update(&b);
                    }
                    buffered += b.len();
                    chunks.push(b);
                    if !fits {
                        break;
                    }
                }
                Ok(Piece::End) => {
                    complete = true;
                    break;
                }
                Ok(Piece::Header(_)) => {}
                Err(_) => {
                    // Nothing has been sent: never a complete-looking response. The inner
                    // already logged the origin's failure.
                    drop(held);
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(502),
                        "the origin's response broke off",
                    ));
                }
            }
        }
        if complete {
            header.insert_header(ETAG, content_etag(&hasher.finalize()))?;
            ctx.etag_source = EtagSource::Computed;
            route.metrics.content_etags.inc();
        }
    } else if header.headers.contains_key(ETAG) {
        ctx.etag_source = if from_cache || revalidated {
            EtagSource::Stored
        } else {
            EtagSource::Origin
        };
    }

    // Cache-Status for a forwarded request (or one another request's fill answered).
    let origin_status = report.origin_status.load(Ordering::Acquire);
    let mut cs = if from_cache {
        CacheStatus {
            hit: true,
            collapsed: true,
            ..Default::default()
        }
    } else {
        CacheStatus {
            fwd: Some(match ctx.fwd {
                Some(Fwd::Stale) => "stale",
                Some(Fwd::VaryMiss) => "vary-miss",
                Some(Fwd::Bypass) | None => "bypass",
                Some(Fwd::UriMiss) => "uri-miss",
            }),
            fwd_status: (origin_status > 0).then_some(origin_status),
            stored: report.storing.load(Ordering::Acquire),
            ..Default::default()
        }
    };
    add_debug_headers(&mut header, ctx, &mut cs, from_cache)?;
    ctx.cache_outcome = Some(outcome(ctx, &report, &header));
    let validator_from_cache = from_cache || revalidated;
    let from = if validator_from_cache {
        Origin::Stored
    } else {
        Origin::Fetched
    };

    if complete {
        let len = chunks.iter().map(Bytes::len).sum();
        let decision = decide(session.req_header(), *header, Some(len), from)?;
        let delivery = send_complete(session, decision, &chunks).await?;
        drop(held);
        record_delivery(
            ctx,
            delivery.status,
            delivery.body_bytes,
            Some(len),
            validator_from_cache,
        );
        inner.release(report.storing.load(Ordering::Acquire));
        return Ok(true);
    }

    // Stream: the body is larger than the buffer (or needs no hash).
    let declared = content_length(&header);
    let decision = decide(session.req_header(), *header, declared, from)?;
    let (header, range, head_only) = match decision {
        Decision::Send {
            header,
            range,
            head_only,
        } => (header, range, head_only),
        other => {
            let status = other.status();
            send_complete(session, other, &[]).await?;
            drop(held);
            record_delivery(ctx, status, 0, declared, validator_from_cache);
            inner.release(report.storing.load(Ordering::Acquire));
            return Ok(true);
        }
    };
    let status = header.status.as_u16();
    let mut header = header;
    if declared.is_none() && !head_only {
        // Length unknown: chunked framing, so a response cut short by the origin is visibly
        // incomplete to the client (HTTP/2 signals it with a stream reset instead).
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    session.write_response_header(header, head_only).await?;
    if head_only {
        drop(held);
        record_delivery(ctx, status, 0, declared, validator_from_cache);
        inner.release(report.storing.load(Ordering::Acquire));
        return Ok(true);
    }
    let mut sent = 0u64;
    let mut offset = 0usize;
    let write = |b: Bytes, offset: &mut usize| -> Option<Bytes> {
        let piece = match &range {
            Some(r) => {
                let s = slice_chunks(std::slice::from_ref(&b), &shift(r, *offset));
                s.into_iter().next()
            }
            None => Some(b.clone()),
        };
        *offset += b.len();
        piece
    };
    for c in std::mem::take(&mut chunks) {
        if let Some(p) = write(c, &mut offset) {
            sent += p.len() as u64;
            session.write_response_body(Some(p), false).await?;
        }
    }
    drop(held);
    loop {
        match inner.next().await {
            Ok(Piece::Body(b)) => {
                if let Some(p) = write(b, &mut offset) {
                    sent += p.len() as u64;
                    session.write_response_body(Some(p), false).await?;
                }
            }
            Ok(Piece::End) => break,
            Ok(Piece::Header(_)) => {}
            Err(e) => {
                // The header is out: the only honest signal left is to break the connection
                // so the client sees a truncated response, never a complete one.
                ctx.status = status;
                ctx.body_bytes += sent;
                return Err(e.into_up());
            }
        }
    }
    session.write_response_body(None, true).await?;
    record_delivery(ctx, status, sent, declared, validator_from_cache);
    Ok(true)
}

/// `range` relative to a chunk that starts at `offset` of the body.
fn shift(range: &Range<usize>, offset: usize) -> Range<usize> {
    range.start.saturating_sub(offset)..range.end.saturating_sub(offset)
}

/// The cache outcome of a forwarded request.
fn outcome(ctx: &RequestCtx, report: &InnerReport, header: &ResponseHeader) -> CacheOutcome {
    if report.served_from_cache.load(Ordering::Acquire) {
        return CacheOutcome::Hit;
    }
    if report.revalidated.load(Ordering::Acquire) {
        return CacheOutcome::RevalidatedUnchanged;
    }
    match ctx.fwd {
        Some(Fwd::Bypass) | None => CacheOutcome::Bypass,
        Some(Fwd::Stale) => {
            let status = header.status.as_u16();
            if status >= 500 {
                return CacheOutcome::Expired;
            }
            // A full response to a revalidation: unchanged when the content hash matches.
            let same = match (
                ctx.stale.as_ref().and_then(|e| e.etag()),
                header.headers.get(ETAG),
            ) {
                (Some(old), Some(new)) => crate::http::etag::EntityTag::parse(new.as_bytes())
                    .is_some_and(|n| n.strong_eq(&old)),
                _ => false,
            };
            if same {
                CacheOutcome::RevalidatedUnchanged
            } else {
                CacheOutcome::RevalidatedChanged
            }
        }
        Some(Fwd::UriMiss) | Some(Fwd::VaryMiss) => {
            // Uncacheable means the origin answered and the answer may not be stored; a
            // failed fetch is still a miss.
            let origin = report.origin_status.load(Ordering::Acquire);
            let answered = origin > 0 && origin < 500 && header.status.as_u16() < 500;
            if report.storing.load(Ordering::Acquire) || !answered {
                CacheOutcome::Miss
            } else {
                CacheOutcome::Uncacheable
            }
        }
    }
}

/// RFC 5861 stale-if-error: answer with the stale response kept before forwarding, when its
/// windows allow.
async fn serve_stale_on_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    status: u16,
) -> Result<bool> {
    let Some(entry) = ctx.stale.clone() else {
        return Ok(false);
    };
    let route_default = ctx
        .route
        .as_ref()
        .map(|r| r.cache.stale_if_error)
        .unwrap_or_default();
    if !may_serve_on_error(
        &entry.freshness,
        &ctx.request_directives,
        route_default,
        SystemTime::now(),
    ) {
        return Ok(false);
    }
    serve_stored(session, ctx, store, &entry, StoredUse::OnError(status)).await?;
    Ok(true)
}
