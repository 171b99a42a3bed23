//! The gateway's `ProxyHttp` implementation: a thin conductor over Pingora's phases.
//!
//! HTTP semantics live in [`crate::http`], the cache in [`crate::cache`], the configuration in
//! [`crate::runtime`]; each phase here asks them (or the modules beside it) and acts.
//!
//! A client's GET or HEAD takes one of three paths, decided in `request_filter`
//! ([`admission::plan`]):
//!
//! ```text
//! request_filter (client): authority checked, route and key chosen (admission)
//!   ├─ a stored response the request may use ──► written from the cache (stored)
//!   │     (stale-while-revalidate also starts a background refresh)
//!   ├─ content ETags on, or the request is conditional ──► relay::forward
//!   │     spawns an inner subrequest (subrequest), buffers and hashes its response,
//!   │     applies preconditions/range, writes 200/206/304/412/416 itself (relay, respond)
//!   └─ otherwise ──► Pingora's pipeline in this same request (below)
//!
//! inner subrequest, or the pipeline of a plain request:
//! request_filter (inner) ── the outer's route and key; client conditionals and Range
//!                           stripped, HEAD becomes GET
//! request_cache_filter ── enable the shared cache for GET on caching routes
//! cache_key_callback ── primary key + the variance the stored Vary asks for
//! cache_hit_filter ── our freshness rules (request directives included) decide use or revalidate
//! upstream_peer ── a healthy server of the route's upstream
//! upstream_request_filter ── Host, X-Forwarded-*, unkeyed inputs dropped, our own ETags
//!                            never sent as validators, Surrogate-Capability announced
//! upstream_response_filter ── origin metrics, hop-by-hop fields dropped, the origin's 304
//!                             kept for merging, unsafe methods invalidate
//! response_cache_filter ── RFC 9111 storability and freshness (or the 304 merge) (storing)
//! cache_vary_filter ── the variance of the request for the response's Vary
//! response_filter ── the inner reports to its outer; a plain request gets Cache-Status
//! fail_to_proxy ── 502 / 504 with a short body, logged with route and upstream
//! logging ── request metrics and the access log line (client requests only)
//! ```
//!
//! Unsafe methods (POST, PUT, DELETE, ...) always take the plain pipeline without the cache and
//! with their preconditions untouched: only the origin can judge them.

pub(crate) mod admission;
pub mod budget;
pub mod ctx;
pub(crate) mod encoding;
pub(crate) mod outcome;
pub(crate) mod peer;
pub(crate) mod relay;
pub mod respond;
pub(crate) mod stored;
pub(crate) mod storing;
pub(crate) mod subrequest;
pub(crate) mod upstream;

#[cfg(test)]
mod hook_tests;

