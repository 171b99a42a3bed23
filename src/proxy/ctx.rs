//! What one request carries from phase to phase.
//!
//! A request is [`Stage::Unrouted`] until `request_filter` has checked its authority and found
//! its route; from then on it is [`Stage::Routed`], and everything a routed request must have
//! (config snapshot, route, key, authority) is there without `Option`s. A request refused
//! before routing (400, 404) stays unrouted, and no phase after it can ask for a route.

use super::subrequest::InnerReport;
use crate::cache::entry::Entry;
use crate::cache::key::PrimaryKey;
use crate::cache::pass_through::Unshared;
use crate::cluster::Member;
use crate::http::cache_control::RequestDirectives;
use crate::metrics::CacheOutcome;
use crate::runtime::{InFlight, Route, RuntimeConfig};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Where the ETag on a response came from (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum EtagSource {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) enum Fwd {
    /// Nothing stored for the URL.
    UriMiss,
    /// Something stored for the URL, not for this request's variant.
    VaryMiss,
    /// A stored response needed validation.
    Stale,
    /// The cache was not used (route policy, method).
    Bypass,
    /// Another fleet member owns the key: it was asked instead of the origin.
    Owner,
}

impl Fwd {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Bypass => "bypass",
            // This node keeps no copy of keys another member owns: for its own cache, the
            // request is a plain miss (RFC 9211 has no code for "asked the fleet").
            Fwd::Owner => "miss",
        }
    }
}

/// The part a request plays.
#[derive(Clone, Default)]
pub(crate) enum Role {
    /// A client request (the outer request when a subrequest is used).
    #[default]
    Client,
    /// The subrequest an outer request uses to reach the cache and the origin.
    Inner(Arc<InnerReport>),
}

/// Where a request is on its way.
pub(crate) enum Stage {
    /// Not routed (yet, or ever: refused with 400 or 404). `host` is the canonical host when
    /// the authority was valid, for the log.
    Unrouted {
        host: Option<String>,
    },
    Routed(Box<Routed>),
}

/// A request with its route: what every phase after routing relies on.
pub(crate) struct Routed {
    pub(crate) role: Role,
    /// The config this request runs under, from start to end.
    pub(crate) config: Arc<RuntimeConfig>,
    pub(crate) route: Arc<Route>,
    /// The cache key (scheme, canonical authority, path and query).
    pub(crate) key: Arc<PrimaryKey>,
    /// The canonical authority: routed on, keyed on, sent to the origin as `Host`.
    pub(crate) authority: Arc<str>,
    /// Length of the host part of `authority`.
    pub(crate) host_len: usize,
    pub(crate) directives: RequestDirectives,
    /// Why the request went forward (for `Cache-Status`).
    pub(crate) fwd: Option<Fwd>,
    /// The stored response that needed validation, kept for stale-if-error.
    pub(crate) stale: Option<Arc<Entry>>,
    /// The fleet member that owns the key and is asked instead of the origin.
    pub(crate) owner: Option<Arc<Member>>,
    /// The request was forwarded by a fleet member: it is answered here, never forwarded to
    /// another member again.
    pub(crate) via_peer: bool,
    /// The scheme the request is keyed with (`http` or `https`): the client's at the edge,
    /// which a member's forwarded request names in its peer headers.
    pub(crate) scheme: &'static str,
    /// What the key's last response said against sharing it (`cache::pass_through`), once
    /// looked up; `None` before.
    pub(crate) unshared: Option<Option<Unshared>>,
}

impl Routed {
    pub(crate) fn host(&self) -> &str {
        &self.authority[..self.host_len]
    }

    pub(crate) fn inner_report(&self) -> Option<&Arc<InnerReport>> {
        match &self.role {
            Role::Inner(r) => Some(r),
            Role::Client => None,
        }
    }
}

/// The exchange with the origin, as far as it went.
#[derive(Default)]
pub(crate) struct OriginExchange {
    /// When the request to the origin was sent (monotonic, for its duration)...
    pub(crate) sent: Option<Instant>,
    /// ...and by the wall clock (for the response's age).
    pub(crate) sent_at: Option<SystemTime>,
    /// How long the origin took to send its response header.
    pub(crate) wait: Option<Duration>,
    /// Attempts so far (a refused connection retries another server).
    pub(crate) tries: usize,
    /// Failures on pooled connections so far (see `Gateway::error_while_proxy`).
    pub(crate) stale_connection_failures: usize,
    /// The origin's 304 during a revalidation, merged into the stored header.
    pub(crate) not_modified: Option<Box<ResponseHeader>>,
    /// This request's place among the upstream's requests in flight, held to its end.
    pub(crate) in_flight: Option<InFlight>,
}

/// What the client was sent, for metrics and the access log.
#[derive(Default)]
pub(crate) struct Sent {
    /// Status (also set when etagate wrote the response itself).
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    pub(crate) cache_outcome: Option<CacheOutcome>,
    pub(crate) etag_source: EtagSource,
}

pub struct RequestCtx {
    pub(crate) started: Instant,
    pub(crate) stage: Stage,
    pub(crate) origin: OriginExchange,
    pub(crate) sent: Sent,
    /// The compressor of a response taking Pingora's pipeline, chosen in `response_filter`
    /// and fed in `response_body_filter` (boxed: most requests have none).
    pub(crate) encoder: Option<Box<super::encoding::Streaming>>,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            stage: Stage::Unrouted { host: None },
            origin: OriginExchange::default(),
            sent: Sent::default(),
            encoder: None,
        }
    }

    /// The routed request; an internal error in a phase that only runs after routing.
    pub(crate) fn routed(&self) -> Result<&Routed> {
        match &self.stage {
            Stage::Routed(r) => Ok(r),
            Stage::Unrouted { .. } => Err(not_routed()),
        }
    }

    pub(crate) fn routed_mut(&mut self) -> Result<&mut Routed> {
        match &mut self.stage {
            Stage::Routed(r) => Ok(r),
            Stage::Unrouted { .. } => Err(not_routed()),
        }
    }

    /// The route, when the request has one.
    pub(crate) fn route(&self) -> Option<&Arc<Route>> {
        self.routed().ok().map(|r| &r.route)
    }

    pub(crate) fn inner_report(&self) -> Option<&Arc<InnerReport>> {
        self.routed().ok().and_then(Routed::inner_report)
    }

    /// The canonical host, when the authority was valid.
    pub(crate) fn host(&self) -> Option<&str> {
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
