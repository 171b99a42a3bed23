//! Instantiating a checked configuration: the checks that need the outside world (names that
//! must resolve, files that must be readable), then load balancers, health checks and metric
//! handles. Errors point into the file like the checks of [`crate::config::check`].

use super::{Route, RuntimeConfig, Upstream};
use crate::access_log;
use crate::config::error::{ConfigErrors, Reporter};
use crate::config::model::{Config, LogFormat, UpstreamSpec};
use crate::metrics::METRICS;
use pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::Arc;

/// Admin tokens shorter than this are too easy to guess.
const MIN_TOKEN_LEN: usize = 16;

/// Instantiate `config`. `previous` is the runtime config in use, if any: upstreams whose
/// definition did not change are carried over with their health state.
pub fn instantiate(
    config: Config,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let mut r = Reporter::new(&config.origin.name, &config.origin.index);
    let mut listener_certs = BTreeMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(t) = &l.tls else { continue };
        let mut readable = true;
        for (what, path) in [("cert", &t.cert), ("key", &t.key)] {
            if let Err(e) = std::fs::metadata(path) {
                readable = false;
                r.at_value(
                    &format!("listeners[{i}].tls.{what}"),
                    format!("cannot read TLS {what} file '{path}': {e}"),
                );
            }
        }
        if readable {
            match super::tls::load(&t.cert, &t.key) {
                Ok(cert) => {
                    listener_certs.insert(l.address, cert);
                }
                Err(e) => r.at_value(&format!("listeners[{i}].tls"), e),
            }
        }
    }
    if let Some(d) = &config.cache.disk {
        check_disk_path(d, &mut r);
    }
    if let Some(ca) = &config.server.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            r.at_value("server.ca_file", format!("cannot read CA file '{ca}': {e}"));
        }
    }
    let admin_token = config
        .admin
        .token_file
        .as_ref()
        .and_then(|path| read_secret(path, "admin.token_file", &mut r));
    let cluster_secret = config
        .cluster
        .as_ref()
        .and_then(|c| read_secret(&c.secret_file, "cluster.secret_file", &mut r));
    let mut upstreams = BTreeMap::new();
    for (name, spec) in &config.upstreams {
        let reused = previous
            .and_then(|p| p.upstreams.get(name))
            .filter(|u| u.spec == *spec);
        match reused {
            Some(u) => {
                upstreams.insert(name.clone(), u.clone());
            }
            None => {
                if let Some(u) = upstream(name, spec, &mut r) {
                    upstreams.insert(name.clone(), Arc::new(u));
                }
            }
        }
    }
    r.finish()?;
    let mut routes = Vec::with_capacity(config.routes.len());
    for spec in &config.routes {
        let Some(upstream) = upstreams.get(&spec.upstream) else {
            // The checked config names only defined upstreams, and every one of them was
            // instantiated or reported above.
            continue;
        };
        routes.push(Arc::new(Route {
            name: Arc::from(spec.name.as_str()),
            spec: spec.clone(),
            upstream: upstream.clone(),
            metrics: METRICS.route(&spec.name),
        }));
    }
    let a = &config.access_log;
    let access_log = access_log::Settings {
        enabled: a.enabled,
        path: a.path.clone(),
        format: match a.format {
            LogFormat::Text => access_log::Format::Text,
            LogFormat::Json => access_log::Format::Json,
        },
        buffer: a.buffer,
    };
    Ok(RuntimeConfig {
        config,
        generation: 0,
        admin_token,
        cluster_secret,
        access_log,
        upstreams,
        routes,
        listener_certs,
    })
}

/// The disk tier's directory exists, is writable, and its filesystem can hold the budget.
fn check_disk_path(d: &crate::config::model::DiskSettings, r: &mut Reporter) {
    let path = d.path.display();
    match std::fs::metadata(&d.path) {
        Err(e) => {
            return r.at_value(
                "cache.disk.path",
                format!("cannot use '{path}': {e}; create the directory (writable by etagate) or fix the path"),
            )
        }
        Ok(m) if !m.is_dir() => {
            return r.at_value("cache.disk.path", format!("'{path}' is not a directory"))
        }
        Ok(_) => {}
    }
    let probe = d
        .path
        .join(format!(".etagate-write-check-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        return r.at_value(
            "cache.disk.path",
            format!("cannot write in '{path}': {e}; make it writable by etagate"),
        );
    }
    let _ = std::fs::remove_file(&probe);
    if let Ok(fs) = nix::sys::statvfs::statvfs(&d.path) {
        let size = fs.blocks().saturating_mul(fs.fragment_size());
        if d.budget > size {
            r.at_value(
                "cache.disk.budget",
                format!(
                    "{} is more than the filesystem of '{path}' holds ({}); lower it",
                    bytesize::ByteSize::b(d.budget),
                    bytesize::ByteSize::b(size)
                ),
            );
        }
    }
}

