//! Talking to origins: which server, what the request looks like on the way, and what a client
//! sees when an origin fails.

use crate::http::names;
use crate::metrics::OriginOutcome;
use crate::runtime::{InFlight, Upstream};
use http::header::{HeaderName, HOST};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle upstream connection stays in the pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Request headers a client must not be able to set, because an origin may let them change the
/// response (absolute URLs, redirects, method) while the cache key does not include them: a
/// cached response built from them would be served to everyone (cache poisoning).
/// `X-Forwarded-Proto` is among them and re-set by etagate to the scheme it actually served.
const UNKEYED_INPUTS: [&str; 11] = [
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
];

/// The error of a request refused because its upstream has `max_requests` in flight.
pub const UPSTREAM_BUSY: &str = "upstream at max_requests";

/// A place among `upstream`'s requests in flight, or the error that refuses the request.
pub fn admit(upstream: &Arc<Upstream>) -> Result<InFlight> {
    upstream.admit().ok_or_else(|| {
        Error::create(
            ErrorType::Custom(UPSTREAM_BUSY),
            ErrorSource::Upstream,
            Some(
                format!(
                    "upstream '{}' has {} requests in flight",
                    upstream.name, upstream.spec.max_requests
                )
                .into(),
            ),
            None,
        )
    })
}

