//! Answering from a stored response, without a subrequest and usually without the origin: a
//! fresh hit, a stale response served while it is refreshed (RFC 5861 stale-while-revalidate)
//! or because the origin failed (stale-if-error). Hits pay for neither a channel hop nor
//! hashing; the stored header is used as it is wherever the answer allows.

use super::ctx::{EtagSource, RequestCtx};
use super::encoding;
use super::outcome::{self, StoredUse};
use super::respond::{
    decide_unconditionally, precondition_decision, send_complete, Decision, Delivery, Origin,
};
use crate::cache::disk::body::FileBody;
use crate::cache::entry::Entry;
use crate::cache::storage::MemStore;
use crate::http::cache_control::RequestDirectives;
use crate::http::coding::Coding;
use crate::http::compressible::represent;
use crate::http::headers::set_content_etag;
use crate::http::usability::{may_serve_on_error, may_serve_while_revalidating, usability, Use};
use crate::metrics::METRICS;
use bytes::Bytes;
use http::header::{AGE, CONTENT_TYPE, ETAG};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::sync::Arc;
use std::time::SystemTime;

/// Whether a stored response may answer a request with these directives without the origin,
/// and how.
pub fn stored_use(entry: &Entry, directives: &RequestDirectives) -> Option<StoredUse> {
    let now = SystemTime::now();
    match usability(&entry.freshness, directives, now) {
        Use::Fresh | Use::StaleAccepted => Some(StoredUse::Hit),
        Use::Validate => may_serve_while_revalidating(&entry.freshness, directives, now)
            .then_some(StoredUse::WhileRevalidating),
    }
}

/// Answer from a stored response. The caller has decided the request may use it. `file`: the
/// body of a response on disk only (too large for memory), sent from its file in chunks.
pub async fn serve_stored(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    entry: &Arc<Entry>,
    how: StoredUse,
    from_disk: bool,
    file: Option<&FileBody>,
) -> Result<()> {
    let routed = ctx.routed()?;
    let route = routed.route.clone();
    let debug_key = route.spec.debug_headers.then(|| routed.key.clone());
    let primary = routed.key.hash;
    let config = routed.config.clone();
    let via_peer = routed.via_peer;
    let cache_name = config.cache_name();
    let now = SystemTime::now();
    let (mut status, outcome) = outcome::of_stored(how, entry.freshness.ttl_secs(now));
    if from_disk {
        // RFC 9211 `detail`: which tier answered (a memory hit says nothing).
        status.detail = status.detail.or(Some("disk"));
    }
    let len = file.map_or(entry.body.len(), |f| f.len() as usize);
    // A response stored without an ETag (before the route enabled them) gets one now, once:
    // the tagged copy replaces the stored one (in memory: one on disk only keeps going
    // without, since tagging it would mean reading it whole).
    let untagged = file.is_none()
        && entry.header.status.as_u16() == 200
        && !entry.header.headers.contains_key(ETAG)
        && route
            .spec
            .etag
            .applies_to(entry.header.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()));
    let retagged;
    let (entry, tagged) = if untagged {
        let mut h = entry.header.clone();
        set_content_etag(&mut h, &[&entry.body], &blake3::hash(&entry.body))?;
        retagged = Arc::new(entry.retagged(h.clone()));
        store.replace(&primary, entry, retagged.clone());
        // from here on the tagged copy: its encodings are made from, and kept beside, it
        (&retagged, Some(h))
    } else {
        (entry, None)
    };
    let stored = tagged.as_ref().unwrap_or(&entry.header);
    ctx.sent.etag_source = etag_source(stored, entry.etag_computed || untagged);
    ctx.sent.cache_outcome = Some(outcome);
    // The representation the request accepts.
    let policy = route.spec.compression.as_ref();
    // A body on disk only is sent in identity (encoding it would mean reading it whole), with
    // the `Vary` every representation of it carries.
    let req = &session.req_header().headers;
    let coding = encoding::choose(
        policy,
        req,
        stored.status.as_u16(),
        &stored.headers,
        len as u64,
    )
    .map(|c| if file.is_some() { Coding::Identity } else { c });
    let mut encoded = None;
    let mut represented = None;
    if let (Some(coding), Some(policy)) = (coding, policy) {
        if coding != Coding::Identity {
            let level = policy.stored_levels.of(coding);
            encoded = encoding::stored(store, &primary, entry, coding, level).await;
        }
        let mut h = stored.clone();
        match &encoded {
            Some(e) => represent(&mut h, coding, e.etag.clone())?,
            None => represent(&mut h, Coding::Identity, None)?,
        }
        represented = Some(h);
    }
    let sent_coding = coding.map(|c| encoded.as_ref().map_or(Coding::Identity, |_| c));
    let body: &Bytes = encoded
        .as_ref()
        .and_then(|e| e.body.as_ref())
        .unwrap_or(&entry.body);
    let len = file.map_or(body.len(), |f| f.len() as usize);
    let stored = represented.as_ref().unwrap_or(stored);
    // A 304 or 412 is built from the stored header itself (or the representation's).
    let (decision, body) =
        match precondition_decision(session.req_header(), stored, Origin::Stored)? {
            Some(mut decision) => {
                if let super::respond::Decision::NotModified(h) = &mut decision {
                    h.insert_header(AGE, entry.freshness.age_header(now))?;
                    outcome::label(h, status, debug_key.as_deref(), true, cache_name)?;
                }
                (decision, &[][..])
            }
            None => {
                let mut header: ResponseHeader = represented
                    .or(tagged)
                    .unwrap_or_else(|| entry.header.clone());
                super::storing::strip_for_client(&mut header, &route, &config, via_peer);
                header.insert_header(AGE, entry.freshness.age_header(now))?;
                outcome::label(&mut header, status, debug_key.as_deref(), true, cache_name)?;
                let decision = decide_unconditionally(session.req_header(), header, Some(len))?;
                (decision, std::slice::from_ref(body))
            }
        };
    let delivery = match file {
        Some(file) => send_from_file(session, decision, file).await?,
        None => send_complete(session, decision, body).await?,
    };
    if let (Some(c), 200 | 206, 1..) = (sent_coding, delivery.status, delivery.body_bytes) {
        METRICS.compression.sent(c);
    }
    outcome::record_delivery(
        &mut ctx.sent,
        &route.metrics,
        delivery.status,
        delivery.body_bytes,
        Some(len),
        true,
    );
    Ok(())
}

