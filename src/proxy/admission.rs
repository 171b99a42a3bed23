//! The decisions `request_filter` makes about a client request before anything is fetched:
//! whether it names a valid authority, which route takes it, what its cache key is, and which
//! way it will be answered. Pure functions over the request header and the config snapshot.

use super::ctx::{Role, Routed};
use crate::cache::key::PrimaryKey;
use crate::http::authority::Authority;
use crate::http::cache_control::RequestDirectives;
use crate::runtime::RuntimeConfig;
use http::header::{CACHE_CONTROL, HOST};
use http::Method;
use pingora_http::RequestHeader;
use std::net::SocketAddr;
use std::sync::Arc;

/// A request etagate answers itself, before any route is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    /// The canonical host, when the authority was valid (for the log).
    pub host: Option<String>,
}

/// The authority a request is for, checked (RFC 9112 §3.2, RFC 9110 §7.2): the request
/// target's own authority (HTTP/2's `:authority`), else `Host`.
///
/// An HTTP/1.1 request must carry exactly one valid `Host` (Pingora has already refused an
/// absolute-form target whose authority differs from it). An HTTP/1.0 request may carry
/// none: it is for the address it reached, `local`.
pub fn authority(
    req: &RequestHeader,
    scheme: &str,
    local: Option<SocketAddr>,
) -> Result<Authority, String> {
    let mut hosts = req.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header".to_string());
    }
    let host = match host.map(|h| Authority::parse(h.as_bytes(), scheme)) {
        Some(Err(why)) => return Err(format!("invalid Host header: {why}")),
        Some(Ok(a)) => Some(a),
        None => None,
    };
    if let Some(target) = req.uri.authority() {
        return Authority::parse(target.as_str().as_bytes(), scheme)
            .map_err(|why| format!("invalid request target authority: {why}"));
    }
    match host {
        Some(a) => Ok(a),
        None if req.version <= http::Version::HTTP_10 => local
            .and_then(|a| Authority::parse(a.to_string().as_bytes(), scheme).ok())
            .ok_or_else(|| "no Host header".to_string()),
        None => Err("no Host header (RFC 9112 section 3.2 requires one)".to_string()),
    }
}

/// Check, route and key a client request under `config`.
pub fn admit(
    req: &RequestHeader,
    scheme: &str,
    local: Option<SocketAddr>,
    config: &Arc<RuntimeConfig>,
) -> Result<Routed, Refusal> {
    let authority = authority(req, scheme, local).map_err(|why| Refusal {
        status: 400,
        reason: format!("Bad Request: {why}"),
        host: None,
    })?;
    let Some(route) = config.route(authority.host(), req.uri.path()) else {
        return Err(Refusal {
            status: 404,
            reason: "Not Found: no route for this host and path".to_string(),
            host: Some(authority.host().to_string()),
        });
    };
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let key = if route.spec.debug_headers {
        PrimaryKey::with_text(scheme, authority.as_str(), pq)
    } else {
        PrimaryKey::new(scheme, authority.as_str(), pq)
    };
    Ok(Routed {
        role: Role::Client,
        config: config.clone(),
        route: route.clone(),
        key: Arc::new(key),
        host_len: authority.host().len(),
        authority: Arc::from(authority.as_str()),
        directives: RequestDirectives::parse(req.headers.get_all(CACHE_CONTROL)),
        fwd: None,
        stale: None,
        owner: None,
        via_peer: false,
        unshared: None,
        scheme: if scheme == "https" { "https" } else { "http" },
    })
}

/// How a routed client request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Unsafe and other methods: Pingora's pipeline without the cache, preconditions left to
    /// the origin (only it can judge them).
    Pass,
    /// GET or HEAD: first a stored response if the route caches (`lookup`), then forward.
    Fetch { lookup: bool, forward: Forward },
}

/// How a GET or HEAD that no stored response answered reaches the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Through an inner subrequest whose response etagate holds back, to tag it or to judge
    /// the client's preconditions against it.
    Subrequest,
    /// Through Pingora's pipeline in this request: nothing needs holding back.
    Pipeline,
}

