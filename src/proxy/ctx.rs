//! What one request carries from phase to phase.

use crate::cache::entry::Entry;
use crate::cache::key::PrimaryKey;
use crate::http::cache_control::RequestDirectives;
use crate::metrics::CacheOutcome;
use crate::runtime::{Route, RuntimeConfig};
use pingora_http::ResponseHeader;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the ETag on a response came from (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtagSource {
    #[default]
    None,
    /// The origin sent it.
    Origin,
    /// etagate hashed the body while answering this request.
    Computed,
    /// It came with a stored response (computed when the response was stored).
    Stored,
}

impl EtagSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EtagSource::None => "-",
            EtagSource::Origin => "origin",
            EtagSource::Computed => "computed",
            EtagSource::Stored => "stored",
        }
    }
}

/// Why a cacheable request went to the origin (RFC 9211 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Nothing stored for the URL.
    UriMiss,
    /// Something stored for the URL, not for this request's variant.
    VaryMiss,
    /// A stored response needed validation.
    Stale,
    /// The cache was not used (route policy, method).
    Bypass,
}

impl Fwd {
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Bypass => "bypass",
        }
    }
}

/// What the inner request (the one that runs Pingora's cache and proxy pipeline for an outer
/// request) reports back. Written by the inner before it sends its response header, read by the
/// outer after receiving it.
#[derive(Debug, Default)]
pub struct InnerReport {
    /// Pingora answered from a stored response (another request filled it meanwhile).
    pub served_from_cache: AtomicBool,
    /// The origin answered 304 to a revalidation; the stored body is being served.
    pub revalidated: AtomicBool,
    /// The response is being written into the cache.
    pub storing: AtomicBool,
    /// Status the origin sent (0: the origin was not asked or did not answer).
    pub origin_status: AtomicU16,
    /// Microseconds until the origin's response header arrived.
    pub origin_wait_us: AtomicU64,
}

impl InnerReport {
    pub fn origin_wait(&self) -> Option<Duration> {
        match self.origin_status.load(Ordering::Acquire) {
            0 => None,
            _ => Some(Duration::from_micros(
                self.origin_wait_us.load(Ordering::Acquire),
            )),
        }
    }
}

/// Everything an inner request needs from its outer request; travels in Pingora's subrequest
/// context.
pub struct InnerPlan {
    pub config: Arc<RuntimeConfig>,
    pub route: Arc<Route>,
    pub key: Arc<PrimaryKey>,
    /// The canonical authority: the inner request is parsed again from the client's raw
    /// header bytes, so it must be told the `Host` to forward.
    pub authority: Arc<str>,
    pub report: Arc<InnerReport>,
    /// A stale-while-revalidate refresh: nobody waits for the response.
    pub refresh: bool,
}

/// The part a request plays.
#[derive(Clone, Default)]
pub enum Role {
    /// A client request (the outer request when a subrequest is used).
    #[default]
    Client,
    /// The subrequest an outer request uses to reach the cache and the origin.
    Inner(Arc<InnerReport>),
}

pub struct RequestCtx {
    pub started: Instant,
    pub role: Role,
    /// The config this request runs under, from start to end.
    pub config: Option<Arc<RuntimeConfig>>,
    pub route: Option<Arc<Route>>,
    /// Canonical request host (no port), as routes match it.
    pub host: String,
    /// Canonical authority, as keyed and forwarded.
    pub authority: Option<Arc<str>>,
    /// The cache key, for cacheable methods on routes with the cache on.
    pub key: Option<Arc<PrimaryKey>>,
    pub request_directives: RequestDirectives,
    /// Why the request went forward (for `Cache-Status`).
    pub fwd: Option<Fwd>,
    /// The stored response that needed validation, kept for stale-if-error.
    pub stale: Option<Arc<Entry>>,
    /// The origin's 304 during a revalidation, merged into the stored header.
    pub origin_not_modified: Option<Box<ResponseHeader>>,
    /// When the request to the origin was sent.
    pub origin_sent: Option<Instant>,
    /// Wall-clock time the request to the origin was sent (for the response's age).
    pub origin_sent_at: Option<std::time::SystemTime>,
    /// How long the origin took to send its response header.
    pub origin_wait: Option<Duration>,
    /// Origin attempts so far (a refused connection retries another server).
    pub origin_tries: usize,
    /// Failures on pooled origin connections so far (see `Gateway::error_while_proxy`).
    pub stale_connection_failures: usize,
    pub cache_outcome: Option<CacheOutcome>,
    pub etag_source: EtagSource,
    /// Status sent to the client (also set when etagate wrote the response itself).
    pub status: u16,
    /// Body bytes sent to the client.
    pub body_bytes: u64,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            role: Role::Client,
            config: None,
            route: None,
            host: String::new(),
            authority: None,
            key: None,
            request_directives: RequestDirectives::default(),
            fwd: None,
            stale: None,
            origin_not_modified: None,
            origin_sent: None,
            origin_sent_at: None,
            origin_wait: None,
            origin_tries: 0,
            stale_connection_failures: 0,
            cache_outcome: None,
            etag_source: EtagSource::None,
            status: 0,
            body_bytes: 0,
        }
    }

    pub fn route_name(&self) -> &str {
        self.route.as_ref().map(|r| &*r.name).unwrap_or("")
    }

    pub fn inner_report(&self) -> Option<&Arc<InnerReport>> {
        match &self.role {
            Role::Inner(r) => Some(r),
            Role::Client => None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}