/// [`send_complete`] for a body in a file: the selected bytes read and sent a chunk at a time,
/// so memory holds one chunk whatever the size. A read that fails once the header is out can
/// only cut the response off (the client sees it short of its Content-Length).
async fn send_from_file(
    session: &mut Session,
    decision: Decision,
    file: &FileBody,
) -> Result<Delivery> {
    let Decision::Send {
        header,
        range,
        head_only,
    } = decision
    else {
        return send_complete(session, decision, &[]).await;
    };
    let status = header.status.as_u16();
    let range = range.unwrap_or(0..file.len() as usize);
    let total = range.len() as u64;
    let no_body = head_only || total == 0;
    session.write_response_header(header, no_body).await?;
    if no_body {
        return Ok(Delivery {
            status,
            body_bytes: 0,
        });
    }
    let (mut at, end) = (range.start as u64, range.end as u64);
    while at < end {
        let chunk = file.chunk(at, end).await?;
        at += chunk.len() as u64;
        session.write_response_body(Some(chunk), at == end).await?;
    }
    Ok(Delivery {
        status,
        body_bytes: total,
    })
}

fn etag_source(header: &ResponseHeader, computed: bool) -> EtagSource {
    match (header.headers.contains_key(ETAG), computed) {
        (false, _) => EtagSource::None,
        (true, true) => EtagSource::Stored,
        (true, false) => EtagSource::Origin,
    }
}

/// RFC 5861 stale-if-error: answer with the stale response kept before forwarding, when its
/// windows allow. `status` is the origin's failure (0: no response at all).
pub async fn serve_stale_on_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: &MemStore,
    status: u16,
) -> Result<bool> {
    let routed = ctx.routed()?;
    let Some(entry) = routed.stale.clone() else {
        return Ok(false);
    };
    if !may_serve_on_error(
        &entry.freshness,
        &routed.directives,
        routed.route.spec.cache.stale_if_error,
        SystemTime::now(),
    ) {
        return Ok(false);
    }
    serve_stored(
        session,
        ctx,
        store,
        &entry,
        StoredUse::OnError(status),
        false,
        None,
    )
    .await?;
    Ok(true)
}