pub fn plan(method: &Method, cache: bool, etags: bool, conditional: bool) -> Plan {
    if method != Method::GET && method != Method::HEAD {
        return Plan::Pass;
    }
    let forward = if etags || conditional {
        Forward::Subrequest
    } else {
        Forward::Pipeline
    };
    Plan::Fetch {
        lookup: cache,
        forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ConfigSource};
    use crate::runtime::instantiate::instantiate;

    fn req(version: http::Version, target: &str, hosts: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target.as_bytes(), None).expect("request");
        r.set_version(version);
        for h in hosts {
            r.append_header("host", *h).expect("host");
        }
        r
    }

    fn runtime() -> Arc<RuntimeConfig> {
        let text = "listeners: [{ address: 127.0.0.1:8080 }]\nupstreams:\n  app: { servers: [127.0.0.1:8000] }\n  api: { servers: [127.0.0.1:8001] }\nroutes:\n  - { name: site, hosts: [example.com], upstream: app }\n  - { name: api, hosts: [example.com], path: /api, upstream: api, debug_headers: true }\n";
        let checked = config::parse("c", text, ConfigSource::QuickMode).expect("valid");
        Arc::new(instantiate(checked, None).expect("instantiated"))
    }

    const V11: http::Version = http::Version::HTTP_11;
    const V10: http::Version = http::Version::HTTP_10;

    #[test]
    fn requests_are_routed_keyed_or_refused() {
        let config = runtime();
        let local = Some(SocketAddr::from(([127, 0, 0, 1], 8080)));
        struct Case {
            name: &'static str,
            req: RequestHeader,
            expect: Result<(&'static str, &'static str), u16>,
        }
        let cases = [
            Case {
                name: "exact host, root path",
                req: req(V11, "/", &["Example.com:80"]),
                expect: Ok(("site", "example.com")),
            },
            Case {
                name: "longest path prefix wins",
                req: req(V11, "/api/users", &["example.com"]),
                expect: Ok(("api", "example.com")),
            },
            Case {
                name: "a non-default port is part of the authority",
                req: req(V11, "/", &["example.com:8080"]),
                expect: Ok(("site", "example.com:8080")),
            },
            Case {
                name: "no route for the host",
                req: req(V11, "/", &["other.test"]),
                expect: Err(404),
            },
            Case {
                name: "a second port",
                req: req(V11, "/", &["example.com:8080:80"]),
                expect: Err(400),
            },
            Case {
                name: "a dot after the port",
                req: req(V11, "/", &["example.com:8080."]),
                expect: Err(400),
            },
            Case {
                name: "HTTP/1.1 without Host",
                req: req(V11, "/", &[]),
                expect: Err(400),
            },
            Case {
                name: "two Host lines",
                req: req(V11, "/", &["example.com", "example.com"]),
                expect: Err(400),
            },
            Case {
                name: "HTTP/1.0 without Host is for the address it reached",
                req: req(V10, "/", &[]),
                expect: Err(404),
            },
        ];
        for c in cases {
            let got = admit(&c.req, "http", local, &config)
                .map(|r| (r.route.name.to_string(), r.authority.to_string()))
                .map_err(|r| r.status);
            let want = c.expect.map(|(r, a)| (r.to_string(), a.to_string()));
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn equivalent_authorities_share_a_key_and_debug_routes_show_it() {
        let config = runtime();
        let a = admit(
            &req(V11, "/api/x?q=1", &["EXAMPLE.com."]),
            "http",
            None,
            &config,
        )
        .expect("routed");
        let b = admit(
            &req(V11, "/api/x?q=1", &["example.com:80"]),
            "http",
            None,
            &config,
        )
        .expect("routed");
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.text(), Some("http://example.com/api/x?q=1"));
        assert_eq!(a.host(), "example.com");
        let site = admit(&req(V11, "/x", &["example.com"]), "http", None, &config).expect("routed");
        assert_eq!(
            site.key.text(),
            None,
            "keys are readable only with debug headers"
        );
    }

    #[test]
    fn the_plan_follows_method_route_and_conditionals() {
        use Forward::*;
        let get = Method::GET;
        let cases: [(&Method, bool, bool, bool, Plan); 6] = [
            (&Method::POST, true, true, true, Plan::Pass),
            (&Method::DELETE, false, false, false, Plan::Pass),
            (
                &get,
                true,
                true,
                false,
                Plan::Fetch {
                    lookup: true,
                    forward: Subrequest,
                },
            ),
            (
                &get,
                true,
                false,
                false,
                Plan::Fetch {
                    lookup: true,
                    forward: Pipeline,
                },
            ),
            (
                &get,
                false,
                false,
                true,
                Plan::Fetch {
                    lookup: false,
                    forward: Subrequest,
                },
            ),
            (
                &Method::HEAD,
                false,
                false,
                false,
                Plan::Fetch {
                    lookup: false,
                    forward: Pipeline,
                },
            ),
        ];
        for (m, cache, etags, conditional, want) in cases {
            assert_eq!(
                plan(m, cache, etags, conditional),
                want,
                "{m} cache={cache} etags={etags} conditional={conditional}"
            );
        }
    }
}
