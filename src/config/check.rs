//! Validation: a parsed [`ConfigFile`] becomes a checked [`Config`] or a list of located
//! errors.
//!
//! Every check that needs only the file runs here, once, at load and at reload, without I/O:
//! the result can be built in a test, a fuzzer or `-t` alike. Checks that need the outside
//! world (names that must resolve, files that must be readable) run when the runtime
//! instantiates the config, and report in the same located form.

use super::error::{ConfigErrors, Reporter};
use super::locate::SpanIndex;
use super::model::*;
use super::schema::{self, ConfigFile, UpstreamConf};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Smallest cache budget accepted: below this the per-shard capacity cannot hold a useful object.
const MIN_CACHE_BUDGET: usize = 1 << 20;
/// The cache keeps an eighth of its budget for fills in flight and splits the rest over eight
/// shards, so one object may take at most a sixteenth.
pub const MAX_OBJECT_FRACTION: usize = 16;

/// Validate `file` (parsed from `text`, read from `name`).
pub fn check(
    name: &str,
    text: &str,
    file: ConfigFile,
    source: ConfigSource,
) -> Result<Config, ConfigErrors> {
    let index = SpanIndex::build(text);
    let mut r = Reporter::new(name, &index);

    let listeners = listeners(&file, &mut r);
    let admin = admin(&file, &listeners, &mut r);
    let upstreams = upstreams(&file, &mut r);
    let routes = routes(&file, &upstreams, &mut r);
    let cache = cache(&file.cache, &mut r);
    let server = server(&file.server, &mut r);
    let access_log = access_log(&file.access_log, &mut r);
    let cluster = file
        .cluster
        .as_ref()
        .and_then(|c| super::cluster::check(c, &listeners, &admin, &mut r));
    let etag_buffer_budget = file.etag.buffer_budget.as_u64() as usize;
    if etag_buffer_budget == 0 {
        r.at_value(
            "etag.buffer_budget",
            "must be larger than 0; use e.g. 64MiB",
        );
    }
    for (i, route) in file.routes.iter().enumerate() {
        let max = route.etag.max_buffer.as_u64() as usize;
        if route.etag.enabled && max > etag_buffer_budget {
            r.at_value(
                &format!("routes[{i}].etag.max_buffer"),
                format!(
                    "max_buffer {} is larger than etag.buffer_budget {}; no response could ever be buffered whole; lower it or raise the budget",
                    route.etag.max_buffer, file.etag.buffer_budget
                ),
            );
        }
    }

    r.finish()?;
    let router = Router::new(&routes);
    Ok(Config {
        source,
        origin: Located {
            name: name.to_string(),
            index,
        },
        listeners,
        admin,
        server,
        cache,
        etag_buffer_budget,
        access_log,
        upstreams,
        routes,
        router,
        cluster,
    })
}

fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    s.trim().parse().ok()
}

