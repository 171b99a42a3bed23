//! The checked configuration: everything the file says, validated, in the types etagate
//! works with. Building it does no I/O (see [`super::check`]); what needs the outside world
//! (resolving server names, reading token and certificate files, load balancers, metric
//! handles) is done when the runtime instantiates it.

use super::locate::SpanIndex;
use crate::http::coding::Coding;
use crate::http::compressible::Rules;
use crate::http::encode::Levels;
use crate::http::tags::TagHeader;
pub use crate::http::targeted::Targets;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where a configuration came from; a reload re-reads the same source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// Built from `--listen`/`--upstream` flags; there is nothing to reload.
    QuickMode,
}

/// A valid configuration.
#[derive(Debug)]
pub struct Config {
    pub source: ConfigSource,
    /// The file's name and node positions, so later steps can locate their errors too.
    pub origin: Located,
    pub listeners: Vec<Listener>,
    pub admin: AdminSpec,
    pub server: ServerSettings,
    pub cache: CacheSettings,
    pub etag_buffer_budget: usize,
    pub access_log: AccessLogSpec,
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// In file order; [`Router`] answers with indexes into it.
    pub routes: Vec<RouteSpec>,
    pub router: Router,
    /// Fleet membership; `None`: a single node.
    pub cluster: Option<ClusterSpec>,
}

impl Config {
    /// The files a reload reads: the config file and the secrets and CAs it names (TLS
    /// certificates are loaded by the listeners at start, and a reload does not change them).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let ConfigSource::File(path) = &self.source else {
            return Vec::new();
        };
        let mut files = vec![path.clone()];
        files.extend(self.admin.token_file.iter().map(PathBuf::from));
        files.extend(self.cluster.iter().map(|c| PathBuf::from(&c.secret_file)));
        files.extend(self.server.ca_file.iter().map(PathBuf::from));
        for t in self.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            files.extend([PathBuf::from(&t.cert), PathBuf::from(&t.key)]);
        }
        files
    }
}

/// Fleet membership and peer settings, as configured. Members found by DNS join at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub node: String,
    pub listen: SocketAddr,
    /// This node's identity on the ring: where the others reach its peer listener.
    pub advertise: SocketAddr,
    pub secret_file: String,
    pub weight: u32,
    pub peers: Vec<PeerSpec>,
    pub dns: Option<ClusterDns>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub probe_interval: Duration,
    pub purge_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerSpec {
    pub name: String,
    pub address: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub name: String,
    pub port: u16,
    pub interval: Duration,
}

/// A file's name and the positions of its nodes.
#[derive(Debug, Default)]
pub struct Located {
    pub name: String,
    pub index: SpanIndex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<ListenerTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSpec {
    pub address: SocketAddr,
    /// File holding the bearer token for the mutating endpoints; `None` disables them.
    pub token_file: Option<String>,
}

/// Process settings (handed to Pingora's server at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub threads: Option<usize>,
    pub pid_file: String,
    pub upgrade_socket: String,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub ca_file: Option<String>,
    /// Client connections open at most (read per new connection: reloadable).
    pub max_connections: usize,
    /// Time a new connection has for its first request header (reloadable).
    pub header_timeout: Duration,
    /// Reload when the config file or a file it names changes (read at start).
    pub watch_config: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub budget: usize,
    pub max_object_size: usize,
    pub lock_timeout: Duration,
    /// The targeted cache-control fields (RFC 9213) this cache obeys, in order.
    pub targets: Targets,
    pub disk: Option<DiskSettings>,
}

/// The disk tier (`cache.disk`); the path's existence and room are checked on instantiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSettings {
    pub path: PathBuf,
    pub budget: u64,
    pub max_object_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSpec {
    pub enabled: bool,
    /// `None` is standard output.
    pub path: Option<PathBuf>,
    pub format: LogFormat,
    pub buffer: usize,
}

/// One named group of origin servers, as configured. A reload keeps the running upstream (its
/// health state included) when this is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// `host:port` each, syntax checked; names are resolved when instantiated.
    pub servers: Vec<String>,
    pub host: Option<String>,
    /// The name the origin goes by: `tls.sni`, else `host`, else the host part of the first
    /// server. SNI and the certificate name with TLS, and the `Host` of HTTP health checks.
    pub server_name: String,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check: Option<HealthCheckSpec>,
    /// Requests in flight at most.
    pub max_requests: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Verify the certificate chain and that it names `server_name`.
    pub verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub interval: Duration,
    /// HTTP `GET` of this path (any 2xx is healthy); `None`: a TCP connect.
    pub path: Option<String>,
}

/// One route's match and policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub path: String,
    pub upstream: String,
    pub etag: EtagPolicy,
    pub cache: CachePolicy,
    pub debug_headers: bool,
    pub tags: TagPolicy,
    /// `None`: the route compresses nothing.
    pub compression: Option<CompressionPolicy>,
}

/// Per-route compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionPolicy {
    /// The codings produced, in the server's order of preference.
    pub codings: Vec<Coding>,
    pub rules: Rules,
    pub stored_levels: Levels,
    pub per_request_levels: Levels,
}

