//! The YAML file format, as typed structs.
//!
//! This is the user-facing schema only: every struct denies unknown keys so a typo is an error
//! with a location, and nothing here is read on the request path. [`super::check`] validates a
//! parsed [`ConfigFile`] once and turns it into the checked [`super::Config`].
//!
//! Every key is documented in `docs/configuration.md`; keep the two in step (a test parses the
//! shipped `conf/etagate.yaml` and every example in that page).

use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Public listeners (at least one).
    pub listeners: Vec<ListenerConf>,
    /// The operator listener (metrics, health, reload, purge); never the public one.
    #[serde(default)]
    pub admin: AdminConf,
    /// Named groups of origin servers.
    pub upstreams: BTreeMap<String, UpstreamConf>,
    /// Which upstream serves which host and path, and the policies that apply there.
    pub routes: Vec<RouteConf>,
    /// The shared cache (one per process, shared by all routes).
    #[serde(default)]
    pub cache: CacheConf,
    /// Limits of the content-ETag machinery shared by all routes.
    #[serde(default)]
    pub etag: EtagConf,
    /// The access log.
    #[serde(default)]
    pub access_log: AccessLogConf,
    /// Process settings handed to Pingora's server.
    #[serde(default)]
    pub server: ServerConf,
    /// Fleet membership: shard the cache over several nodes and purge fleet-wide. Absent: a
    /// single node.
    #[serde(default)]
    pub cluster: Option<ClusterConf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConf {
    /// `IP:port` to bind, e.g. `0.0.0.0:8080` or `[::]:8080`.
    pub address: String,
    /// Serve TLS on this listener (HTTP/1.1 and HTTP/2 by ALPN). Without it the listener
    /// speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
    #[serde(default)]
    pub tls: Option<ListenerTlsConf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConf {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConf {
    /// `IP:port` of the admin listener. Default `127.0.0.1:9090`.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// File holding the bearer token that `POST /reload` and `POST /purge` require. Without it
    /// those endpoints answer 403.
    #[serde(default)]
    pub token_file: Option<String>,
}

impl Default for AdminConf {
    fn default() -> Self {
        AdminConf {
            address: default_admin_address(),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConf {
    /// `host:port` of each server; load-balanced round robin, skipping unhealthy ones.
    pub servers: Vec<String>,
    /// Connect and read timeouts.
    #[serde(default)]
    pub timeout: TimeoutConf,
    /// Active health checking; without it every server is assumed healthy.
    #[serde(default)]
    pub health_check: Option<HealthCheckConf>,
    /// Send this `Host` header instead of the client's.
    #[serde(default)]
    pub host: Option<String>,
    /// Speak TLS to the servers.
    #[serde(default)]
    pub tls: Option<UpstreamTlsConf>,
    /// Requests in flight to this upstream at most; more get a 503 with `Retry-After` at once
    /// instead of piling onto an origin that is already behind. Default 1024.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConf {
    /// Time allowed to establish a connection (TCP and TLS). Default 2s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect: Duration,
    /// Longest wait for the next bytes of a response. Default 30s.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read: Duration,
}

impl Default for TimeoutConf {
    fn default() -> Self {
        TimeoutConf {
            connect: default_connect_timeout(),
            read: default_read_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConf {
    /// Time between checks. Default 5s.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// HTTP path to GET; any 2xx answer is healthy. Without it, a TCP connect is the check.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConf {
    /// Server name sent in SNI and verified in the certificate. Default: the server's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the server certificate (against `server.ca_file`, or the system store). Default
    /// true.
    #[serde(default = "default_true")]
    pub verify: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConf {
    /// Unique name; used in logs and as the `route` metric label.
    pub name: String,
    /// Host patterns: `example.com` (exact) or `*.example.com` (any subdomain). Absent or
    /// empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix, matched on segment boundaries. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Name of the upstream serving this route.
    pub upstream: String,
    /// Content-ETag policy.
    #[serde(default)]
    pub etag: RouteEtagConf,
    /// Shared-cache policy.
    #[serde(default)]
    pub cache: RouteCacheConf,
    /// Add `X-Cache-Key` and `X-Cache-Hit` debug headers, and the key in `Cache-Status`.
    #[serde(default)]
    pub debug_headers: bool,
    /// Cache tags: which origin response headers name them, and whether clients see them.
    #[serde(default)]
    pub tags: RouteTagsConf,
    /// Compression of responses for clients that accept it (`docs/compression.md`).
    #[serde(default)]
    pub compression: RouteCompressionConf,
}

/// A content coding etagate produces.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CodingConf {
    Zstd,
    Br,
    Gzip,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteCompressionConf {
    /// Compress responses for clients whose `Accept-Encoding` allows. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The codings produced, in the server's order of preference. Default `[zstd, br, gzip]`.
    #[serde(default = "default_codings")]
    pub codings: Vec<CodingConf>,
    /// Media ranges compressed (`type/subtype`, `type/*`, `type/*+suffix`). Default: text and
    /// structured text formats (`docs/compression.md`).
    #[serde(default = "default_compress_types")]
    pub types: Vec<String>,
    /// Smaller bodies are sent as they are. Default 1KiB.
    #[serde(default = "default_compress_min_size")]
    pub min_size: ByteSize,
    /// Levels for a stored response, compressed once and kept. Default gzip 9, br 6, zstd 9.
    #[serde(default = "default_stored_levels")]
    pub stored_levels: LevelsConf,
    /// Levels for a response compressed for one request (not stored, or streamed). Default
    /// gzip 6, br 4, zstd 3.
    #[serde(default = "default_per_request_levels")]
    pub per_request_levels: LevelsConf,
}

impl Default for RouteCompressionConf {
    fn default() -> Self {
        RouteCompressionConf {
            enabled: true,
            codings: default_codings(),
            types: default_compress_types(),
            min_size: default_compress_min_size(),
            stored_levels: default_stored_levels(),
            per_request_levels: default_per_request_levels(),
        }
    }
}

/// A level per coding; a coding not given keeps its default.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LevelsConf {
    pub gzip: Option<i64>,
    pub br: Option<i64>,
    pub zstd: Option<i64>,
}

fn default_codings() -> Vec<CodingConf> {
    vec![CodingConf::Zstd, CodingConf::Br, CodingConf::Gzip]
}

fn default_compress_types() -> Vec<String> {
    crate::http::compressible::DEFAULT_TYPES
        .iter()
        .map(|t| t.to_string())
        .collect()
}

fn default_compress_min_size() -> ByteSize {
    ByteSize::b(crate::http::compressible::DEFAULT_MIN_SIZE)
}

fn default_stored_levels() -> LevelsConf {
    LevelsConf {
        gzip: None,
        br: None,
        zstd: None,
    }
}

fn default_per_request_levels() -> LevelsConf {
    default_stored_levels()
}

/// A response header that carries cache tags.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TagHeaderConf {
    /// `Surrogate-Key`, space separated.
    SurrogateKey,
    /// `Cache-Tag`, comma separated.
    CacheTag,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteTagsConf {
    /// Origin response headers whose values are the stored response's tags (for purge by
    /// tag). Default both; `[]` ignores tags.
    #[serde(default = "default_tag_headers")]
    pub headers: Vec<TagHeaderConf>,
    /// Remove those headers from responses sent to clients (the stored copy keeps them).
    /// Default true.
    #[serde(default = "default_true")]
    pub strip: bool,
}

impl Default for RouteTagsConf {
    fn default() -> Self {
        RouteTagsConf {
            headers: default_tag_headers(),
            strip: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteEtagConf {
    /// Give 200 responses without an `ETag` a content ETag (not `no-store` ones). Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Largest body held back to hash before the first byte goes out. Default 1MiB.
    #[serde(default = "default_max_buffer")]
    pub max_buffer: ByteSize,
    /// Media types (`type/subtype`, or `type/*`) that never get a content ETag.
    #[serde(default = "default_skip_content_types")]
    pub skip_content_types: Vec<String>,
}

impl Default for RouteEtagConf {
    fn default() -> Self {
        RouteEtagConf {
            enabled: true,
            max_buffer: default_max_buffer(),
            skip_content_types: default_skip_content_types(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConf {
    /// Use the shared cache on this route. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Store responses that carry `Set-Cookie` (the stored copy never keeps the cookie).
    /// Default false.
    #[serde(default)]
    pub store_set_cookie: bool,
    /// Serve a stale response for this long after it expired when the origin fails, unless the
    /// response forbids it. Default 0s (only when the response or request asks).
    #[serde(default, with = "humantime_serde")]
    pub stale_if_error: Duration,
}

impl Default for RouteCacheConf {
    fn default() -> Self {
        RouteCacheConf {
            enabled: true,
            store_set_cookie: false,
            stale_if_error: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConf {
    /// Memory for stored responses: bodies, headers, keys and fills in flight. Default 256MiB.
    #[serde(default = "default_cache_budget")]
    pub budget: ByteSize,
    /// Largest response the cache stores; at most a sixteenth of the budget. Default: 16MiB,
    /// or a sixteenth of a smaller budget.
    #[serde(default)]
    pub max_object_size: Option<ByteSize>,
    /// How long concurrent misses for one key wait for the first to fill it. Default 5s.
    #[serde(default = "default_lock_timeout", with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// A disk tier under the memory tier: stored responses survive restarts and upgrades.
    #[serde(default)]
    pub disk: Option<DiskConf>,
    /// The RFC 9213 targeted field only etagate obeys. Default `Etagate-Cache-Control`.
    #[serde(default = "default_targeted_field")]
    pub targeted_field: String,
}

fn default_targeted_field() -> String {
    crate::http::targeted::DEFAULT_FIELD.to_string()
}

impl Default for CacheConf {
    fn default() -> Self {
        CacheConf {
            budget: default_cache_budget(),
            max_object_size: None,
            lock_timeout: default_lock_timeout(),
            disk: None,
            targeted_field: default_targeted_field(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskConf {
    /// Directory of the store; must exist and be writable.
    pub path: String,
    /// Bytes of entry files at most (metadata included).
    pub budget: ByteSize,
    /// Largest response written to disk (at most a sixteenth of `budget`). Default:
    /// `cache.max_object_size`. Larger than it, a response is kept on disk only.
    #[serde(default)]
    pub max_object_size: Option<ByteSize>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EtagConf {
    /// Memory all requests together may hold back for hashing. Default 64MiB.
    #[serde(default = "default_buffer_budget")]
    pub buffer_budget: ByteSize,
}

impl Default for EtagConf {
    fn default() -> Self {
        EtagConf {
            buffer_budget: default_buffer_budget(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConf {
    /// Write an access log. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `-` for standard output, or a file path (appended to). Default `-`.
    #[serde(default = "default_access_log_path")]
    pub path: String,
    /// `text` or `json`. Default `text`.
    #[serde(default = "default_access_log_format")]
    pub format: AccessLogFormat,
    /// Lines queued for the writer before new lines are dropped (and counted). Default 8192.
    #[serde(default = "default_access_log_buffer")]
    pub buffer: usize,
}

impl Default for AccessLogConf {
    fn default() -> Self {
        AccessLogConf {
            enabled: true,
            path: default_access_log_path(),
            format: default_access_log_format(),
            buffer: default_access_log_buffer(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConf {
    /// Worker threads for the public listeners. Default: the number of CPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Where the process id is written when running as a daemon (`-d`). Default
    /// `/tmp/etagate.pid`.
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    /// Unix socket the old and new process use to hand over listeners on upgrade.
    /// Default `/tmp/etagate_upgrade.sock`.
    #[serde(default = "default_upgrade_socket")]
    pub upgrade_socket: String,
    /// After SIGTERM or an upgrade, keep serving in-flight requests this long. Default 5s.
    #[serde(default = "default_grace_period", with = "humantime_serde")]
    pub grace_period: Duration,
    /// Then give runtimes this long to stop. Default 5s.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// PEM bundle of CAs that upstream TLS certificates are verified against, instead of the
    /// system store.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client connections open at most; a connection past it gets a 503 with `Retry-After` and
    /// is closed. Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A new connection must send its first complete request header within this. Default 10s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Reload when the config file, or a file it names, changes. Default false.
    #[serde(default)]
    pub watch_config: bool,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            threads: None,
            pid_file: default_pid_file(),
            upgrade_socket: default_upgrade_socket(),
            grace_period: default_grace_period(),
            shutdown_timeout: default_shutdown_timeout(),
            ca_file: None,
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            watch_config: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConf {
    /// This node's name: in `Cache-Status`, metrics and purge answers. Letters, digits, `-`,
    /// `_` and `.`; at most 63 characters.
    pub node: String,
    /// `IP:port` of this node's peer listener (owner fetches, purge fan-out, health probes).
    /// Never a public or the admin listener.
    pub listen: String,
    /// `IP:port` the other nodes reach this node's peer listener at: its identity on the ring.
    /// Default: `listen` (required when `listen` is an unspecified address like `0.0.0.0`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// File holding the secret every node shares (at least 16 bytes); peer requests prove they
    /// know it.
    pub secret_file: String,
    /// This node's share of the keys relative to the others'. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The other members, by name and peer-listener address.
    #[serde(default)]
    pub peers: Vec<PeerConf>,
    /// Members found by a DNS name (A/AAAA records, e.g. a Kubernetes headless Service).
    #[serde(default)]
    pub dns: Option<ClusterDnsConf>,
    /// Time allowed to connect to a peer. Default 250ms.
    #[serde(default = "default_peer_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a peer's response. Default 10s.
    #[serde(default = "default_peer_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time between health probes of each peer. Default 1s.
    #[serde(default = "default_probe_interval", with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long a fleet-wide purge waits for each peer's answer. Default 2s.
    #[serde(default = "default_purge_timeout", with = "humantime_serde")]
    pub purge_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConf {
    /// The member's node name (as in its own `cluster.node`).
    pub name: String,
    /// `IP:port` of its peer listener.
    pub address: String,
    /// Its share of the keys. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterDnsConf {
    /// Name whose A/AAAA records are the members' addresses.
    pub name: String,
    /// The members' peer-listener port.
    pub port: u16,
    /// Time between resolutions. Default 10s.
    #[serde(default = "default_dns_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_weight() -> u32 {
    1
}
fn default_peer_connect_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_peer_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_probe_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_purge_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_dns_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_true() -> bool {
    true
}
fn default_admin_address() -> String {
    "127.0.0.1:9090".to_string()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_max_requests() -> usize {
    1024
}
fn default_max_connections() -> usize {
    10_000
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_tag_headers() -> Vec<TagHeaderConf> {
    vec![TagHeaderConf::SurrogateKey, TagHeaderConf::CacheTag]
}
fn default_path() -> String {
    "/".to_string()
}
fn default_max_buffer() -> ByteSize {
    ByteSize::mib(1)
}
/// Streams and media that are either endless or already carry their own identity.
pub fn default_skip_content_types() -> Vec<String> {
    vec![
        "text/event-stream".to_string(),
        "video/*".to_string(),
        "audio/*".to_string(),
    ]
}
fn default_cache_budget() -> ByteSize {
    ByteSize::mib(256)
}
/// The object size limit when none is configured.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 16 << 20;
fn default_lock_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_buffer_budget() -> ByteSize {
    ByteSize::mib(64)
}
fn default_access_log_path() -> String {
    "-".to_string()
}
fn default_access_log_format() -> AccessLogFormat {
    AccessLogFormat::Text
}
fn default_access_log_buffer() -> usize {
    8192
}
fn default_pid_file() -> String {
    "/tmp/etagate.pid".to_string()
}
fn default_upgrade_socket() -> String {
    "/tmp/etagate_upgrade.sock".to_string()
}
fn default_grace_period() -> Duration {
    Duration::from_secs(5)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}