use crate::access_log::{AccessLogger, AccessRecord};
use crate::cache::entry::FillPolicy;
use crate::cache::pass_through::Unshared;
use crate::cache::storage::Found;
use crate::cache::SharedCache;
use crate::cluster::{auth as peer_auth, Fleet, Member};
use crate::control::{Control, ProcessState};
use crate::http::etag::is_content_etag;
use crate::http::headers::strip_hop_by_hop;
use crate::http::names;
use crate::http::preconditions::{is_conditional, CONDITIONAL_FIELDS};
use crate::http::range::representation_len;
use crate::http::storability::SURROGATE_DEVICE;
use crate::http::usability::{usability, Use};
use crate::http::vary::{variance, VarySpec};
use crate::metrics::OriginOutcome;
use crate::runtime::LiveConfig;
use admission::{Forward, Plan};
use async_trait::async_trait;
use budget::BufferBudget;
use bytes::Bytes;
use ctx::{EtagSource, Fwd, RequestCtx, Stage};
use http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use http::Method;
use outcome::{PipelinePhase, StoredUse};
use peer::PeerRequest;
use pingora_cache::key::HashBinary;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, HitHandler,
    RespCacheable,
};
use pingora_core::protocols::http::ServerSession as HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
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
    /// The fleet, when this node is a member; and the operations its peers may ask for.
    fleet: Option<(Arc<Fleet>, Arc<Control>)>,
    /// This gateway serves the peer listener: only authenticated members are answered.
    peer_listener: bool,
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
            fleet: None,
            peer_listener: false,
        }
    }

    /// Make this node a fleet member: keys other members own are fetched from them.
    pub fn in_fleet(mut self, fleet: Arc<Fleet>, control: Arc<Control>) -> Gateway {
        self.fleet = Some((fleet, control));
        self
    }

    /// The same gateway for the peer listener.
    pub fn for_peers(&self) -> Gateway {
        Gateway {
            live: self.live.clone(),
            access_log: self.access_log.clone(),
            state: self.state.clone(),
            cache: self.cache.clone(),
            buffers: self.buffers.clone(),
            fleet: self.fleet.clone(),
            peer_listener: true,
        }
    }

    fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref().map(|(f, _)| f)
    }

    /// The member owning a routed client request's key, when it is another member and the
    /// request may be shared: not forwarded by a member already, no credentials (RFC 9111
    /// §3.5: a response to them is this client's unless the origin says otherwise, and only
    /// the origin can), and the node still configured as a member.
    fn owner_of(&self, req: &RequestHeader, routed: &ctx::Routed) -> Option<Arc<Member>> {
        let fleet = self.fleet()?;
        if routed.via_peer
            || routed.config.config.cluster.is_none()
            || req.headers.contains_key(http::header::AUTHORIZATION)
        {
            return None;
        }
        fleet.owner(&routed.key.hash)
    }

    /// The owner was too slow for this request, which goes to the origin directly; the owner
    /// is not marked down for it.
    fn bypass_owner(&self, ctx: &mut RequestCtx) {
        let Ok(routed) = ctx.routed_mut() else {
            return;
        };
        if let Some(owner) = routed.owner.take() {
            crate::metrics::METRICS
                .cluster
                .peer_requests
                .with_label_values(&[&owner.name, "timeout"])
                .inc();
            routed.fwd = Some(Fwd::Bypass);
        }
    }

    /// A request the owner of its key could not take: mark the owner down and move the request
    /// to the next member on the ring, or to the origin when that is this node.
    fn fail_over(&self, ctx: &mut RequestCtx, outcome: &str, why: &str) {
        let Some(fleet) = self.fleet() else {
            return;
        };
        let Ok(routed) = ctx.routed_mut() else {
            return;
        };
        let Some(owner) = routed.owner.take() else {
            return;
        };
        let m = &crate::metrics::METRICS.cluster;
        m.peer_requests
            .with_label_values(&[&owner.name, outcome])
            .inc();
        m.failovers.with_label_values(&[&owner.name]).inc();
        fleet.mark_down(&owner, why);
        routed.owner = fleet.owner(&routed.key.hash);
        if routed.owner.is_none() {
            // This node's cache was not enabled for the request: straight to the origin.
            routed.fwd = Some(Fwd::Bypass);
        }
    }
}