fn listeners(file: &ConfigFile, r: &mut Reporter) -> Vec<Listener> {
    if file.listeners.is_empty() {
        r.at_value(
            "listeners",
            "no listeners; add at least one, e.g. `- address: 0.0.0.0:8080`",
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in file.listeners.iter().enumerate() {
        let path = format!("listeners[{i}].address");
        let Some(address) = parse_socket_addr(&l.address) else {
            r.at_value(
                &path,
                format!(
                    "'{}' is not an IP:port address; write it like 0.0.0.0:8080 or [::]:8080",
                    l.address
                ),
            );
            continue;
        };
        if !seen.insert(address) {
            r.at_value(&path, format!("{address} is listed twice; remove one"));
        }
        let tls = l.tls.as_ref().map(|t| ListenerTls {
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
        out.push(Listener { address, tls });
    }
    out
}

fn admin(file: &ConfigFile, listeners: &[Listener], r: &mut Reporter) -> AdminSpec {
    let address = match parse_socket_addr(&file.admin.address) {
        Some(a) => a,
        None => {
            r.at_value(
                "admin.address",
                format!(
                    "'{}' is not an IP:port address; write it like 127.0.0.1:9090",
                    file.admin.address
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 9090))
        }
    };
    let overlaps = |l: &Listener| {
        l.address.port() == address.port()
            && (l.address.ip() == address.ip()
                || l.address.ip().is_unspecified()
                || address.ip().is_unspecified())
    };
    if listeners.iter().any(overlaps) {
        r.at_value(
            "admin.address",
            format!(
                "{address} is also a public listener; the admin endpoints need their own address"
            ),
        );
    }
    AdminSpec {
        address,
        token_file: file.admin.token_file.clone(),
    }
}

fn upstreams(file: &ConfigFile, r: &mut Reporter) -> BTreeMap<String, UpstreamSpec> {
    if file.upstreams.is_empty() {
        r.at_value(
            "upstreams",
            "no upstreams; add one, e.g. `app: { servers: [127.0.0.1:8000] }`",
        );
    }
    file.upstreams
        .iter()
        .filter_map(|(name, def)| Some((name.clone(), upstream(name, def, r)?)))
        .collect()
}

/// `host:port` with a host (a name, an IPv4 address or a bracketed IPv6 address) and a
/// numeric port. Whether the name resolves is checked when the config is instantiated.
fn valid_server(s: &str) -> bool {
    let Some((host, port)) = s.trim().rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    host_ok && port.parse::<u16>().is_ok()
}

fn upstream(name: &str, def: &UpstreamConf, r: &mut Reporter) -> Option<UpstreamSpec> {
    let base = format!("upstreams.{name}");
    if def.servers.is_empty() {
        r.at_value(
            &format!("{base}.servers"),
            format!("upstream '{name}' has no servers; list at least one host:port"),
        );
        return None;
    }
    let mut valid = true;
    for (j, s) in def.servers.iter().enumerate() {
        if !valid_server(s) {
            valid = false;
            r.at_value(
                &format!("{base}.servers[{j}]"),
                format!("'{s}' is not a host:port; write it like 127.0.0.1:8000, [::1]:8000 or app.internal:80"),
            );
        }
    }
    for (what, d) in [("connect", def.timeout.connect), ("read", def.timeout.read)] {
        if d.is_zero() {
            r.at_value(
                &format!("{base}.timeout.{what}"),
                "must be longer than 0s; use e.g. 2s",
            );
        }
    }
    if let Some(hc) = &def.health_check {
        if hc.interval < Duration::from_millis(100) {
            r.at_value(
                &format!("{base}.health_check.interval"),
                "must be at least 100ms",
            );
        }
        if let Some(p) = &hc.path {
            if !p.starts_with('/') || p.parse::<http::Uri>().is_err() {
                r.at_value(
                    &format!("{base}.health_check.path"),
                    format!("'{p}' must be a path starting with '/'"),
                );
            }
        }
    }
    if def.max_requests == 0 {
        r.at_value(
            &format!("{base}.max_requests"),
            "must be at least 1; use e.g. 1024",
        );
    }
    if let Some(h) = &def.host {
        if http::HeaderValue::from_str(h).is_err() || h.is_empty() {
            r.at_value(
                &format!("{base}.host"),
                format!("'{h}' is not a valid Host value"),
            );
        }
    }
    if !valid {
        return None;
    }
    let server_name = def
        .tls
        .as_ref()
        .and_then(|t| t.sni.clone())
        .or_else(|| def.host.clone())
        .unwrap_or_else(|| default_sni(&def.servers));
    Some(UpstreamSpec {
        servers: def.servers.iter().map(|s| s.trim().to_string()).collect(),
        host: def.host.clone(),
        server_name,
        tls: def.tls.as_ref().map(|t| UpstreamTls { verify: t.verify }),
        connect_timeout: def.timeout.connect,
        read_timeout: def.timeout.read,
        health_check: def.health_check.as_ref().map(|h| HealthCheckSpec {
            interval: h.interval,
            path: h.path.clone(),
        }),
        max_requests: def.max_requests,
    })
}

/// The host part of the first server, for SNI when nothing else names the server.
fn default_sni(servers: &[String]) -> String {
    servers
        .first()
        .map(|s| match s.rsplit_once(':') {
            Some((h, _)) => h.trim_matches(['[', ']']).to_string(),
            None => s.clone(),
        })
        .unwrap_or_default()
}

/// A host name (or IP literal) without a port: request hosts are matched with their port
/// removed, so a pattern with a port could never match.
fn valid_host_pattern(p: &str) -> bool {
    let p = p.trim();
    if p == "*" {
        return true;
    }
    if let Some(v6) = p.strip_prefix('[') {
        return v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let body = p.strip_prefix("*.").unwrap_or(p);
    !body.is_empty()
        && !body.contains('*')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn routes(
    file: &ConfigFile,
    upstreams: &BTreeMap<String, UpstreamSpec>,
    r: &mut Reporter,
) -> Vec<RouteSpec> {
    if file.routes.is_empty() {
        r.at_value(
            "routes",
            "no routes; add one, e.g. `- { name: default, upstream: app }`",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut matchers: HashMap<(HostPattern, String), &str> = HashMap::new();
    let mut out = Vec::new();
    for (i, rc) in file.routes.iter().enumerate() {
        let base = format!("routes[{i}]");
        if rc.name.trim().is_empty() {
            r.at_value(
                &format!("{base}.name"),
                "route name is empty; give it a name",
            );
        } else if let Some(first) = names.insert(&rc.name, i) {
            r.at_value(
                &format!("{base}.name"),
                format!(
                    "duplicate route name '{}' (first used by route #{}); route names must be unique",
                    rc.name,
                    first + 1
                ),
            );
        }
        if !rc.path.starts_with('/') {
            r.at_value(
                &format!("{base}.path"),
                format!("path '{}' must start with '/'", rc.path),
            );
        }
        let mut hosts = Vec::new();
        for (j, h) in rc.hosts.iter().enumerate() {
            if !valid_host_pattern(h) {
                r.at_value(
                    &format!("{base}.hosts[{j}]"),
                    format!("'{h}' is not a host pattern; use example.com, *.example.com or * (without a port)"),
                );
                continue;
            }
            hosts.push(HostPattern::parse(h));
        }
        let patterns = if hosts.is_empty() {
            vec![HostPattern::Any]
        } else {
            hosts.clone()
        };
        for (j, p) in patterns.into_iter().enumerate() {
            if let Some(other) = matchers.insert((p, rc.path.clone()), &rc.name) {
                let at = if rc.hosts.is_empty() {
                    format!("{base}.path")
                } else {
                    format!("{base}.hosts[{j}]")
                };
                r.at_value(
                    &at,
                    format!(
                        "route '{}' matches the same host and path '{}' as route '{other}'; one of them can never be chosen",
                        rc.name, rc.path
                    ),
                );
            }
        }
        for (j, ct) in rc.etag.skip_content_types.iter().enumerate() {
            if !ct.contains('/') {
                r.at_value(
                    &format!("{base}.etag.skip_content_types[{j}]"),
                    format!(
                        "'{ct}' is not a media type; write it like text/event-stream or video/*"
                    ),
                );
            }
        }
        if !upstreams.contains_key(&rc.upstream) {
            if file.upstreams.contains_key(&rc.upstream) {
                // The upstream itself is invalid and already reported.
                continue;
            }
            let known: Vec<&str> = file.upstreams.keys().map(String::as_str).collect();
            r.at_value(
                &format!("{base}.upstream"),
                format!(
                    "route '{}' names upstream '{}', which is not defined; defined upstreams: {}",
                    rc.name,
                    rc.upstream,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            continue;
        }
        out.push(RouteSpec {
            name: rc.name.clone(),
            hosts,
            path: rc.path.clone(),
            upstream: rc.upstream.clone(),
            etag: EtagPolicy::new(
                rc.etag.enabled,
                rc.etag.max_buffer.as_u64() as usize,
                &rc.etag.skip_content_types,
            ),
            cache: CachePolicy {
                enabled: rc.cache.enabled,
                store_set_cookie: rc.cache.store_set_cookie,
                stale_if_error: rc.cache.stale_if_error,
            },
            debug_headers: rc.debug_headers,
            tags: tags(&rc.tags, &base, r),
            compression: compression(&rc.compression, &base, r),
        });
    }
    out
}

fn compression(
    c: &schema::RouteCompressionConf,
    base: &str,
    r: &mut Reporter,
) -> Option<CompressionPolicy> {
    use crate::http::coding::Coding;
    use crate::http::compressible::{MediaPattern, Rules};
    use crate::http::encode::{valid_levels, Levels};
    let mut codings = Vec::new();
    for (j, c) in c.codings.iter().enumerate() {
        let coding = match c {
            schema::CodingConf::Br => Coding::Br,
            schema::CodingConf::Zstd => Coding::Zstd,
            schema::CodingConf::Gzip => Coding::Gzip,
        };
        if codings.contains(&coding) {
            r.at_value(
                &format!("{base}.compression.codings[{j}]"),
                format!("{} is listed twice; remove one", coding.token()),
            );
            continue;
        }
        codings.push(coding);
    }
    let mut types = Vec::new();
    for (j, t) in c.types.iter().enumerate() {
        match MediaPattern::parse(t) {
            Some(p) => types.push(p),
            None => r.at_value(
                &format!("{base}.compression.types[{j}]"),
                format!(
                    "'{t}' is not a media range; write it like text/html, text/* or application/*+json"
                ),
            ),
        }
    }
    let mut levels = |given: &schema::LevelsConf, key: &str, default: Levels| {
        let mut one = |v: Option<i64>, coding: Coding, name: &str| -> i32 {
            let Some(v) = v else {
                return default.of(coding);
            };
            let ok = valid_levels(coding);
            if v < i64::from(*ok.start()) || v > i64::from(*ok.end()) {
                r.at_value(
                    &format!("{base}.compression.{key}.{name}"),
                    format!(
                        "{name} level {v} is out of range; use {} to {}",
                        ok.start(),
                        ok.end()
                    ),
                );
                return default.of(coding);
            }
            v as i32
        };
        Levels {
            gzip: one(given.gzip, Coding::Gzip, "gzip") as u32,
            br: one(given.br, Coding::Br, "br") as u32,
            zstd: one(given.zstd, Coding::Zstd, "zstd"),
        }
    };
    let stored_levels = levels(&c.stored_levels, "stored_levels", Levels::STORED);
    let per_request_levels = levels(
        &c.per_request_levels,
        "per_request_levels",
        Levels::PER_REQUEST,
    );
    (c.enabled && !codings.is_empty()).then(|| CompressionPolicy {
        codings,
        rules: Rules {
            types,
            min_size: c.min_size.as_u64(),
        },
        stored_levels,
        per_request_levels,
    })
}

fn tags(t: &schema::RouteTagsConf, base: &str, r: &mut Reporter) -> TagPolicy {
    use crate::http::tags::TagHeader;
    let mut headers = Vec::new();
    for (j, h) in t.headers.iter().enumerate() {
        let h = match h {
            schema::TagHeaderConf::SurrogateKey => TagHeader::SurrogateKey,
            schema::TagHeaderConf::CacheTag => TagHeader::CacheTag,
        };
        if headers.contains(&h) {
            r.at_value(
                &format!("{base}.tags.headers[{j}]"),
                format!("{} is listed twice; remove one", h.name()),
            );
            continue;
        }
        headers.push(h);
    }
    TagPolicy {
        headers,
        strip: t.strip,
    }
}

fn cache(c: &schema::CacheConf, r: &mut Reporter) -> CacheSettings {
    let budget = c.budget.as_u64() as usize;
    let max_object_size = match c.max_object_size {
        Some(m) => m.as_u64() as usize,
        None => (schema::DEFAULT_MAX_OBJECT_SIZE as usize).min(budget / MAX_OBJECT_FRACTION),
    };
    if budget < MIN_CACHE_BUDGET {
        r.at_value(
            "cache.budget",
            format!("{} is too small; use at least 1MiB", c.budget),
        );
    } else if max_object_size == 0 || max_object_size > budget / MAX_OBJECT_FRACTION {
        r.at_value(
            "cache.max_object_size",
            format!(
                "{} must be between 1 byte and a sixteenth of cache.budget ({}); lower it or raise the budget",
                bytesize::ByteSize::b(max_object_size as u64),
                bytesize::ByteSize::b((budget / MAX_OBJECT_FRACTION) as u64)
            ),
        );
    }
    if c.lock_timeout.is_zero() {
        r.at_value("cache.lock_timeout", "must be longer than 0s; use e.g. 5s");
    }
    let disk = c.disk.as_ref().map(|d| {
        if d.path.trim().is_empty() {
            r.at_value("cache.disk.path", "empty; name the directory of the disk tier");
        }
        if (d.budget.as_u64() as usize) < MIN_CACHE_BUDGET {
            r.at_value(
                "cache.disk.budget",
                format!("{} is too small; use at least 1MiB", d.budget),
            );
        }
        let disk_limit = (d.budget.as_u64() / MAX_OBJECT_FRACTION as u64) as usize;
        let max = d
            .max_object_size
            .map(|m| m.as_u64() as usize)
            .unwrap_or(max_object_size.min(disk_limit));
        if max == 0 || max > disk_limit {
            r.at_value(
                "cache.disk.max_object_size",
                format!(
                    "{} must be between 1 byte and a sixteenth of cache.disk.budget ({}); lower it or raise the budget",
                    bytesize::ByteSize::b(max as u64),
                    bytesize::ByteSize::b(disk_limit as u64)
                ),
            );
        }
        DiskSettings {
            path: std::path::PathBuf::from(d.path.trim()),
            budget: d.budget.as_u64(),
            max_object_size: max,
        }
    });
    CacheSettings {
        budget,
        max_object_size,
        lock_timeout: c.lock_timeout,
        targets: targets(&c.targeted_field, r),
        disk,
    }
}

/// The target list with the configured name for etagate's own field: a field name that is
/// none of the fields with a meaning of their own.
fn targets(name: &str, r: &mut Reporter) -> Targets {
    let key = "cache.targeted_field";
    match http::HeaderName::from_bytes(name.trim().as_bytes()) {
        Err(_) => r.at_value(
            key,
            format!("'{name}' is not a header field name; use letters, digits and '-', e.g. Etagate-Cache-Control"),
        ),
        // RFC 9213 targeted fields are named `<target>-Cache-Control`; the suffix also keeps
        // this from naming a field with a meaning of its own (it is removed from responses).
        Ok(n) if !n.as_str().ends_with("-cache-control") || n.as_str() == "cdn-cache-control" => {
            r.at_value(
                key,
                format!("'{name}' is not a targeted field of etagate's own; name one ending in -Cache-Control other than CDN-Cache-Control, e.g. Etagate-Cache-Control"),
            )
        }
        Ok(n) => return Targets::new(n),
    }
    Targets::default()
}

fn server(s: &schema::ServerConf, r: &mut Reporter) -> ServerSettings {
    if let Some(t) = s.threads {
        if t == 0 || t > 1024 {
            r.at_value("server.threads", format!("{t} threads; use 1 to 1024"));
        }
    }
    for (key, v) in [
        ("pid_file", &s.pid_file),
        ("upgrade_socket", &s.upgrade_socket),
    ] {
        if v.trim().is_empty() {
            r.at_value(&format!("server.{key}"), "must not be empty");
        }
    }
    if s.max_connections == 0 {
        r.at_value(
            "server.max_connections",
            "must be at least 1; use e.g. 10000",
        );
    }
    if s.header_timeout.is_zero() {
        r.at_value(
            "server.header_timeout",
            "must be longer than 0s; use e.g. 10s",
        );
    }
    ServerSettings {
        threads: s.threads,
        pid_file: s.pid_file.clone(),
        upgrade_socket: s.upgrade_socket.clone(),
        grace_period: s.grace_period,
        shutdown_timeout: s.shutdown_timeout,
        ca_file: s.ca_file.clone(),
        max_connections: s.max_connections,
        header_timeout: s.header_timeout,
        watch_config: s.watch_config,
    }
}

fn access_log(a: &schema::AccessLogConf, r: &mut Reporter) -> AccessLogSpec {
    if a.buffer == 0 {
        r.at_value(
            "access_log.buffer",
            "must be at least 1 line; use e.g. 8192",
        );
    }
    let path = if a.path == "-" {
        None
    } else {
        if a.path.trim().is_empty() {
            r.at_value(
                "access_log.path",
                "must be '-' (standard output) or a file path",
            );
        }
        Some(std::path::PathBuf::from(&a.path))
    };
    AccessLogSpec {
        enabled: a.enabled,
        path,
        format: match a.format {
            schema::AccessLogFormat::Text => LogFormat::Text,
            schema::AccessLogFormat::Json => LogFormat::Json,
        },
        buffer: a.buffer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_defaults_to_the_first_servers_host() {
        assert_eq!(default_sni(&["app.internal:443".into()]), "app.internal");
        assert_eq!(default_sni(&["[::1]:443".into()]), "::1");
    }

    fn route_tags(yaml_route_extra: &str) -> Result<TagPolicy, String> {
        let text = format!(
            "listeners: [{{ address: 127.0.0.1:8080 }}]\nupstreams: {{ app: {{ servers: [127.0.0.1:8000] }} }}\nroutes:\n  - name: r\n    upstream: app\n{yaml_route_extra}"
        );
        super::super::parse("c.yaml", &text, ConfigSource::QuickMode)
            .map(|c| c.routes[0].tags.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_targeted_field_is_a_field_name_without_a_meaning_of_its_own() {
        let parse = |extra: &str| {
            let text = format!(
                "listeners: [{{ address: 127.0.0.1:8080 }}]\nupstreams: {{ app: {{ servers: [127.0.0.1:8000] }} }}\nroutes: [{{ name: r, upstream: app }}]\n{extra}"
            );
            super::super::parse("c.yaml", &text, ConfigSource::QuickMode)
                .map(|c| c.cache.targets.own().as_str().to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("").as_deref(), Ok("etagate-cache-control"));
        assert_eq!(
            parse("cache: { targeted_field: Acme-Cache-Control }\n").as_deref(),
            Ok("acme-cache-control")
        );
        for bad in ["CDN-Cache-Control", "cache-control", "Vary", "not a name"] {
            let e = parse(&format!("cache: {{ targeted_field: {bad} }}\n")).expect_err(bad);
            assert!(e.starts_with("c.yaml:4:") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn route_tags_default_to_both_headers_stripped_and_are_checked() {
        use crate::http::tags::TagHeader::*;
        let d = route_tags("").expect("default");
        assert_eq!(d.headers, vec![SurrogateKey, CacheTag]);
        assert!(d.strip);
        let t = route_tags("    tags: { headers: [cache-tag], strip: false }\n").expect("valid");
        assert_eq!((t.headers, t.strip), (vec![CacheTag], false));
        let none = route_tags("    tags: { headers: [] }\n").expect("valid");
        assert!(none.stripped().is_empty());
        let twice =
            route_tags("    tags: { headers: [cache-tag, cache-tag] }\n").expect_err("twice");
        assert!(
            twice.contains("c.yaml:6:") && twice.contains("listed twice"),
            "{twice}"
        );
        let unknown = route_tags("    tags: { headers: [x-tags] }\n").expect_err("unknown");
        assert!(unknown.contains("surrogate-key, cache-tag"), "{unknown}");
        let key = route_tags("    tags: { strips: true }\n").expect_err("typo");
        assert!(key.contains("unknown key 'strips'"), "{key}");
    }

    #[test]
    fn host_patterns_have_no_port() {
        assert!(valid_host_pattern("example.com"));
        assert!(valid_host_pattern("*.example.com"));
        assert!(valid_host_pattern("[::1]"));
        assert!(!valid_host_pattern("example.com:8080"));
        assert!(!valid_host_pattern("a.*.com"));
    }
}
