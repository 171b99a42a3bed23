//! The gateway's `ProxyHttp` implementation: a thin conductor over Pingora's phases.
//!
//! HTTP semantics live in [`crate::http`], the cache in [`crate::cache`], the configuration in
//! [`crate::config`]; each phase here only asks them and acts.
//!
//! A client's GET or HEAD takes one of three paths, decided in `request_filter`:
//!
//! ```text
//! request_filter (client)
//!   ├─ a stored response the request may use ──► written from the cache (outer::serve_stored)
//!   │     (stale-while-revalidate also starts a background refresh)
//!   ├─ content ETags on, or the request is conditional ──► outer::forward
//!   │     spawns an inner subrequest, buffers and hashes its response, applies
//!   │     preconditions/range, writes 200/206/304/412/416 itself
//!   └─ otherwise ──► Pingora's pipeline in this same request (below)
//!
//! inner subrequest, or the pipeline of a plain request:
//! request_filter (inner) ── strip client conditionals and Range, HEAD becomes GET
//! request_cache_filter ── enable the shared cache for GET on caching routes
//! cache_key_callback ── primary key + the variance the stored Vary asks for
//! cache_hit_filter ── our freshness rules (request directives included) decide use or revalidate
//! upstream_peer ── a healthy server of the route's upstream
//! upstream_request_filter ── Host, X-Forwarded-*, unkeyed inputs dropped, our own ETags
//!                            never sent as validators, Surrogate-Capability announced
//! upstream_response_filter ── origin metrics, hop-by-hop fields dropped, the origin's 304
//!                             kept for merging, unsafe methods invalidate
//! response_cache_filter ── RFC 9111 storability and freshness (or the 304 merge)
//! cache_vary_filter ── the variance of the request for the response's Vary
//! response_filter ── the inner reports to its outer; a plain request gets Cache-Status
//! fail_to_proxy ── 502 / 504 with a short body, logged with route and upstream
//! logging ── request metrics and the access log line (client requests only)
//! ```
//!
//! Unsafe methods (POST, PUT, DELETE, ...) always take the plain pipeline without the cache and
//! with their preconditions untouched: only the origin can judge them.

pub mod ctx;
pub mod forward;
pub mod outer;
pub mod respond;
pub mod storing;

use crate::cache::entry::FillPolicy;
use crate::cache::key::PrimaryKey;
use crate::cache::storage::Found;
use crate::cache::SharedCache;
use crate::config::runtime::normalize_host;
use crate::config::LiveConfig;
use crate::http::cache_control::RequestDirectives;
use crate::http::cache_status::CacheStatus;
use crate::http::etag::is_content_etag;
use crate::http::headers::strip_hop_by_hop;
use crate::http::storability::SURROGATE_DEVICE;
use crate::http::usability::{usability, Use};
use crate::http::vary::{variance, VarySpec};
use crate::metrics::access_log::{AccessLogger, AccessRecord};
use crate::metrics::{CacheOutcome, OriginOutcome};
use crate::server::control::ProcessState;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{EtagSource, Fwd, InnerPlan, RequestCtx, Role};
use http::header::{
    CACHE_CONTROL, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    RANGE,
};
use http::Method;
use outer::{BufferBudget, StoredUse};
use pingora_cache::key::HashBinary;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, HitHandler,
    RespCacheable,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Retries after a failure on a pooled origin connection: enough to get past connections the
/// origin closed while they sat idle, too few to hammer an origin that drops the request itself.
const STALE_CONNECTION_RETRIES: usize = 2;

pub struct Gateway {
    live: Arc<LiveConfig>,
    access_log: AccessLogger,
    state: Arc<ProcessState>,
    cache: Arc<SharedCache>,
    buffers: Arc<BufferBudget>,
}

impl Gateway {
    pub fn new(
        live: Arc<LiveConfig>,
        access_log: AccessLogger,
        state: Arc<ProcessState>,
        cache: Arc<SharedCache>,
        buffers: Arc<BufferBudget>,
    ) -> Gateway {
        Gateway {
            live,
            access_log,
            state,
            cache,
            buffers,
        }
    }
}

/// The authority a request is for: `Host`, or the HTTP/2 `:authority`.
fn request_authority(req: &RequestHeader) -> &str {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

fn scheme(session: &Session) -> &'static str {
    match session.digest().and_then(|d| d.ssl_digest.as_ref()) {
        Some(_) => "https",
        None => "http",
    }
}

