//! Prometheus metrics.
//!
//! One process-wide registry. Label values are low-cardinality only (route and upstream names
//! from the config, fixed outcome sets). Requests never look a label up: each route and upstream
//! of a runtime config holds handles to its own children, resolved once when the config is
//! built, so an update is one atomic add with no lock. Gauges that describe state (cache size,
//! buffer use) are read from their owners when `/metrics` is scraped.
//!
//! `docs/metrics.md` lists every metric; a test compares it with [`Metrics::names`].

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

pub mod cluster;
pub mod compression;
pub mod disk;

/// How a request used the shared cache. Exactly one per request that reached the cache layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A fresh stored response answered (a 200, 206 or 304), no origin contact.
    Hit,
    /// Nothing stored for the key (or its variant); fetched from the origin.
    Miss,
    /// A stale response answered because the origin failed (stale-if-error).
    Stale,
    /// A stale response answered while a background refresh runs (stale-while-revalidate).
    StaleWhileRevalidate,
    /// A stored response was validated by the origin (304, or the same content hash).
    RevalidatedUnchanged,
    /// A stored response needed validation and the origin sent different content.
    RevalidatedChanged,
    /// A stored response was stale and had to be fetched again and the fetch failed.
    Expired,
    /// The request could not use the cache (method, request directives, route policy).
    Bypass,
    /// The response was fetched but may not be stored (private, no-store, Set-Cookie, Vary: *).
    Uncacheable,
    /// Another fleet member owns the key and answered (from its cache or its origin fetch).
    Owner,
}