/// A token or shared secret from a file (surrounding whitespace trimmed), named in the config
/// at `key`.
fn read_secret(path: &str, key: &str, r: &mut Reporter) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_string();
            if t.len() < MIN_TOKEN_LEN {
                r.at_value(
                    key,
                    format!("the secret in '{path}' has {} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)", t.len()),
                );
                None
            } else {
                Some(t)
            }
        }
        Err(e) => {
            r.at_value(key, format!("cannot read '{path}': {e}"));
            None
        }
    }
}

fn upstream(name: &str, spec: &UpstreamSpec, r: &mut Reporter) -> Option<Upstream> {
    let base = format!("upstreams.{name}");
    let mut addrs = Vec::new();
    for (j, s) in spec.servers.iter().enumerate() {
        let path = format!("{base}.servers[{j}]");
        match s.to_socket_addrs() {
            Ok(mut it) => match it.next() {
                Some(a) => addrs.push(a),
                None => r.at_value(&path, format!("'{s}' resolves to no address")),
            },
            Err(e) => r.at_value(&path, format!("cannot resolve '{s}': {e}")),
        }
    }
    if addrs.len() != spec.servers.len() {
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
    if let Some(hc) = &spec.health_check {
        let tls = spec.tls.as_ref();
        match &hc.path {
            Some(path) => {
                let mut check = HttpHealthCheck::new(&spec.server_name, tls.is_some());
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
                check.peer_template.options.connection_timeout = Some(spec.connect_timeout);
                check.peer_template.options.read_timeout = Some(spec.read_timeout);
                check.peer_template.options.verify_cert = tls.is_none_or(|t| t.verify);
                // The checked config made sure the path parses.
                if let Ok(uri) = path.parse() {
                    check.req.set_uri(uri);
                }
                lb.set_health_check(Box::new(check));
            }
            None => {
                let mut check = TcpHealthCheck::new();
                check.peer_template.options.connection_timeout = Some(spec.connect_timeout);
                lb.set_health_check(check);
            }
        }
    }
    Some(Upstream::new(
        Arc::from(name),
        spec.clone(),
        Arc::new(lb),
        METRICS.upstream(name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ConfigSource};

    const TEXT: &str = "listeners: [{ address: 127.0.0.1:8080 }]\nadmin:\n  address: 127.0.0.1:9090\n  token_file: /nonexistent/etagate-token\nupstreams:\n  app: { servers: [127.0.0.1:8000] }\nroutes:\n  - { name: main, upstream: app }\n";

    #[test]
    fn what_needs_the_outside_world_is_checked_when_instantiated_and_located() {
        let checked = config::parse("conf.yaml", TEXT, ConfigSource::QuickMode)
            .expect("the file alone is valid");
        let err = instantiate(checked, None)
            .err()
            .expect("the token file does not exist")
            .to_string();
        assert!(
            err.starts_with("conf.yaml:4:15: cannot read '/nonexistent/etagate-token'"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_that_does_not_load_is_located_at_its_listener() {
        let dir = tempfile::tempdir().expect("dir");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").expect("write");
        let text = TEXT
            .replace("  token_file: /nonexistent/etagate-token\n", "")
            .replace(
                "listeners: [{ address: 127.0.0.1:8080 }]",
                &format!(
                    "listeners:\n  - address: 127.0.0.1:8080\n    tls: {{ cert: {0}, key: {0} }}",
                    cert.display()
                ),
            );
        let checked = config::parse("conf.yaml", &text, ConfigSource::QuickMode).expect("valid");
        let err = instantiate(checked, None)
            .err()
            .expect("no certificate in the file")
            .to_string();
        assert!(
            err.starts_with("conf.yaml:3:10: ") && err.contains("holds no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn an_unchanged_upstream_is_carried_over_with_its_state() {
        let text = TEXT.replace("  token_file: /nonexistent/etagate-token\n", "");
        let parse = || config::parse("c", &text, ConfigSource::QuickMode).expect("valid");
        let first = instantiate(parse(), None).expect("instantiated");
        let second = instantiate(parse(), Some(&first)).expect("instantiated");
        assert!(Arc::ptr_eq(
            &first.upstreams["app"],
            &second.upstreams["app"]
        ));
        assert!(Arc::ptr_eq(
            &first.routes[0].upstream,
            &second.routes[0].upstream
        ));
    }
}
