//! What one request carries from phase to phase.
//!
//! A request is [`Stage::Unrouted`] until `request_filter` has checked its authority and found
//! its route; from then on it is [`Stage::Routed`], and everything a routed request must have
//! (config snapshot, route, key, authority) is there without `Option`s. A request refused
//! before routing (400, 404) stays unrouted, and no phase after it can ask for a route.

use super::subrequest::InnerReport;
use crate::cache::entry::Entry;
use crate::cache::key::PrimaryKey;
use crate::http::cache_control::RequestDirectives;
use crate::metrics::CacheOutcome;
use crate::runtime::{InFlight, Route, RuntimeConfig};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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

/// Why a request went to the origin (RFC 9211 `fwd`).
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

/// The part a request plays.
#[derive(Clone, Default)]
pub enum Role {
    /// A client request (the outer request when a subrequest is used).
    #[default]
    Client,
    /// The subrequest an outer request uses to reach the cache and the origin.
    Inner(Arc<InnerReport>),
}

/// Where a request is on its way.
pub enum Stage {
    /// Not routed (yet, or ever: refused with 400 or 404). `host` is the canonical host when
    /// the authority was valid, for the log.
    Unrouted {
        host: Option<String>,
    },
    Routed(Box<Routed>),
}

/// A request with its route: what every phase after routing relies on.
pub struct Routed {
    pub role: Role,
    /// The config this request runs under, from start to end.
    pub config: Arc<RuntimeConfig>,
    pub route: Arc<Route>,
    /// The cache key (scheme, canonical authority, path and query).
    pub key: Arc<PrimaryKey>,
    /// The canonical authority: routed on, keyed on, sent to the origin as `Host`.
    pub authority: Arc<str>,
    /// Length of the host part of `authority`.
    pub host_len: usize,
    pub directives: RequestDirectives,
    /// Why the request went forward (for `Cache-Status`).
    pub fwd: Option<Fwd>,
    /// The stored response that needed validation, kept for stale-if-error.
    pub stale: Option<Arc<Entry>>,
}

impl Routed {
    pub fn host(&self) -> &str {
        &self.authority[..self.host_len]
    }

    pub fn inner_report(&self) -> Option<&Arc<InnerReport>> {
        match &self.role {
            Role::Inner(r) => Some(r),
            Role::Client => None,
        }
    }
}

/// The exchange with the origin, as far as it went.
#[derive(Default)]
pub struct OriginExchange {
    /// When the request to the origin was sent (monotonic, for its duration)...
    pub sent: Option<Instant>,
    /// ...and by the wall clock (for the response's age).
    pub sent_at: Option<SystemTime>,
    /// How long the origin took to send its response header.
    pub wait: Option<Duration>,
    /// Attempts so far (a refused connection retries another server).
    pub tries: usize,
    /// Failures on pooled connections so far (see `Gateway::error_while_proxy`).
    pub stale_connection_failures: usize,
    /// The origin's 304 during a revalidation, merged into the stored header.
    pub not_modified: Option<Box<ResponseHeader>>,
    /// This request's place among the upstream's requests in flight, held to its end.
    pub in_flight: Option<InFlight>,
}

/// What the client was sent, for metrics and the access log.
#[derive(Default)]
pub struct Sent {
    /// Status (also set when etagate wrote the response itself).
    pub status: u16,
    pub body_bytes: u64,
    pub cache_outcome: Option<CacheOutcome>,
    pub etag_source: EtagSource,
}

pub struct RequestCtx {
    pub started: Instant,
    pub stage: Stage,
    pub origin: OriginExchange,
    pub sent: Sent,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            stage: Stage::Unrouted { host: None },
            origin: OriginExchange::default(),
            sent: Sent::default(),
        }
    }

    /// The routed request; an internal error in a phase that only runs after routing.
    pub fn routed(&self) -> Result<&Routed> {
        match &self.stage {
            Stage::Routed(r) => Ok(r),
            Stage::Unrouted { .. } => Err(not_routed()),
        }
    }

    pub fn routed_mut(&mut self) -> Result<&mut Routed> {
        match &mut self.stage {
            Stage::Routed(r) => Ok(r),
            Stage::Unrouted { .. } => Err(not_routed()),
        }
    }

    /// The route, when the request has one.
    pub fn route(&self) -> Option<&Arc<Route>> {
        self.routed().ok().map(|r| &r.route)
    }

    pub fn inner_report(&self) -> Option<&Arc<InnerReport>> {
        self.routed().ok().and_then(Routed::inner_report)
    }

    /// The canonical host, when the authority was valid.
    pub fn host(&self) -> Option<&str> {
        match &self.stage {
            Stage::Routed(r) => Some(r.host()),
            Stage::Unrouted { host } => host.as_deref(),
        }
    }
}

fn not_routed() -> Box<Error> {
    Error::explain(
        ErrorType::InternalError,
        "a phase that needs a routed request ran before routing",
    )
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}