impl CacheOutcome {
    pub const ALL: [CacheOutcome; 10] = [
        CacheOutcome::Hit,
        CacheOutcome::Miss,
        CacheOutcome::Stale,
        CacheOutcome::StaleWhileRevalidate,
        CacheOutcome::RevalidatedUnchanged,
        CacheOutcome::RevalidatedChanged,
        CacheOutcome::Expired,
        CacheOutcome::Bypass,
        CacheOutcome::Uncacheable,
        CacheOutcome::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
            CacheOutcome::StaleWhileRevalidate => "stale_while_revalidate",
            CacheOutcome::RevalidatedUnchanged => "revalidated_unchanged",
            CacheOutcome::RevalidatedChanged => "revalidated_changed",
            CacheOutcome::Expired => "expired",
            CacheOutcome::Bypass => "bypass",
            CacheOutcome::Uncacheable => "uncacheable",
            CacheOutcome::Owner => "owner",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happened to one request sent to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginOutcome {
    Status2xx,
    Status3xx,
    Status4xx,
    Status5xx,
    /// Could not connect (refused, unreachable, TLS handshake failed).
    ConnectError,
    /// Connect or read timed out.
    Timeout,
    /// The connection broke or the response was malformed.
    Error,
    /// Not sent: the upstream had `max_requests` in flight (the client got a 503).
    Limited,
}

impl OriginOutcome {
    pub const ALL: [OriginOutcome; 8] = [
        OriginOutcome::Status2xx,
        OriginOutcome::Status3xx,
        OriginOutcome::Status4xx,
        OriginOutcome::Status5xx,
        OriginOutcome::ConnectError,
        OriginOutcome::Timeout,
        OriginOutcome::Error,
        OriginOutcome::Limited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OriginOutcome::Status2xx => "2xx",
            OriginOutcome::Status3xx => "3xx",
            OriginOutcome::Status4xx => "4xx",
            OriginOutcome::Status5xx => "5xx",
            OriginOutcome::ConnectError => "connect_error",
            OriginOutcome::Timeout => "timeout",
            OriginOutcome::Error => "error",
            OriginOutcome::Limited => "limited",
        }
    }

    pub fn from_status(status: u16) -> OriginOutcome {
        match status {
            200..=299 => OriginOutcome::Status2xx,
            300..=399 => OriginOutcome::Status3xx,
            400..=499 => OriginOutcome::Status4xx,
            _ => OriginOutcome::Status5xx,
        }
    }
}

/// The `kind` label of the purge metrics.
pub const PURGE_KINDS: [&str; 3] = ["url", "prefix", "tag"];
/// The `mode` label of the purge metrics.
pub const PURGE_MODES: [&str; 2] = ["hard", "soft"];

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// Latency buckets from 100µs (a cache hit) to 30s (a slow origin).
pub(crate) const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The process-wide metric families.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    cache_requests: IntCounterVec,
    not_modified: IntCounterVec,
    precondition_failed: IntCounterVec,
    response_body_bytes: IntCounterVec,
    not_modified_saved_bytes: IntCounterVec,
    content_etags: IntCounterVec,
    pub pass_through: IntCounterVec,
    origin_requests: IntCounterVec,
    origin_duration: HistogramVec,
    pub cache_objects: IntGauge,
    pub cache_bytes: IntGauge,
    pub cache_budget_bytes: IntGauge,
    pub cache_evictions: IntCounter,
    pub cache_fills_abandoned: IntCounter,
    pub cache_tag_index_entries: IntGauge,
    purges: IntCounterVec,
    purged_entries: IntCounterVec,
    pub etag_buffer_bytes: IntGauge,
    pub etag_buffer_budget_bytes: IntGauge,
    config_reloads: IntCounterVec,
    pub config_generation: IntGauge,
    pub config_last_reload_success: Gauge,
    pub access_log_dropped: IntCounter,
    pub client_connections: IntGauge,
    pub client_connections_refused: IntCounter,
    pub client_header_timeouts: IntCounter,
    /// 1 when the process is ready (config loaded, listeners bound, not draining).
    pub ready: IntGauge,
    build_info: IntGaugeVec,
    pub cluster: cluster::ClusterMetrics,
    pub disk: disk::DiskMetrics,
    pub compression: compression::CompressionMetrics,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("static metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("static metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Requests that matched no route (answered 404), counted under `route="-"`.
pub static UNROUTED: LazyLock<RouteMetrics> = LazyLock::new(|| METRICS.route("-"));

impl Metrics {
    // Every definition below is static; a failure is a programming error caught by the first
    // test that touches METRICS, so `expect` is the honest reaction.
    #[allow(clippy::expect_used)]
    fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            requests: counter_vec(
                &r,
                "etagate_requests_total",
                "Requests answered, by route and status class.",
                &["route", "status_class"],
            ),
            request_duration: histogram_vec(
                &r,
                "etagate_request_duration_seconds",
                "Time from request header to the end of the response, by route.",
                &["route"],
            ),
            cache_requests: counter_vec(
                &r,
                "etagate_cache_requests_total",
                "How requests used the shared cache, by route and outcome (hit, miss, stale, ...).",
                &["route", "outcome"],
            ),
            not_modified: counter_vec(
                &r,
                "etagate_not_modified_total",
                "304 Not Modified responses sent to clients, by route and where the validator came from (cache or origin fetch).",
                &["route", "source"],
            ),
            precondition_failed: counter_vec(
                &r,
                "etagate_precondition_failed_total",
                "412 Precondition Failed responses sent to clients, by route.",
                &["route"],
            ),
            response_body_bytes: counter_vec(
                &r,
                "etagate_response_body_bytes_total",
                "Response body bytes sent to clients, by route.",
                &["route"],
            ),
            not_modified_saved_bytes: counter_vec(
                &r,
                "etagate_not_modified_saved_bytes_total",
                "Body bytes not sent to clients because a 304 answered instead, by route.",
                &["route"],
            ),
            content_etags: counter_vec(
                &r,
                "etagate_content_etags_total",
                "Responses that got an ETag computed by etagate from their body, by route.",
                &["route"],
            ),
            pass_through: counter_vec(
                &r,
                "etagate_pass_through_predictions_total",
                "Keys whose responses say no-store or are too large to keep or tag, whose misses therefore skip the inner subrequest: learned, predicted (a request that skipped it), forgotten (the response no longer said so) or expired.",
                &["outcome"],
            ),
            origin_requests: counter_vec(
                &r,
                "etagate_origin_requests_total",
                "Requests sent to origins, by upstream and outcome (status class or error kind).",
                &["upstream", "outcome"],
            ),
            origin_duration: histogram_vec(
                &r,
                "etagate_origin_response_seconds",
                "Time from sending a request to an origin until its response header arrived, by upstream.",
                &["upstream"],
            ),
            cache_objects: gauge(&r, "etagate_cache_objects", "Responses stored in the cache."),
            cache_bytes: gauge(
                &r,
                "etagate_cache_bytes",
                "Memory held by the cache: stored bodies, headers and keys, plus fills in flight.",
            ),
            cache_budget_bytes: gauge(
                &r,
                "etagate_cache_budget_bytes",
                "The cache's memory budget.",
            ),
            cache_evictions: counter(
                &r,
                "etagate_cache_evictions_total",
                "Stored responses evicted to stay within the budget.",
            ),
            cache_fills_abandoned: counter(
                &r,
                "etagate_cache_fills_abandoned_total",
                "Responses not stored because the memory for fills in flight was exhausted or the object was too large.",
            ),
            cache_tag_index_entries: gauge(
                &r,
                "etagate_cache_tag_index_entries",
                "Listings in the cache's tag index: one per cache tag and stored URL carrying it.",
            ),
            purges: counter_vec(
                &r,
                "etagate_purges_total",
                "Purge targets handled (each URL, prefix or tag of a purge request), by kind, mode and result (matched: it removed or marked a stored response; unmatched: it found none).",
                &["kind", "mode", "result"],
            ),
            purged_entries: counter_vec(
                &r,
                "etagate_purged_entries_total",
                "Stored responses removed (hard) or marked stale (soft) by purges, by kind and mode.",
                &["kind", "mode"],
            ),
            etag_buffer_bytes: gauge(
                &r,
                "etagate_etag_buffer_bytes",
                "Response bytes currently held back to compute content ETags.",
            ),
            etag_buffer_budget_bytes: gauge(
                &r,
                "etagate_etag_buffer_budget_bytes",
                "The limit on bytes held back for content ETags across all requests.",
            ),
            config_reloads: counter_vec(
                &r,
                "etagate_config_reloads_total",
                "Configuration reloads, by result (success, failure).",
                &["result"],
            ),
            config_generation: gauge(
                &r,
                "etagate_config_generation",
                "Generation of the configuration in use; 1 at start, +1 per successful reload.",
            ),
            config_last_reload_success: {
                let g = Gauge::new(
                    "etagate_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load or reload.",
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            access_log_dropped: counter(
                &r,
                "etagate_access_log_dropped_total",
                "Access log lines dropped because the writer fell behind.",
            ),
            client_connections: gauge(
                &r,
                "etagate_client_connections",
                "Client connections open on the public listeners.",
            ),
            client_connections_refused: counter(
                &r,
                "etagate_client_connections_refused_total",
                "Client connections refused with 503 because server.max_connections were open.",
            ),
            client_header_timeouts: counter(
                &r,
                "etagate_client_header_timeouts_total",
                "Client connections closed because no complete request header arrived within server.header_timeout.",
            ),
            ready: gauge(
                &r,
                "etagate_ready",
                "1 when the process is ready: config loaded, listeners accepting, not draining.",
            ),
            build_info: {
                let g = IntGaugeVec::new(
                    Opts::new("etagate_build_info", "Build information; the value is always 1."),
                    &["version", "pingora"],
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            cluster: cluster::ClusterMetrics::new(&r),
            disk: disk::DiskMetrics::new(&r),
            compression: compression::CompressionMetrics::new(&r),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), "0.9.1"])
            .set(1);
        // process_* (CPU, memory, file descriptors, start time) from /proc.
        let _ = m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        for kind in PURGE_KINDS {
            for mode in PURGE_MODES {
                m.purged_entries.with_label_values(&[kind, mode]);
                for result in ["matched", "unmatched"] {
                    m.purges.with_label_values(&[kind, mode, result]);
                }
            }
        }
        m
    }

    /// Count one purge target (`kind`: url, prefix or tag; `mode`: hard or soft) and the
    /// stored responses it removed or marked.
    pub fn purge(&self, kind: &str, mode: &str, entries: usize) {
        let result = if entries > 0 { "matched" } else { "unmatched" };
        self.purges.with_label_values(&[kind, mode, result]).inc();
        self.purged_entries
            .with_label_values(&[kind, mode])
            .inc_by(entries as u64);
    }

    /// Handles for one route; created when a config is built.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            requests: STATUS_CLASSES.map(|c| self.requests.with_label_values(&[route, c])),
            duration: self.request_duration.with_label_values(&[route]),
            cache: CacheOutcome::ALL
                .map(|o| self.cache_requests.with_label_values(&[route, o.as_str()])),
            not_modified_cache: self.not_modified.with_label_values(&[route, "cache"]),
            not_modified_origin: self.not_modified.with_label_values(&[route, "origin"]),
            precondition_failed: self.precondition_failed.with_label_values(&[route]),
            body_bytes: self.response_body_bytes.with_label_values(&[route]),
            saved_bytes: self.not_modified_saved_bytes.with_label_values(&[route]),
            content_etags: self.content_etags.with_label_values(&[route]),
        }
    }

