//! The validated, immutable configuration that requests read.
//!
//! A request loads one `Arc<RuntimeConfig>` snapshot when it starts and keeps it to the end, so
//! a reload never changes the rules under a request in flight. Building one is the only place
//! that validates; nothing here can fail.

use super::schema::{self, AccessLogFormat};
use crate::metrics::{RouteMetrics, UpstreamMetrics};
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a configuration came from; a reload re-reads the same source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// Built from `--listen`/`--upstream` flags; there is nothing to reload.
    QuickMode,
}

pub struct RuntimeConfig {
    pub source: ConfigSource,
    /// 1 for the first config of the process, +1 per successful reload (set on install).
    pub generation: u64,
    /// The parsed file, kept to tell a reload what changed.
    pub file: schema::ConfigFile,
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    pub server: schema::ServerConf,
    pub cache: CacheSettings,
    pub etag_buffer_budget: usize,
    pub access_log: AccessLog,
    pub router: Router,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<ListenerTls>,
}

impl Listener {
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: String,
    pub key: String,
}

pub struct Admin {
    pub address: SocketAddr,
    /// Bearer token for the mutating endpoints; `None` disables them.
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub budget: usize,
    pub max_object_size: usize,
    pub lock_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub enabled: bool,
    /// `None` is standard output.
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
    pub buffer: usize,
}

/// One named group of origin servers.
pub struct Upstream {
    pub name: Arc<str>,
    /// The definition this was built from; a reload reuses the whole upstream (its health
    /// state included) when the definition is unchanged.
    pub definition: schema::UpstreamConf,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
    pub host: Option<String>,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check_interval: Option<Duration>,
    pub metrics: UpstreamMetrics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI and the name the certificate must carry: `tls.sni`, else the upstream's `host`,
    /// else the host part of its first server.
    pub sni: String,
    pub verify: bool,
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

pub struct Route {
    pub name: Arc<str>,
    pub hosts: Vec<HostPattern>,
    pub path: String,
    pub upstream: Arc<Upstream>,
    pub etag: EtagPolicy,
    pub cache: CachePolicy,
    pub debug_headers: bool,
    pub metrics: RouteMetrics,
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

/// Routes in match order: the first entry that matches is the most specific.
pub struct Router {
    entries: Vec<(HostPattern, Arc<Route>)>,
}

impl Router {
    pub fn new(routes: Vec<Arc<Route>>) -> Router {
        let mut entries: Vec<(HostPattern, Arc<Route>)> = Vec::new();
        for r in routes {
            if r.hosts.is_empty() {
                entries.push((HostPattern::Any, r.clone()));
            }
            for h in &r.hosts {
                entries.push((h.clone(), r.clone()));
            }
        }
        // Most specific host first, then the longest path prefix.
        entries.sort_by(|(ha, ra), (hb, rb)| {
            hb.specificity()
                .cmp(&ha.specificity())
                .then(rb.path.len().cmp(&ra.path.len()))
        });
        Router { entries }
    }

    /// The most specific route for a normalized host and a request path.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.entries
            .iter()
            .find(|(h, r)| h.matches(host) && path_matches(&r.path, path))
            .map(|(_, r)| r)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.entries.iter().map(|(_, r)| r)
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
