//! What one request carries from phase to phase.

use crate::config::runtime::{Route, RuntimeConfig};
use crate::metrics::CacheOutcome;
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

pub struct RequestCtx {
    pub started: Instant,
    /// The config this request runs under, from start to end.
    pub config: Option<Arc<RuntimeConfig>>,
    pub route: Option<Arc<Route>>,
    /// Normalized request host.
    pub host: String,
    /// When the request to the origin was sent.
    pub origin_sent: Option<Instant>,
    /// How long the origin took to send its response header.
    pub origin_wait: Option<Duration>,
    /// Origin attempts so far (a refused connection retries another server).
    pub origin_tries: usize,
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
            config: None,
            route: None,
            host: String::new(),
            origin_sent: None,
            origin_wait: None,
            origin_tries: 0,
            cache_outcome: None,
            etag_source: EtagSource::None,
            status: 0,
            body_bytes: 0,
        }
    }

    pub fn route_name(&self) -> &str {
        self.route.as_ref().map(|r| r.name.as_str()).unwrap_or("")
    }

    pub fn upstream_name(&self) -> &str {
        self.route
            .as_ref()
            .map(|r| r.upstream.name.as_str())
            .unwrap_or("")
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}