/// Choose a healthy server of `upstream` and describe how to reach it.
pub fn peer(upstream: &Upstream) -> Result<Box<HttpPeer>> {
    let backend = upstream.lb.select(b"", 256).ok_or_else(|| {
        Error::explain(
            ErrorType::ConnectNoRoute,
            format!("upstream '{}' has no healthy server", upstream.name),
        )
    })?;
    let tls = upstream.spec.tls.as_ref();
    let sni = upstream.spec.server_name.clone();
    let mut peer = HttpPeer::new(backend, tls.is_some(), sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(upstream.spec.connect_timeout);
    o.total_connection_timeout = Some(upstream.spec.connect_timeout);
    o.read_timeout = Some(upstream.spec.read_timeout);
    o.write_timeout = Some(upstream.spec.read_timeout);
    o.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
    if let Some(t) = tls {
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
    }
    Ok(Box::new(peer))
}

/// Rewrite the request for the origin: `Host` is the request's canonical authority (or the
/// upstream's own `host`), the target in origin form, X-Forwarded-For appended,
/// X-Forwarded-Proto set, unkeyed inputs removed.
pub fn rewrite_request(
    req: &mut RequestHeader,
    upstream: &Upstream,
    authority: &str,
    client_ip: Option<std::net::IpAddr>,
    scheme: &'static str,
) -> Result<()> {
    let host = upstream.spec.host.as_deref().unwrap_or(authority);
    rewrite_target_and_forwarding(req, host, client_ip)?;
    req.insert_header(names::X_FORWARDED_PROTO, scheme)?;
    Ok(())
}

/// Unkeyed inputs removed, the target in origin form, `Host` set, the client appended to
/// `X-Forwarded-For`.
fn rewrite_target_and_forwarding(
    req: &mut RequestHeader,
    host: &str,
    client_ip: Option<std::net::IpAddr>,
) -> Result<()> {
    for name in crate::http::headers::present(&req.headers, &UNKEYED_INPUTS) {
        req.remove_header(name);
    }
    // RFC 9112 §3.2.1: an origin server is sent the origin form; an absolute-form target's
    // authority travels as Host.
    let raw = req.raw_path();
    if !raw.starts_with(b"/") && raw != b"*" {
        if let Some(pq) = req.uri.path_and_query().cloned() {
            req.set_uri(http::Uri::from(pq));
        }
    }
    req.insert_header(HOST, host)?;
    if let Some(ip) = client_ip {
        let xff = HeaderName::from_static("x-forwarded-for");
        let value = match req.headers.get(&xff).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header(names::X_FORWARDED_FOR, value)?;
    }
    Ok(())
}

/// Rewrite a client request for the fleet member that owns its key. The owner treats it as
/// its own client's: the canonical authority as `Host` (so it routes and keys alike), the
/// edge's scheme (the hop is plain HTTP), the client's conditionals and `Range` untouched (the
/// owner answers them, so a 304 carries no body across the fleet), and the proof of membership.
pub fn rewrite_for_peer(
    req: &mut RequestHeader,
    authority: &str,
    client_ip: Option<std::net::IpAddr>,
    scheme: &'static str,
    credentials: [(&'static str, String); 2],
) -> Result<()> {
    rewrite_target_and_forwarding(req, authority, client_ip)?;
    req.remove_header("x-forwarded-proto");
    req.insert_header(crate::cluster::auth::SCHEME_HEADER, scheme)?;
    for (name, value) in credentials {
        req.insert_header(name, value)?;
    }
    Ok(())
}

/// What a client gets when proxying failed: the status (0: nothing can be written, the
/// client is gone), how the origin exchange is counted, and a short explanation.
pub fn failure_response(e: &Error) -> (u16, OriginOutcome, &'static str) {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(504), _) => (
            504,
            OriginOutcome::Timeout,
            "the origin did not answer in time",
        ),
        (ErrorType::HTTPStatus(c), _) => (
            *c,
            OriginOutcome::Error,
            "the origin sent an invalid or incomplete response",
        ),
        (ErrorType::Custom(UPSTREAM_BUSY), _) => (
            503,
            OriginOutcome::Limited,
            "the origin has as many requests in flight as it may; retry shortly",
        ),
        (_, ErrorSource::Upstream) => failure_status(e),
        (_, ErrorSource::Downstream) => {
            // The client went away or sent garbage; nothing useful can be written.
            let code = match e.etype() {
                ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectionClosed
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout => 0,
                _ => 400,
            };
            (code, OriginOutcome::Error, "Bad Request")
        }
        _ => (500, OriginOutcome::Error, "Internal Server Error"),
    }
}

/// The status a client gets when reaching the origin failed, and a short explanation.
fn failure_status(e: &Error) -> (u16, OriginOutcome, &'static str) {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout => (
            504,
            OriginOutcome::Timeout,
            "the origin did not accept a connection in time",
        ),
        ReadTimedout | WriteTimedout => (
            504,
            OriginOutcome::Timeout,
            "the origin did not answer in time",
        ),
        ConnectRefused | ConnectNoRoute | ConnectError | BindError | SocketError
        | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => {
            if matches!(e.etype(), TLSHandshakeTimedout) {
                (
                    504,
                    OriginOutcome::Timeout,
                    "the origin did not complete the TLS handshake in time",
                )
            } else {
                (
                    502,
                    OriginOutcome::ConnectError,
                    "the origin is unreachable",
                )
            }
        }
        _ => (
            502,
            OriginOutcome::Error,
            "the origin sent an invalid or incomplete response",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_status_the_client_gets() {
        let cases: [(ErrorType, ErrorSource, u16, &str); 11] = [
            (
                ErrorType::Custom(UPSTREAM_BUSY),
                ErrorSource::Upstream,
                503,
                "upstream busy",
            ),
            (
                ErrorType::ReadTimedout,
                ErrorSource::Upstream,
                504,
                "slow origin",
            ),
            (
                ErrorType::ConnectTimedout,
                ErrorSource::Upstream,
                504,
                "slow connect",
            ),
            (
                ErrorType::TLSHandshakeTimedout,
                ErrorSource::Upstream,
                504,
                "slow TLS",
            ),
            (
                ErrorType::ConnectRefused,
                ErrorSource::Upstream,
                502,
                "refused",
            ),
            (
                ErrorType::InvalidCert,
                ErrorSource::Upstream,
                502,
                "bad certificate",
            ),
            (
                ErrorType::InvalidHTTPHeader,
                ErrorSource::Upstream,
                502,
                "garbage from origin",
            ),
            (
                ErrorType::HTTPStatus(504),
                ErrorSource::Internal,
                504,
                "a status etagate chose",
            ),
            (
                ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
                0,
                "client gone",
            ),
            (
                ErrorType::InvalidHTTPHeader,
                ErrorSource::Downstream,
                400,
                "garbage from client",
            ),
            (
                ErrorType::InternalError,
                ErrorSource::Internal,
                500,
                "a bug",
            ),
        ];
        for (etype, source, status, name) in cases {
            let mut e = Error::new(etype);
            e.esource = source;
            assert_eq!(failure_response(&e).0, status, "{name}");
        }
    }
}