/// Per-route cache tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPolicy {
    /// The response headers tags are read from (each at most once); empty: no tags.
    pub headers: Vec<TagHeader>,
    /// Remove those headers from what clients receive.
    pub strip: bool,
}

impl TagPolicy {
    /// The headers to remove from a response going to a client.
    pub fn stripped(&self) -> &[TagHeader] {
        if self.strip {
            &self.headers
        } else {
            &[]
        }
    }
}

/// Per-route content-ETag policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtagPolicy {
    pub enabled: bool,
    pub max_buffer: usize,
    skip: Vec<MediaRange>,
}

impl EtagPolicy {
    pub fn new(enabled: bool, max_buffer: usize, skip: &[String]) -> EtagPolicy {
        EtagPolicy {
            enabled,
            max_buffer,
            skip: skip.iter().map(|s| MediaRange::parse(s)).collect(),
        }
    }

    /// Whether a response of this `Content-Type` may get a content ETag.
    pub fn applies_to(&self, content_type: Option<&[u8]>) -> bool {
        if !self.enabled {
            return false;
        }
        let Some(ct) = content_type else {
            return true;
        };
        let essence = std::str::from_utf8(ct)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        !self.skip.iter().any(|m| m.matches(essence))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    kind: String,
    /// `None` for `type/*`.
    subtype: Option<String>,
}

impl MediaRange {
    fn parse(s: &str) -> MediaRange {
        let s = s.trim().to_ascii_lowercase();
        match s.split_once('/') {
            Some((t, "*")) => MediaRange {
                kind: t.to_string(),
                subtype: None,
            },
            Some((t, st)) => MediaRange {
                kind: t.to_string(),
                subtype: Some(st.to_string()),
            },
            None => MediaRange {
                kind: s,
                subtype: None,
            },
        }
    }

    fn matches(&self, essence: &str) -> bool {
        let Some((t, st)) = essence.split_once('/') else {
            return false;
        };
        (self.kind == "*" || t.eq_ignore_ascii_case(&self.kind))
            && self
                .subtype
                .as_deref()
                .is_none_or(|s| st.eq_ignore_ascii_case(s))
    }
}

/// Per-route cache policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub enabled: bool,
    pub store_set_cookie: bool,
    pub stale_if_error: Duration,
}

/// A host pattern: exact, `*.suffix`, or any host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// Stored with its leading dot: `*.example.com` is `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> HostPattern {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() || s == "*" {
            HostPattern::Any
        } else if let Some(rest) = s.strip_prefix('*') {
            HostPattern::Subdomains(rest.to_string())
        } else {
            HostPattern::Exact(s)
        }
    }

    /// `host` is canonical (see `http::authority`): lowercase, no port, no trailing dot.
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }

    /// Exact beats any wildcard; a longer wildcard suffix beats a shorter one; any host is last.
    fn specificity(&self) -> usize {
        match self {
            HostPattern::Any => 0,
            HostPattern::Subdomains(s) => 1 + s.len(),
            HostPattern::Exact(_) => usize::MAX,
        }
    }
}

/// Which route a request takes: the most specific host pattern, then the longest path prefix.
#[derive(Debug, Default)]
pub struct Router {
    /// (pattern, route index, path prefix), most specific first.
    entries: Vec<(HostPattern, usize, String)>,
}

impl Router {
    pub fn new(routes: &[RouteSpec]) -> Router {
        let mut entries = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            if r.hosts.is_empty() {
                entries.push((HostPattern::Any, i, r.path.clone()));
            }
            for h in &r.hosts {
                entries.push((h.clone(), i, r.path.clone()));
            }
        }
        entries.sort_by(|(ha, _, pa), (hb, _, pb)| {
            hb.specificity()
                .cmp(&ha.specificity())
                .then(pb.len().cmp(&pa.len()))
        });
        Router { entries }
    }

    /// The index of the most specific route for a canonical host and a request path.
    pub fn route(&self, host: &str, path: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|(h, _, prefix)| h.matches(host) && path_matches(prefix, path))
            .map(|(_, i, _)| *i)
    }
}

/// Prefix match on segment boundaries: `/api` matches `/api`, `/api/` and `/api/x`, not
/// `/apix`. A prefix ending in `/` matches plainly.
fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefixes_match_on_segment_boundaries() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/v1"));
        assert!(!path_matches("/api", "/apix"));
        assert!(path_matches("/static/", "/static/a.css"));
        assert!(!path_matches("/static/", "/static"));
    }

    #[test]
    fn wildcard_hosts_match_subdomains_only() {
        let p = HostPattern::parse("*.example.com");
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
    }

    #[test]
    fn media_ranges_skip_by_type_and_wildcard() {
        let p = EtagPolicy::new(true, 10, &["video/*".into(), "text/event-stream".into()]);
        assert!(!p.applies_to(Some(b"video/mp4")));
        assert!(!p.applies_to(Some(b"text/event-stream; charset=utf-8")));
        assert!(p.applies_to(Some(b"text/html")));
        assert!(p.applies_to(None));
        assert!(!EtagPolicy::new(false, 10, &[]).applies_to(None));
        assert!(!EtagPolicy::new(true, 10, &["*/*".into()]).applies_to(Some(b"text/html")));
    }
}
