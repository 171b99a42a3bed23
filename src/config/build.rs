//! Validation: a parsed [`ConfigFile`] becomes a [`RuntimeConfig`] or a list of located errors.
//!
//! All checks run here, once, at load and at reload; the runtime form cannot be invalid.

use super::error::{ConfigErrors, Reporter};
use super::locate::SpanIndex;
use super::runtime::*;
use super::schema::{self, ConfigFile, UpstreamConf};
use crate::metrics::METRICS;
use pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Smallest cache budget accepted: below this the per-shard capacity cannot hold a useful object.
const MIN_CACHE_BUDGET: usize = 1 << 20;
/// The cache keeps an eighth of its budget for fills in flight and splits the rest over eight
/// shards, so one object may take at most a sixteenth.
pub const MAX_OBJECT_FRACTION: usize = 16;
/// Admin tokens shorter than this are too easy to guess.
const MIN_TOKEN_LEN: usize = 16;

/// Validate `file` (parsed from `text`, read from `name`) into a runtime config.
///
/// `previous` is the config in use, if any: upstreams whose definition did not change are
/// carried over with their health state.
pub fn build(
    name: &str,
    text: &str,
    file: ConfigFile,
    source: ConfigSource,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let index = SpanIndex::build(text);
    let mut r = Reporter::new(name, &index);

    let listeners = listeners(&file, &mut r);
    let admin = admin(&file, &listeners, &mut r);
    let upstreams = upstreams(&file, previous, &mut r);
    let routes = routes(&file, &upstreams, &mut r);
    let cache = cache(&file.cache, &mut r);
    server(&file.server, &mut r);
    let access_log = access_log(&file.access_log, &mut r);
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
    Ok(RuntimeConfig {
        source,
        generation: 0,
        listeners,
        admin,
        server: file.server.clone(),
        cache,
        etag_buffer_budget,
        access_log,
        router: Router::new(routes),
        upstreams,
        file,
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
        let tls = l.tls.as_ref().map(|t| {
            for (what, file_path) in [("cert", &t.cert), ("key", &t.key)] {
                if let Err(e) = std::fs::metadata(file_path) {
                    r.at_value(
                        &format!("listeners[{i}].tls.{what}"),
                        format!("cannot read TLS {what} file '{file_path}': {e}"),
                    );
                }
            }
            ListenerTls {
                cert: t.cert.clone(),
                key: t.key.clone(),
            }
        });
        out.push(Listener { address, tls });
    }
    out
}

fn admin(file: &ConfigFile, listeners: &[Listener], r: &mut Reporter) -> Admin {
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
    let token = file.admin.token_file.as_ref().and_then(|path| {
        match std::fs::read_to_string(path) {
            Ok(t) => {
                let t = t.trim().to_string();
                if t.len() < MIN_TOKEN_LEN {
                    r.at_value(
                        "admin.token_file",
                        format!("the token in '{path}' has {} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)", t.len()),
                    );
                    None
                } else {
                    Some(t)
                }
            }
            Err(e) => {
                r.at_value(
                    "admin.token_file",
                    format!("cannot read admin token file '{path}': {e}"),
                );
                None
            }
        }
    });
    Admin { address, token }
}

fn upstreams(
    file: &ConfigFile,
    previous: Option<&RuntimeConfig>,
    r: &mut Reporter,
) -> BTreeMap<String, Arc<Upstream>> {
    if file.upstreams.is_empty() {
        r.at_value(
            "upstreams",
            "no upstreams; add one, e.g. `app: { servers: [127.0.0.1:8000] }`",
        );
    }
    let mut out = BTreeMap::new();
    for (name, def) in &file.upstreams {
        if let Some(prev) = previous.and_then(|p| p.upstreams.get(name)) {
            if prev.definition == *def {
                out.insert(name.clone(), prev.clone());
                continue;
            }
        }
        if let Some(u) = upstream(name, def, r) {
            out.insert(name.clone(), Arc::new(u));
        }
    }
    out
}

fn upstream(name: &str, def: &UpstreamConf, r: &mut Reporter) -> Option<Upstream> {
    let base = format!("upstreams.{name}");
    if def.servers.is_empty() {
        r.at_value(
            &format!("{base}.servers"),
            format!("upstream '{name}' has no servers; list at least one host:port"),
        );
        return None;
    }
    let mut addrs = Vec::new();
    for (j, s) in def.servers.iter().enumerate() {
        let path = format!("{base}.servers[{j}]");
        match s.to_socket_addrs() {
            Ok(mut it) => match it.next() {
                Some(a) => addrs.push(a),
                None => r.at_value(&path, format!("'{s}' resolves to no address")),
            },
            Err(e) => r.at_value(
                &path,
                format!("'{s}' is not a usable host:port ({e}); write it like 127.0.0.1:8000 or app.internal:80"),
            ),
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
            if !p.starts_with('/') {
                r.at_value(
                    &format!("{base}.health_check.path"),
                    format!("'{p}' must start with '/'"),
                );
            }
        }
    }
    if let Some(h) = &def.host {
        if http::HeaderValue::from_str(h).is_err() || h.is_empty() {
            r.at_value(
                &format!("{base}.host"),
                format!("'{h}' is not a valid Host value"),
            );
        }
    }
    if addrs.len() != def.servers.len() {
        return None;
    }
    let mut lb = match LoadBalancer::<RoundRobin>::try_from_iter(addrs.iter().copied()) {
        Ok(lb) => lb,
        Err(e) => {
            r.at_value(
                &format!("{base}.servers"),
                format!("cannot use these servers: {e}"),
            );
            return None;
        }
    };
    let sni = def
        .tls
        .as_ref()
        .and_then(|t| t.sni.clone())
        .or_else(|| def.host.clone())
        .unwrap_or_else(|| default_sni(&def.servers));
    let tls = def.tls.as_ref().map(|t| UpstreamTls {
        sni: sni.clone(),
        verify: t.verify,
    });
    if let Some(hc) = &def.health_check {
        match &hc.path {
            Some(path) => {
                let mut check = HttpHealthCheck::new(&sni, tls.is_some());
                // Any 2xx is healthy (Pingora's default accepts only 200).
                check.validator = Some(Box::new(|resp: &pingora_http::ResponseHeader| {
                    if resp.status.is_success() {
                        Ok(())
                    } else {
                        pingora_error::Error::e_explain(
                            pingora_error::ErrorType::CustomCode(
                                "health check status",
                                resp.status.as_u16(),
                            ),
                            "non-2xx health check answer",
                        )
                    }
                }));
                check.peer_template.options.connection_timeout = Some(def.timeout.connect);
                check.peer_template.options.read_timeout = Some(def.timeout.read);
                check.peer_template.options.verify_cert = tls.as_ref().is_none_or(|t| t.verify);
                if let Ok(uri) = path.parse() {
                    check.req.set_uri(uri);
                }
                lb.set_health_check(Box::new(check));
            }
            None => {
                let mut check = TcpHealthCheck::new();
                check.peer_template.options.connection_timeout = Some(def.timeout.connect);
                lb.set_health_check(check);
            }
        }
    }
    Some(Upstream {
        name: Arc::from(name),
        definition: def.clone(),
        lb: Arc::new(lb),
        host: def.host.clone(),
        tls,
        connect_timeout: def.timeout.connect,
        read_timeout: def.timeout.read,
        health_check_interval: def.health_check.as_ref().map(|h| h.interval),
        metrics: METRICS.upstream(name),
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
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    r: &mut Reporter,
) -> Vec<Arc<Route>> {
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
        let Some(upstream) = upstreams.get(&rc.upstream) else {
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
        };
        out.push(Arc::new(Route {
            name: Arc::from(rc.name.as_str()),
            hosts,
            path: rc.path.clone(),
            upstream: upstream.clone(),
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
            metrics: METRICS.route(&rc.name),
        }));
    }
    out
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
    CacheSettings {
        budget,
        max_object_size,
        lock_timeout: c.lock_timeout,
    }
}

fn server(s: &schema::ServerConf, r: &mut Reporter) {
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
    if let Some(ca) = &s.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            r.at_value("server.ca_file", format!("cannot read CA file '{ca}': {e}"));
        }
    }
}

fn access_log(a: &schema::AccessLogConf, r: &mut Reporter) -> AccessLog {
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
    AccessLog {
        enabled: a.enabled,
        path,
        format: a.format,
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

    #[test]
    fn host_patterns_have_no_port() {
        assert!(valid_host_pattern("example.com"));
        assert!(valid_host_pattern("*.example.com"));
        assert!(valid_host_pattern("[::1]"));
        assert!(!valid_host_pattern("example.com:8080"));
        assert!(!valid_host_pattern("a.*.com"));
    }
}