    /// Handles for one upstream; created when a config is built.
    pub fn upstream(&self, upstream: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            outcomes: OriginOutcome::ALL.map(|o| {
                self.origin_requests
                    .with_label_values(&[upstream, o.as_str()])
            }),
            duration: self.origin_duration.with_label_values(&[upstream]),
        }
    }

    /// Remove the series of a route a reload took away (requests still running under the old
    /// config keep counting into handles nobody exports any more).
    pub fn forget_route(&self, route: &str) {
        for c in STATUS_CLASSES {
            let _ = self.requests.remove_label_values(&[route, c]);
        }
        let _ = self.request_duration.remove_label_values(&[route]);
        for o in CacheOutcome::ALL {
            let _ = self
                .cache_requests
                .remove_label_values(&[route, o.as_str()]);
        }
        for source in ["cache", "origin"] {
            let _ = self.not_modified.remove_label_values(&[route, source]);
        }
        for v in [
            &self.precondition_failed,
            &self.response_body_bytes,
            &self.not_modified_saved_bytes,
            &self.content_etags,
        ] {
            let _ = v.remove_label_values(&[route]);
        }
    }

    /// Remove the series of an upstream a reload took away.
    pub fn forget_upstream(&self, upstream: &str) {
        for o in OriginOutcome::ALL {
            let _ = self
                .origin_requests
                .remove_label_values(&[upstream, o.as_str()]);
        }
        let _ = self.origin_duration.remove_label_values(&[upstream]);
    }

    pub fn reload(&self, success: bool) {
        self.config_reloads
            .with_label_values(&[if success { "success" } else { "failure" }])
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// Names of all metric families (for the docs consistency test).
    pub fn names(&self) -> Vec<String> {
        self.registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }
}