/// A final response went to the client. An interim one (103) does not count: after it a
/// failure still owes the client its 502 or 504 (RFC 9110 §15.2), and a failover is still
/// possible. (Pingora records a 1xx as the response written.)
fn final_written(session: &HttpSession) -> bool {
    session
        .response_written()
        .is_some_and(|r| !r.status.is_informational() || r.status == 101)
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

/// A response etagate writes itself; the status is recorded even if the client is gone.
async fn respond_text(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    text: &str,
) -> Result<()> {
    ctx.sent.status = status;
    let delivery = respond::respond_text(session, status, text, &[]).await?;
    ctx.sent.body_bytes += delivery.body_bytes;
    Ok(())
}

impl Gateway {
    /// The inner subrequest of an outer request: take over the outer's route and key and make
    /// the request a plain, unconditional GET so the whole response can be fetched and stored.
    fn inner_request_filter(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let Some(plan) = subrequest::plan_of(session) else {
            return Error::e_explain(ErrorType::InternalError, "a subrequest without a plan");
        };
        let req = session.req_header();
        let routed = plan.routed(crate::http::cache_control::RequestDirectives::parse(
            req.headers.get_all(CACHE_CONTROL),
        ));
        ctx.stage = Stage::Routed(Box::new(routed));
        let req = session.req_header_mut();
        if req.method == Method::HEAD {
            req.set_method(Method::GET);
        }
        for h in &CONDITIONAL_FIELDS {
            req.remove_header(h);
        }
        Ok(())
    }

    /// A GET or HEAD: a stored response when one may answer, else forward it.
    async fn fetch(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        lookup: bool,
        forward: Forward,
    ) -> Result<bool> {
        let store = self.cache.store;
        if !lookup {
            ctx.routed_mut()?.fwd = Some(Fwd::Bypass);
        } else {
            let routed = ctx.routed()?;
            let primary = routed.key.hash;
            let mut found = store.find(&primary, &session.req_header().headers);
            let missed = match found {
                Found::VaryMiss => Fwd::VaryMiss,
                _ => Fwd::UriMiss,
            };
            let mut from_disk = false;
            // A response too large for memory, served from its file in chunks.
            let mut streamed = None;
            if let (Found::UriMiss | Found::VaryMiss, Some(disk)) = (&found, self.cache.disk) {
                let variance = disk.variance_for(&primary, &session.req_header().headers);
                if let Some(variance) = variance {
                    if let Some((entry, file)) = store.from_disk(primary, variance).await {
                        found = Found::Hit(entry);
                        from_disk = true;
                        streamed = file;
                    }
                }
            }
            let routed = ctx.routed()?;
            let fwd = match found {
                Found::Hit(entry) => match stored::stored_use(&entry, &routed.directives) {
                    // Each disk-only hit builds its entry anew, so the refresh claim of
                    // stale-while-revalidate would hold for one request only: every request
                    // of the window would download the large object again. Fetched once
                    // instead, through the cache lock.
                    Some(StoredUse::WhileRevalidating) if streamed.is_some() => missed,
                    Some(how) => {
                        if how == StoredUse::WhileRevalidating {
                            subrequest::spawn_refresh(session, routed, &entry);
                        }
                        let m = &crate::metrics::METRICS.disk;
                        if from_disk {
                            m.hits_disk.inc();
                        } else {
                            m.hits_memory.inc();
                            // Hot in memory is hot: its disk copy must not be the first to go
                            // (a restart would lose the hits that matter most).
                            if let Some(disk) = self.cache.disk.filter(|_| entry.claim_disk_use()) {
                                disk.touch(&primary, &entry.variance);
                            }
                        }
                        let file = streamed.as_ref();
                        stored::serve_stored(session, ctx, store, &entry, how, from_disk, file)
                            .await?;
                        return Ok(true);
                    }
                    // Only in memory is a stale response revalidated or kept to answer if the
                    // origin fails: one on disk only (too large for memory) is fetched anew.
                    None if streamed.is_some() => missed,
                    None => {
                        ctx.routed_mut()?.stale = Some(entry);
                        Fwd::Stale
                    }
                },
                Found::UriMiss => Fwd::UriMiss,
                Found::VaryMiss => Fwd::VaryMiss,
            };
            let routed = ctx.routed_mut()?;
            routed.fwd = Some(fwd);
            if routed.directives.only_if_cached {
                let text = "Gateway Timeout: not in the cache (only-if-cached)";
                respond_text(session, ctx, 504, text).await?;
                return Ok(true);
            }
        }
        match (forward, self.unshared(ctx)?) {
            // Its last response said no-store, or was too large to keep or tag: nothing to
            // tag, keep or judge; the pipeline, without the cache (`cache::pass_through`),
            // which forwards a Range as it came.
            (Forward::Subrequest, Some(Unshared::NoStore)) | (_, Some(Unshared::TooLarge)) => {
                ctx.routed_mut()?.fwd = Some(Fwd::Bypass);
                Ok(false)
            }
            (Forward::Subrequest, _) => {
                let pass = &self.cache.pass_through;
                relay::forward(session, ctx, store, &self.buffers, pass).await
            }
            (Forward::Pipeline, _) => Ok(false),
        }
    }

    /// What the key's last response said against sharing it: looked up once per request.
    fn unshared(&self, ctx: &mut RequestCtx) -> Result<Option<Unshared>> {
        let routed = ctx.routed_mut()?;
        let pass = &self.cache.pass_through;
        Ok(*routed
            .unshared
            .get_or_insert_with(|| pass.predict(&routed.key.hash)))
    }

    /// Cache-Status for a request that took Pingora's pipeline itself.
    fn label_pipeline_response(
        session: &Session,
        ctx: &mut RequestCtx,
        resp: &mut ResponseHeader,
    ) -> Result<()> {
        let routed = ctx.routed()?;
        let phase = match session.cache.phase() {
            CachePhase::Hit => PipelinePhase::Hit,
            CachePhase::Miss => PipelinePhase::Miss,
            CachePhase::Expired => PipelinePhase::Expired,
            CachePhase::Revalidated => PipelinePhase::Revalidated { stored: true },
            CachePhase::RevalidatedNoCache(_) => PipelinePhase::Revalidated { stored: false },
            _ => PipelinePhase::Disabled,
        };
        let (status, cache_outcome) = outcome::of_pipeline(phase, routed.fwd, resp.status.as_u16());
        if routed.owner.is_some() {
            // The owner kept etagate's own targeted field for this node's prediction.
            storing::strip_for_client(resp, &routed.route, &routed.config, routed.via_peer);
            outcome::label_after_owner(resp, status, routed.config.cache_name())?;
            ctx.sent.cache_outcome = Some(cache_outcome);
            return Ok(());
        }
        let debug_key = routed.route.spec.debug_headers.then(|| routed.key.clone());
        storing::strip_for_client(resp, &routed.route, &routed.config, routed.via_peer);
        outcome::label(
            resp,
            status,
            debug_key.as_deref(),
            phase == PipelinePhase::Hit,
            routed.config.cache_name(),
        )?;
        ctx.sent.cache_outcome = Some(cache_outcome);
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Runs first for every request, before any module. Turns HTTP/1.1 pipelining on: a
    /// client that sends its next request before reading the response gets its answers in
    /// order (RFC 9112 §9.3.2) instead of a connection closed under the second request.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        session.set_pipelining_enabled(true);
        Ok(())
    }

    /// Whether a request may spawn subrequests: client requests may (an outer request's inner,
    /// a background refresh), inner requests may not.
    fn allow_spawning_subrequest(&self, session: &Session, _ctx: &RequestCtx) -> bool {
        session.subrequest_ctx.is_none()
    }

    /// Runs once the request header is read; may answer the request itself (`Ok(true)`).
    ///
    /// A client request is checked and routed under the config snapshot it keeps to its end
    /// (400 for an invalid authority, 404 when no route matches), then answered from the cache
    /// or through an inner subrequest when it can ([`admission::plan`]); otherwise it goes on
    /// through Pingora's pipeline. An inner request takes its outer's route and key.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if session.subrequest_ctx.is_some() {
            Gateway::inner_request_filter(session, ctx)?;
            return Ok(false);
        }
        if self.state.draining() {
            // Another process has (or will have) the listening sockets: after this response the
            // client reconnects there instead of finding its idle connection closed.
            session.set_keepalive(None);
        }
        // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client (it would read it as the answer);
        // Pingora then drops the origin's interim responses on both paths.
        if session.req_header().version < http::Version::HTTP_11 {
            if let HttpSession::H1(h1) = session.as_downstream_mut() {
                h1.set_ignore_info_resp(true);
            }
        }
        let mut scheme = scheme(session);
        let via_peer = if self.peer_listener {
            match peer::admit(session, ctx, self.fleet.as_ref()).await? {
                PeerRequest::Answered => return Ok(true),
                PeerRequest::Forwarded { scheme: s } => {
                    scheme = s;
                    true
                }
            }
        } else {
            if self.fleet.is_some() {
                // Only the peer listener honours the peer protocol: on a public listener its
                // headers are a client's, and go nowhere.
                let req = session.req_header_mut();
                for name in peer_auth::ALL_HEADERS {
                    req.remove_header(name);
                }
            }
            false
        };
        let config = self.live.snapshot();
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        match admission::admit(session.req_header(), scheme, local, &config) {
            Ok(mut routed) => {
                routed.via_peer = via_peer;
                ctx.stage = Stage::Routed(Box::new(routed));
            }
            Err(refusal) => {
                ctx.stage = Stage::Unrouted { host: refusal.host };
                if refusal.status == 400 {
                    session.set_keepalive(None);
                }
                respond_text(session, ctx, refusal.status, &refusal.reason).await?;
                return Ok(true);
            }
        }
        let req = session.req_header();
        let spec = &ctx.routed()?.route.spec;
        let plan = admission::plan(
            &req.method,
            spec.cache.enabled,
            spec.etag.enabled,
            is_conditional(&req.headers),
        );
        match plan {
            Plan::Pass => {
                ctx.routed_mut()?.fwd = Some(Fwd::Bypass);
                Ok(false)
            }
            Plan::Fetch {
                lookup: true,
                forward,
            } if self.fleet.is_some() => {
                // A key whose last response nobody may share goes to the origin from here.
                let owner = match self.unshared(ctx)? {
                    Some(_) => None,
                    None => self.owner_of(session.req_header(), ctx.routed()?),
                };
                match owner {
                    Some(owner) => {
                        // The owner's cache answers; this node keeps no copy (docs/fleet.md).
                        let routed = ctx.routed_mut()?;
                        routed.owner = Some(owner);
                        routed.fwd = Some(Fwd::Owner);
                        Ok(false)
                    }
                    None => self.fetch(session, ctx, true, forward).await,
                }
            }
            Plan::Fetch { lookup, forward } => self.fetch(session, ctx, lookup, forward).await,
        }
    }

    /// GET on a caching route uses the shared cache; concurrent misses for one key wait for the
    /// first (up to `cache.lock_timeout`).
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let routed = ctx.routed()?;
        let method = &session.req_header().method;
        if !routed.route.spec.cache.enabled
            || (method != Method::GET && method != Method::HEAD)
            || routed.owner.is_some()
            || routed.fwd == Some(Fwd::Bypass)
        {
            return Ok(());
        }
        let mut overrides = CacheOptionOverrides::default();
        overrides.wait_timeout = Some(routed.config.config.cache.lock_timeout);
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
        let key = &ctx.routed()?.key;
        let variance = self
            .cache
            .store
            .variance_for(&key.hash, &session.req_header().headers);
        Ok(key.to_cache_key(variance))
    }

    /// A stored response was found inside the pipeline: etagate's freshness rules (request
    /// directives included) decide whether it is used or revalidated, not the stored
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
                &ctx.routed()?.directives,
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

    /// The origin's response header arrived on a caching request: RFC 9111 storability and
    /// freshness decide whether it is stored; after a 304, the merged stored response.
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let routed = ctx.routed()?;
        let route = &routed.route;
        let keyed = storing::Keyed {
            key: &routed.key,
            scheme: routed.scheme,
            authority: &routed.authority,
        };
        let sent_at = ctx.origin.sent_at;
        let targets = &routed.config.config.cache.targets;
        // Pingora's phase is `Stale` both when the origin answered a revalidation with 304 and
        // when it sent a whole new response; only the former is a merge.
        let decision = match (
            session.cache.maybe_cache_meta(),
            ctx.origin.not_modified.as_deref(),
        ) {
            (Some(stored), Some(not_modified)) => storing::decide_revalidated(
                session.req_header(),
                stored.response_header(),
                not_modified,
                route,
                &keyed,
                sent_at,
                targets,
            ),
            _ => storing::decide_fresh_response(
                session.req_header(),
                resp,
                route,
                &keyed,
                sent_at,
                targets,
            ),
        };
        if let Some(report) = ctx.inner_report() {
            report
                .storing
                .store(decision.is_cacheable(), Ordering::Release);
        }
        Ok(decision)
    }

    /// The variance of this request under the `Vary` of the response being stored or used.
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

    /// Which server of the route's upstream to connect to (round robin over healthy ones);
    /// first, a place among the upstream's requests in flight (a 503 when there is none).
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if let (Some(owner), Some(fleet)) = (&ctx.routed()?.owner, self.fleet()) {
            let peer = crate::cluster::peer::http_peer(fleet, owner);
            ctx.origin.tries += 1;
            return Ok(Box::new(peer));
        }
        let upstream = ctx.routed()?.route.upstream.clone();
        if ctx.origin.in_flight.is_none() {
            ctx.origin.in_flight = Some(upstream::admit(&upstream)?);
        }
        ctx.origin.tries += 1;
        upstream::peer(&upstream)
    }

    /// A refused or failed connection is retried on another server while servers remain.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if ctx.routed().is_ok_and(|r| r.owner.is_some()) {
            let outcome = match e.etype() {
                ErrorType::ConnectTimedout => "timeout",
                ErrorType::ConnectRefused => "refused",
                _ => "error",
            };
            self.fail_over(ctx, outcome, &format!("cannot connect: {e}"));
            // Every failure takes a member off the ring, so this ends at the origin.
            e.set_retry(true);
            return e;
        }
        let servers = ctx
            .route()
            .map(|r| r.upstream.spec.servers.len())
            .unwrap_or(1);
        if ctx.origin.tries < servers && !matches!(e.etype(), ErrorType::ConnectTimedout) {
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
            ctx.origin.stale_connection_failures += 1;
        }
        if ctx.routed().is_ok_and(|r| r.owner.is_some()) {
            // Only the owner's (or the link's) failure moves the request, and only while
            // nothing has gone to the client: a client that went away, or a response already
            // half relayed, is no reason to ask anyone else.
            let owners_fault =
                *e.esource() == ErrorSource::Upstream && !final_written(session.as_ref());
            if !owners_fault || !replayable {
                e.set_retry(false);
                return e;
            }
            match e.etype() {
                // `upstream_response_filter` refused to relay the owner's own failure.
                ErrorType::HTTPStatus(status) => {
                    let why = format!("answered {status} from its own machinery");
                    self.fail_over(ctx, "owner_error", &why);
                    e.set_retry(true);
                    return e;
                }
                // A slow answer is usually a slow origin behind a healthy owner: this request
                // goes to the origin directly, and the owner stays on the ring (the health
                // probe, which has its own timeout, takes it off if it really hangs).
                ErrorType::ReadTimedout => {
                    self.bypass_owner(ctx);
                    e.set_retry(true);
                    return e;
                }
                ErrorType::WriteTimedout => {
                    self.fail_over(ctx, "timeout", &format!("request failed: {e}"));
                    e.set_retry(true);
                    return e;
                }
                // A pooled connection the owner closed while idle is retried like an origin's.
                _ if !client_reused => {
                    self.fail_over(ctx, "error", &format!("request failed: {e}"));
                    e.set_retry(true);
                    return e;
                }
                _ => {}
            }
        }
        if replayable && ctx.origin.stale_connection_failures <= STALE_CONNECTION_RETRIES {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    /// The request about to be sent to the origin: Host, X-Forwarded-*, unkeyed inputs
    /// dropped, etagate's own ETags never offered as validators, Surrogate-Capability.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let routed = ctx.routed()?;
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let (Some(_), Some(fleet)) = (&routed.owner, self.fleet()) {
            upstream::rewrite_for_peer(
                upstream_request,
                &routed.authority,
                client_ip,
                routed.scheme,
                fleet.credentials(),
            )?;
            ctx.origin.sent = Some(Instant::now());
            ctx.origin.sent_at = Some(SystemTime::now());
            return Ok(());
        }
        upstream::rewrite_request(
            upstream_request,
            &routed.route.upstream,
            &routed.authority,
            client_ip,
            routed.scheme,
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
        if routed.route.spec.cache.enabled {
            upstream_request.insert_header(
                "surrogate-capability",
                format!("{SURROGATE_DEVICE}=\"Surrogate/1.0\""),
            )?;
        }
        ctx.origin.sent = Some(Instant::now());
        ctx.origin.sent_at = Some(SystemTime::now());
        Ok(())
    }

    /// The origin's response header arrived: origin metrics, hop-by-hop fields dropped, a 304
    /// kept for the merge, and a successful unsafe request invalidates what it changed.
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
        let routed = ctx.routed()?;
        if let Some(owner) = routed.owner.clone() {
            ctx.origin.wait = ctx.origin.sent.map(|s| s.elapsed());
            strip_hop_by_hop(upstream_response);
            // etagate's own failures (overload, internal errors) carry no Cache-Status; an
            // origin's 5xx relayed by the owner does, and says nothing about the owner. A 403
            // without one is the owner's peer listener refusing this node (a secret that
            // differs, clocks apart): the owner is unusable from here just the same.
            let machinery = matches!(status, 403 | 500 | 503)
                && !upstream_response.headers.contains_key("cache-status");
            if !machinery {
                crate::metrics::METRICS
                    .cluster
                    .peer_requests
                    .with_label_values(&[&owner.name, "ok"])
                    .inc();
                // Nobody may share it: its next requests skip the owner (`cache::pass_through`).
                let targets = &ctx.routed()?.config.config.cache.targets;
                let unshared = Unshared::of(&upstream_response.headers, targets);
                if let Some(what) = unshared.filter(|_| status < 500) {
                    self.cache.pass_through.learn(ctx.routed()?.key.hash, what);
                }
                return Ok(());
            }
            // Nothing has gone to the client yet: `error_while_proxy` marks the owner down and
            // retries this request at the next member or the origin, rather than relay it.
            return Err(Error::create(
                ErrorType::HTTPStatus(status),
                ErrorSource::Upstream,
                Some(format!("the owner {} answered {status} itself", owner.name).into()),
                None,
            ));
        }
        if let Some(sent) = ctx.origin.sent {
            let waited = sent.elapsed();
            let m = &routed.route.upstream.metrics;
            m.duration.observe(waited.as_secs_f64());
            m.outcome(OriginOutcome::from_status(status));
            if let Some(report) = routed.inner_report() {
                report
                    .origin_wait_us
                    .store(waited.as_micros() as u64, Ordering::Release);
                report.origin_status.store(status, Ordering::Release);
            }
            ctx.origin.wait = Some(waited);
        }
        if status != 101 {
            strip_hop_by_hop(upstream_response);
        }
        if status == 304 {
            ctx.origin.not_modified = Some(Box::new(upstream_response.clone()));
        }
        // A key predicted to say no-store, or to be too large, that no longer does: its next
        // request is tagged and stored again.
        let routed = ctx.routed()?;
        let changed = match routed.unshared {
            Some(Some(Unshared::NoStore)) => {
                Unshared::of(
                    &upstream_response.headers,
                    &routed.config.config.cache.targets,
                ) != Some(Unshared::NoStore)
            }
            // Believed only while whole responses keep stating a length beyond keeping (a 304
            // says the large representation is unchanged).
            Some(Some(Unshared::TooLarge)) if matches!(status, 200 | 206) => {
                !representation_len(status, &upstream_response.headers)
                    .is_some_and(|n| storing::beyond_keeping(&routed.route, &routed.config, n))
            }
            _ => false,
        };
        if changed && status < 500 {
            self.cache.pass_through.forget(&routed.key.hash);
        }
        let req = session.req_header();
        if !is_safe(&req.method) && (200..400).contains(&status) {
            let routed = ctx.routed()?;
            let targets = storing::invalidation_targets(
                req,
                upstream_response,
                routed.scheme,
                &routed.authority,
            );
            for key in &targets {
                self.cache.store.purge_primary(&key.hash);
            }
            if let Some((_, control)) = &self.fleet {
                if routed.config.config.cluster.is_some() && !routed.via_peer {
                    let urls: Vec<String> = targets
                        .iter()
                        .filter_map(|k| k.text().map(str::to_string))
                        .collect();
                    control.invalidate_fleet(urls);
                }
            }
        }
        Ok(())
    }

    /// The response header about to go downstream (not called for responses etagate writes
    /// itself): an inner reports how it was answered to its outer; a plain request gets its
    /// `Cache-Status`.
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
        // An interim response goes on as the origin sent it: it is not the answer that is
        // labelled, counted and logged.
        if upstream_response.status.is_informational() && upstream_response.status != 101 {
            return Ok(());
        }
        ctx.sent.status = upstream_response.status.as_u16();
        if upstream_response.headers.contains_key(ETAG) {
            ctx.sent.etag_source = EtagSource::Origin;
        }
        if ctx.routed().is_err() {
            return Ok(());
        }
        Gateway::label_pipeline_response(session, ctx, upstream_response)?;
        ctx.encoder = encoding::for_pipeline(
            session.req_header(),
            ctx.routed()?.route.spec.compression.as_ref(),
            upstream_response,
        )?
        .map(Box::new);
        Ok(())
    }

    /// Each body chunk going downstream: compressed when `response_filter` chose a coding,
    /// counted for the log.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(encoder) = ctx.encoder.as_mut() {
            encoder.filter(body, end_of_stream)?;
        }
        if let Some(b) = body {
            ctx.sent.body_bytes += b.len() as u64;
        }
        Ok(None)
    }

    /// Proxying failed: 502 when the origin is unreachable or broke the response, 504 when it
    /// was too slow; each with a short body, logged with route and upstream.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, outcome, text) = upstream::failure_response(e);
        let relayed = matches!(e.etype(), ErrorType::HTTPStatus(_)) || final_written(session);
        if matches!(e.esource(), ErrorSource::Upstream) && !relayed {
            if let Some(route) = ctx.route() {
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
        if code > 0 && !final_written(session) {
            session.set_keepalive(None);
            // A member asking this node as the owner tells the owner's own failures from the
            // origin's by this field: an origin that failed (or is at its limit) is no reason
            // to take this node off the ring.
            let origin_failed = ctx
                .routed()
                .ok()
                .filter(|r| r.via_peer && code != 500)
                .map(|r| {
                    let status = crate::http::cache_status::CacheStatus {
                        fwd: Some("miss"),
                        detail: Some("origin"),
                        ..Default::default()
                    };
                    status.render_as(r.config.cache_name())
                });
            let mut extra: Vec<(&str, &str)> = Vec::new();
            let reason = match code {
                502 => format!("Bad Gateway: {text}"),
                503 => {
                    extra.push((names::RETRY_AFTER, "1"));
                    format!("Service Unavailable: {text}")
                }
                504 => format!("Gateway Timeout: {text}"),
                _ => text.to_string(),
            };
            if let Some(v) = &origin_failed {
                extra.push(("cache-status", v));
            }
            ctx.sent.status = code;
            if let Ok(d) = respond::respond_text(session, code, &reason, &extra).await {
                ctx.sent.body_bytes += d.body_bytes;
            }
            if session.subrequest_ctx.is_some() {
                // Pingora does not finish the downstream of a failed request, and an inner
                // subrequest's response only ends when finished: unfinished, the outer would
                // take this complete 502/504 for a cut-off one and drop the client's connection
                // after relaying it.
                let _ = session.finish_body().await;
            }
        } else {
            ctx.sent.status = code;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Upstream failures are logged once, with route and upstream, by `fail_to_proxy`.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        matches!(error.esource(), ErrorSource::Upstream) || ctx.inner_report().is_some()
    }

    /// The request is over: its metrics and access log line (client requests only; an inner
    /// request is accounted for by its outer).
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if session.subrequest_ctx.is_some() {
            return;
        }
        let total = ctx.started.elapsed();
        if ctx.sent.status == 0 && final_written(session) {
            ctx.sent.status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
        }
        let m = match ctx.route() {
            Some(route) => &route.metrics,
            None => &*crate::metrics::UNROUTED,
        };
        m.duration.observe(total.as_secs_f64());
        m.body_bytes.inc_by(ctx.sent.body_bytes);
        if let Some(o) = ctx.sent.cache_outcome {
            m.cache(o);
        }
        // Last, so a scrape that sees the request counted sees all of its other counts too.
        m.request(ctx.sent.status);
        if !self.access_log.enabled() {
            return;
        }
        let req = session.req_header();
        let route = ctx.route();
        let asked_origin = ctx.origin.tries > 0 || ctx.origin.wait.is_some();
        self.access_log.log(AccessRecord {
            time: SystemTime::now(),
            client: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            method: req.method.clone(),
            uri: req.uri.clone(),
            host: ctx.host().unwrap_or_default().to_string(),
            status: ctx.sent.status,
            route: route.map(|r| r.name.clone()),
            upstream: match ctx.routed().ok().and_then(|r| r.owner.as_ref()) {
                Some(owner) => Some(Arc::from(format!("member:{}", owner.name))),
                None => route
                    .filter(|_| asked_origin)
                    .map(|r| r.upstream.name.clone()),
            },
            cache: ctx.sent.cache_outcome.map(|o| o.as_str()).unwrap_or("-"),
            etag: ctx.sent.etag_source.as_str(),
            body_bytes: ctx.sent.body_bytes,
            upstream_seconds: ctx.origin.wait.map(|d| d.as_secs_f64()),
            total_seconds: total.as_secs_f64(),
        });
    }
}