/// RFC 9110 §9.2.1.
fn is_safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request fields that make a request conditional or partial; the outer request evaluates
/// them, so the inner fetch goes without them.
const CONDITIONAL_FIELDS: [http::HeaderName; 6] = [
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
    RANGE,
];

fn is_conditional(req: &RequestHeader) -> bool {
    CONDITIONAL_FIELDS
        .iter()
        .any(|h| req.headers.contains_key(h))
}

/// A small plain-text response written by etagate itself.
pub async fn respond_text(
    session: &mut Session,
    status: u16,
    text: &str,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let body = Bytes::from(format!("{status} {text}\n"));
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    let head_only = session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        ctx.body_bytes += body.len() as u64;
        session.write_response_body(Some(body), true).await?;
    }
    ctx.status = status;
    Ok(())
}

impl Gateway {
    /// The inner subrequest of an outer request: take over the outer's decisions and make the
    /// request a plain, unconditional GET so the whole response can be fetched and stored.
    fn inner_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) {
        let plan = session
            .subrequest_ctx
            .as_ref()
            .and_then(|c| c.user_ctx())
            .and_then(|u| u.downcast_ref::<InnerPlan>());
        if let Some(p) = plan {
            ctx.role = Role::Inner(p.report.clone());
            ctx.config = Some(p.config.clone());
            ctx.route = Some(p.route.clone());
            ctx.key = Some(p.key.clone());
        }
        let req = session.req_header_mut();
        if req.method == Method::HEAD {
            req.set_method(Method::GET);
        }
        for h in &CONDITIONAL_FIELDS {
            req.remove_header(h);
        }
        ctx.request_directives = RequestDirectives::parse(req.headers.get_all(CACHE_CONTROL));
    }

    /// Cache-Status for a request that took Pingora's pipeline itself.
    fn plain_cache_status(
        session: &Session,
        ctx: &mut RequestCtx,
        resp: &mut ResponseHeader,
    ) -> Result<()> {
        let phase = session.cache.phase();
        let origin = resp.status.as_u16();
        let (status, outcome) = match phase {
            CachePhase::Hit => (
                CacheStatus {
                    hit: true,
                    ..Default::default()
                },
                CacheOutcome::Hit,
            ),
            CachePhase::Miss => (
                CacheStatus {
                    fwd: Some(ctx.fwd.map(Fwd::as_str).unwrap_or("miss")),
                    fwd_status: Some(origin),
                    stored: true,
                    ..Default::default()
                },
                CacheOutcome::Miss,
            ),
            CachePhase::Expired => (
                CacheStatus {
                    fwd: Some("stale"),
                    fwd_status: Some(origin),
                    stored: true,
                    ..Default::default()
                },
                CacheOutcome::RevalidatedChanged,
            ),
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => (
                CacheStatus {
                    fwd: Some("stale"),
                    fwd_status: Some(304),
                    stored: matches!(phase, CachePhase::Revalidated),
                    ..Default::default()
                },
                CacheOutcome::RevalidatedUnchanged,
            ),
            CachePhase::Disabled(_) if ctx.key.is_some() && ctx.fwd != Some(Fwd::Bypass) => (
                CacheStatus {
                    fwd: Some(ctx.fwd.map(Fwd::as_str).unwrap_or("miss")),
                    fwd_status: Some(origin),
                    ..Default::default()
                },
                CacheOutcome::Uncacheable,
            ),
            _ => (
                CacheStatus {
                    fwd: Some("bypass"),
                    fwd_status: Some(origin),
                    ..Default::default()
                },
                CacheOutcome::Bypass,
            ),
        };
        ctx.cache_outcome = Some(outcome);
        let mut status = status;
        if ctx.route.as_ref().is_some_and(|r| r.debug_headers) {
            if let Some(k) = &ctx.key {
                if let Some(text) = k.text() {
                    status.key = Some(text.to_string());
                    resp.insert_header("x-cache-key", text)?;
                }
            }
            resp.insert_header(
                "x-cache-hit",
                if matches!(phase, CachePhase::Hit) {
                    "true"
                } else {
                    "false"
                },
            )?;
        }
        resp.insert_header("cache-status", status.render())?;
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    fn allow_spawning_subrequest(&self, session: &Session, _ctx: &RequestCtx) -> bool {
        session.subrequest_ctx.is_none()
    }

    /// Routes the request under the config snapshot it keeps to its end (404 when no route
    /// matches), then answers from the cache or through an inner subrequest when it can.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if session.subrequest_ctx.is_some() {
            self.inner_request_filter(session, ctx);
            if ctx.route.is_some() {
                return Ok(false);
            }
        }
        if self.state.draining() {
            // Another process has (or will have) the listening sockets: after this response the
            // client reconnects there instead of finding its idle connection closed.
            session.set_keepalive(None);
        }
        let config = self.live.snapshot();
        let req = session.req_header();
        ctx.host = normalize_host(request_authority(req));
        let route = config.router.route(&ctx.host, req.uri.path()).cloned();
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let key = if route.as_ref().is_some_and(|r| r.debug_headers) {
            PrimaryKey::with_text(scheme(session), request_authority(req), pq)
        } else {
            PrimaryKey::new(scheme(session), request_authority(req), pq)
        };
        ctx.key = Some(Arc::new(key));
        ctx.config = Some(config);
        let Some(route) = route else {
            respond_text(
                session,
                404,
                "Not Found: no route for this host and path",
                ctx,
            )
            .await?;
            return Ok(true);
        };
        ctx.route = Some(route.clone());
        if session.subrequest_ctx.is_some() {
            return Ok(false);
        }
        let method = session.req_header().method.clone();
        if method != Method::GET && method != Method::HEAD {
            ctx.fwd = Some(Fwd::Bypass);
            return Ok(false);
        }
        ctx.request_directives =
            RequestDirectives::parse(session.req_header().headers.get_all(CACHE_CONTROL));

        if route.cache.enabled {
            let store = self.cache.store;
            let primary = ctx.key.as_ref().map(|k| k.hash).unwrap_or_default();
            match store.find(&primary, &session.req_header().headers) {
                Found::Hit(entry) => match outer::stored_use(&entry, ctx) {
                    Some(how) => {
                        if how == StoredUse::WhileRevalidating {
                            outer::spawn_refresh(session, ctx, &entry);
                        }
                        outer::serve_stored(session, ctx, store, &entry, how).await?;
                        return Ok(true);
                    }
                    None => {
                        ctx.fwd = Some(Fwd::Stale);
                        ctx.stale = Some(entry);
                    }
                },
                Found::UriMiss => ctx.fwd = Some(Fwd::UriMiss),
                Found::VaryMiss => ctx.fwd = Some(Fwd::VaryMiss),
            }
            if ctx.request_directives.only_if_cached {
                respond_text(
                    session,
                    504,
                    "Gateway Timeout: not in the cache (only-if-cached)",
                    ctx,
                )
                .await?;
                return Ok(true);
            }
        } else {
            ctx.fwd = Some(Fwd::Bypass);
        }

        if route.etag.enabled || is_conditional(session.req_header()) {
            return outer::forward(session, ctx, self.cache.store, &self.buffers).await;
        }
        Ok(false)
    }

    /// GET on a caching route uses the shared cache; concurrent misses for one key wait for the
    /// first (up to `cache.lock_timeout`).
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let (Some(route), Some(config)) = (ctx.route.as_ref(), ctx.config.as_ref()) else {
            return Ok(());
        };
        let method = &session.req_header().method;
        if !route.cache.enabled
            || ctx.key.is_none()
            || (method != Method::GET && method != Method::HEAD)
        {
            return Ok(());
        }
        let mut overrides = CacheOptionOverrides::default();
        overrides.wait_timeout = Some(config.cache.lock_timeout);
        session.cache.enable(
            self.cache.store,
            None,
            None,
            Some(self.cache.lock),
            Some(overrides),
        );
        Ok(())
    }

    /// The primary key, with the variance the stored responses' `Vary` selects.
    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let key = ctx
            .key
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no cache key"))?;
        let variance = self
            .cache
            .store
            .variance_for(&key.hash, &session.req_header().headers);
        Ok(key.to_cache_key(variance))
    }

    /// etagate's freshness rules (request directives included) decide, not the stored
    /// deadline alone.
    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        let Some(policy) = meta.extensions().get::<FillPolicy>() else {
            return Ok(None);
        };
        let usable = !matches!(
            usability(
                &policy.freshness,
                &ctx.request_directives,
                SystemTime::now()
            ),
            Use::Validate
        );
        Ok(match (usable, is_fresh) {
            (true, false) => Some(ForcedFreshness::ForceFresh),
            (false, true) => Some(ForcedFreshness::ForceExpired),
            _ => None,
        })
    }

    /// RFC 9111 storability and freshness; after a 304, the merged stored response.
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        // Pingora's phase is `Stale` both when the origin answered a revalidation with 304 and
        // when it sent a whole new response; only the former is a merge.
        let merged_304 = ctx.origin_not_modified.is_some();
        let decision = match session.cache.maybe_cache_meta() {
            Some(stored) if merged_304 => {
                storing::decide_revalidated(session.req_header(), stored.response_header(), ctx)
            }
            _ => storing::decide_fresh_response(session.req_header(), resp, ctx),
        };
        if let Some(report) = ctx.inner_report() {
            report
                .storing
                .store(decision.is_cacheable(), Ordering::Release);
        }
        Ok(decision)
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        match VarySpec::of(meta.headers()) {
            VarySpec::Headers(names) => Some(variance(&names, &req.headers)),
            _ => None,
        }
    }

    /// Stale responses are served by the outer request (stale-while-revalidate,
    /// stale-if-error), never by Pingora inside the inner one.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        _error: Option<&Error>,
    ) -> bool {
        false
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        ctx.origin_tries += 1;
        forward::peer(&route.upstream)
    }

    /// A refused or failed connection is retried on another server while servers remain.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let servers = ctx
            .route
            .as_ref()
            .map(|r| r.upstream.definition.servers.len())
            .unwrap_or(1);
        if ctx.origin_tries < servers && !matches!(e.etype(), ErrorType::ConnectTimedout) {
            e.set_retry(true);
        }
        e
    }

    /// A request that failed on a pooled origin connection is tried again (Pingora's rule:
    /// idempotent methods with a replayable body), but only [`STALE_CONNECTION_RETRIES`]
    /// times. Pingora's own bound is 16, and a request that makes the origin drop every
    /// connection it arrives on would reach the origin 16 times for one client request.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        if client_reused {
            ctx.stale_connection_failures += 1;
        }
        if replayable && ctx.stale_connection_failures <= STALE_CONNECTION_RETRIES {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        forward::rewrite_request(
            upstream_request,
            &route.upstream,
            client_ip,
            scheme(session),
        )?;
        // An ETag etagate computed means nothing to the origin: revalidate such a response with
        // Last-Modified alone, or fetch it whole (an unchanged body keeps its tag).
        if upstream_request
            .headers
            .get(IF_NONE_MATCH)
            .is_some_and(|v| is_content_etag(v.as_bytes()))
        {
            upstream_request.remove_header(&IF_NONE_MATCH);
        }
        if route.cache.enabled {
            upstream_request.insert_header(
                "surrogate-capability",
                format!("{SURROGATE_DEVICE}=\"Surrogate/1.0\""),
            )?;
        }
        ctx.origin_sent = Some(Instant::now());
        ctx.origin_sent_at = Some(SystemTime::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let (Some(sent), Some(route)) = (ctx.origin_sent, ctx.route.as_ref()) {
            let waited = sent.elapsed();
            ctx.origin_wait = Some(waited);
            let m = &route.upstream.metrics;
            m.duration.observe(waited.as_secs_f64());
            m.outcome(OriginOutcome::from_status(status));
            if let Some(report) = ctx.inner_report() {
                report
                    .origin_wait_us
                    .store(waited.as_micros() as u64, Ordering::Release);
                report.origin_status.store(status, Ordering::Release);
            }
        }
        if status != 101 {
            strip_hop_by_hop(upstream_response);
        }
        if status == 304 {
            ctx.origin_not_modified = Some(Box::new(upstream_response.clone()));
        }
        let req = session.req_header();
        if !is_safe(&req.method) && (200..400).contains(&status) {
            for key in storing::invalidation_targets(
                req,
                upstream_response,
                scheme(session),
                request_authority(req),
            ) {
                self.cache.store.purge_primary(&key.hash);
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(report) = ctx.inner_report() {
            match session.cache.phase() {
                CachePhase::Hit => report.served_from_cache.store(true, Ordering::Release),
                CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
                    report.revalidated.store(true, Ordering::Release)
                }
                _ => {}
            }
            return Ok(());
        }
        ctx.status = upstream_response.status.as_u16();
        if upstream_response.headers.contains_key(ETAG) {
            ctx.etag_source = EtagSource::Origin;
        }
        if ctx.key.is_some() && ctx.route.is_some() {
            Gateway::plain_cache_status(session, ctx, upstream_response)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
        }
        Ok(None)
    }

    /// 502 when the origin is unreachable or broke the response, 504 when it was too slow;
    /// each with a short body, logged with route and upstream.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, outcome, text) = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(c), _) => (*c, OriginOutcome::Error, "Bad Gateway"),
            (_, pingora_error::ErrorSource::Upstream) => forward::failure_status(e),
            (_, pingora_error::ErrorSource::Downstream) => {
                // The client went away or sent garbage; nothing useful can be written.
                let code = match e.etype() {
                    ErrorType::ReadError
                    | ErrorType::WriteError
                    | ErrorType::ConnectionClosed
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout => 0,
                    _ => 400,
                };
                (code, OriginOutcome::Error, "Bad Request")
            }
            _ => (500, OriginOutcome::Error, "Internal Server Error"),
        };
        let relayed =
            matches!(e.etype(), ErrorType::HTTPStatus(_)) || session.response_written().is_some();
        if matches!(e.esource(), pingora_error::ErrorSource::Upstream) && !relayed {
            if let Some(route) = &ctx.route {
                route.upstream.metrics.outcome(outcome);
                log::warn!(
                    "route={} upstream={} {} {}: {e}",
                    route.name,
                    route.upstream.name,
                    session.req_header().method,
                    session.req_header().uri
                );
            }
        }
        if code > 0 && session.response_written().is_none() {
            session.set_keepalive(None);
            let reason = match code {
                502 => format!("Bad Gateway: {text}"),
                504 => format!("Gateway Timeout: {text}"),
                _ => text.to_string(),
            };
            if respond_text(session, code, &reason, ctx).await.is_err() {
                ctx.status = code;
            }
            if session.subrequest_ctx.is_some() {
                // Pingora does not finish the downstream of a failed request, and an inner
                // subrequest's response only ends when finished: unfinished, the outer would
                // take this complete 502/504 for a cut-off one and drop the client's connection
                // after relaying it.
                let _ = session.finish_body().await;
            }
        } else {
            ctx.status = code;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Upstream failures are logged once, with route and upstream, by `fail_to_proxy`.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        matches!(error.esource(), pingora_error::ErrorSource::Upstream)
            || ctx.inner_report().is_some()
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.inner_report().is_some() || session.subrequest_ctx.is_some() {
            // The client request this inner request served is logged once, by the outer.
            return;
        }
        let total = ctx.started.elapsed();
        if ctx.status == 0 {
            ctx.status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
        }
        let m = match &ctx.route {
            Some(route) => &route.metrics,
            None => &*crate::metrics::UNROUTED,
        };
        m.duration.observe(total.as_secs_f64());
        m.body_bytes.inc_by(ctx.body_bytes);
        if let Some(o) = ctx.cache_outcome {
            m.cache(o);
        }
        // Last, so a scrape that sees the request counted sees all of its other counts too.
        m.request(ctx.status);
        if !self.access_log.enabled() {
            return;
        }
        let req = session.req_header();
        self.access_log.log(AccessRecord {
            time: SystemTime::now(),
            client: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            method: req.method.clone(),
            uri: req.uri.clone(),
            host: std::mem::take(&mut ctx.host),
            status: ctx.status,
            route: ctx.route.as_ref().map(|r| r.name.clone()),
            upstream: ctx
                .route
                .as_ref()
                .filter(|_| ctx.origin_tries > 0 || ctx.origin_wait.is_some())
                .map(|r| r.upstream.name.clone()),
            cache: ctx.cache_outcome.map(|o| o.as_str()).unwrap_or("-"),
            etag: ctx.etag_source.as_str(),
            body_bytes: ctx.body_bytes,
            upstream_seconds: ctx.origin_wait.map(|d| d.as_secs_f64()),
            total_seconds: total.as_secs_f64(),
        });
    }
}