/// One route's metric children.
#[derive(Clone)]
pub struct RouteMetrics {
    requests: [IntCounter; 6],
    pub duration: Histogram,
    cache: [IntCounter; 10],
    pub not_modified_cache: IntCounter,
    pub not_modified_origin: IntCounter,
    pub precondition_failed: IntCounter,
    pub body_bytes: IntCounter,
    pub saved_bytes: IntCounter,
    pub content_etags: IntCounter,
}

impl RouteMetrics {
    pub fn request(&self, status: u16) {
        self.requests[status_class_index(status)].inc();
    }

    pub fn cache(&self, outcome: CacheOutcome) {
        self.cache[outcome.index()].inc();
    }
}

/// One upstream's metric children.
#[derive(Clone)]
pub struct UpstreamMetrics {
    outcomes: [IntCounter; 8],
    pub duration: Histogram,
}

impl UpstreamMetrics {
    pub fn outcome(&self, outcome: OriginOutcome) {
        self.outcomes[outcome as usize].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_count_into_the_labelled_series() {
        let m = &*METRICS;
        let r = m.route("unit-test-route");
        r.request(204);
        r.request(204);
        r.cache(CacheOutcome::Hit);
        let text = String::from_utf8(m.render()).expect("utf8");
        assert!(text
            .contains("etagate_requests_total{route=\"unit-test-route\",status_class=\"2xx\"} 2"));
        assert!(text
            .contains("etagate_cache_requests_total{outcome=\"hit\",route=\"unit-test-route\"} 1"));
    }
}
