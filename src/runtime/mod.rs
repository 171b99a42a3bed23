//! The configuration as requests use it: a checked [`Config`] instantiated with everything
//! that needs the outside world (resolved servers, load balancers and their health checks,
//! the admin token, metric handles), and the live snapshot that reloads swap.
//!
//! - [`instantiate`]: checked config to runtime config (the only I/O of a config load);
//! - [`live`]: the current snapshot, swapped atomically on reload;
//! - [`tls`]: the TLS listeners' certificates, which reloads replace for new handshakes.

pub mod instantiate;
pub mod live;
pub mod tls;

pub use live::{LiveConfig, ReloadReport};

use crate::access_log;
use crate::config::model::{RouteSpec, UpstreamSpec};
use crate::config::Config;
use crate::metrics::{RouteMetrics, UpstreamMetrics};
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use pingora_rustls::sign::CertifiedKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One immutable configuration, as requests read it. A request loads one snapshot when it
/// starts and keeps it to the end, so a reload never changes the rules under a request.
pub struct RuntimeConfig {
    pub config: Config,
    /// 1 for the first config of the process, +1 per successful reload (set on install).
    pub generation: u64,
    /// Bearer token for the mutating admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    /// The secret fleet members share (`cluster.secret_file`), when clustered.
    pub cluster_secret: Option<String>,
    pub access_log: access_log::Settings,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Index-aligned with `config.routes`.
    pub routes: Vec<Arc<Route>>,
    /// The certificate of each TLS listener, read from its files when this config was loaded.
    pub listener_certs: BTreeMap<SocketAddr, Arc<CertifiedKey>>,
}

impl RuntimeConfig {
    /// The name this node's cache goes by in `Cache-Status`: its fleet node name, else
    /// `etagate`.
    pub fn cache_name(&self) -> &str {
        self.config
            .cluster
            .as_ref()
            .map(|c| c.node.as_str())
            .unwrap_or("etagate")
    }

    /// The most specific route for a canonical host and a request path.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.config
            .router
            .route(host, path)
            .and_then(|i| self.routes.get(i))
    }
}

/// One route, with its upstream and metric handles.
pub struct Route {
    pub name: Arc<str>,
    pub spec: RouteSpec,
    pub upstream: Arc<Upstream>,
    pub metrics: RouteMetrics,
}

/// One named group of origin servers.
pub struct Upstream {
    pub name: Arc<str>,
    pub spec: UpstreamSpec,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
    pub metrics: UpstreamMetrics,
    /// Requests in flight to it (bounded by `spec.max_requests`).
    in_flight: AtomicUsize,
}

impl Upstream {
    pub fn new(
        name: Arc<str>,
        spec: UpstreamSpec,
        lb: Arc<LoadBalancer<RoundRobin>>,
        metrics: UpstreamMetrics,
    ) -> Upstream {
        Upstream {
            name,
            spec,
            lb,
            metrics,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A place among the requests in flight, or `None` when `max_requests` are. A reload that
    /// changes the limit starts a new count: the old upstream's requests finish uncounted.
    pub fn admit(self: &Arc<Self>) -> Option<InFlight> {
        let max = self.spec.max_requests;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(self.clone()))
    }
}

/// One request in flight to an upstream, counted until dropped.
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
