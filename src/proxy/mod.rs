//! The gateway's `ProxyHttp` implementation: a thin conductor over Pingora's phases.
//!
//! HTTP semantics live in [`crate::http`], the cache in [`crate::cache`], the configuration in
//! [`crate::config`]; each phase here only asks them and acts.
//!
//! ```text
//! request_filter ── route the request (404 when no route matches)
//! upstream_peer ── pick a healthy server of the route's upstream
//! upstream_request_filter ── Host, X-Forwarded-*, unkeyed inputs removed
//! upstream_response_filter ── origin metrics
//! fail_to_proxy ── 502 / 504 with a short body, logged with route and upstream
//! logging ── request metrics and the access log line
//! ```

pub mod ctx;
pub mod forward;

use crate::config::runtime::normalize_host;
use crate::config::LiveConfig;
use crate::metrics::access_log::{AccessLogger, AccessRecord};
use crate::metrics::OriginOutcome;
use crate::server::control::ProcessState;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::RequestCtx;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::SystemTime;

pub struct Gateway {
    live: Arc<LiveConfig>,
    access_log: AccessLogger,
    state: Arc<ProcessState>,
}

impl Gateway {
    pub fn new(
        live: Arc<LiveConfig>,
        access_log: AccessLogger,
        state: Arc<ProcessState>,
    ) -> Gateway {
        Gateway {
            live,
            access_log,
            state,
        }
    }
}

/// The host a request is for: `Host`, or the HTTP/2 `:authority`.
fn request_host(session: &Session) -> String {
    let req = session.req_header();
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    normalize_host(raw)
}

fn scheme(session: &Session) -> &'static str {
    match session.digest().and_then(|d| d.ssl_digest.as_ref()) {
        Some(_) => "https",
        None => "http",
    }
}

/// A small plain-text response written by etagate itself.
pub async fn respond_text(
    session: &mut Session,
    status: u16,
    text: &str,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let body = Bytes::from(format!("{status} {text}\n"));
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        ctx.body_bytes += body.len() as u64;
        session.write_response_body(Some(body), true).await?;
    }
    ctx.status = status;
    Ok(())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Routes the request under the config snapshot it keeps to its end. No route: 404.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if self.state.draining() {
            // Another process has (or will have) the listening sockets: after this response the
            // client reconnects there instead of finding its idle connection closed.
            session.set_keepalive(None);
        }
        let config = self.live.snapshot();
        ctx.host = request_host(session);
        let route = config
            .router
            .route(&ctx.host, session.req_header().uri.path())
            .cloned();
        ctx.config = Some(config);
        match route {
            Some(r) => {
                ctx.route = Some(r);
                Ok(false)
            }
            None => {
                respond_text(
                    session,
                    404,
                    "Not Found: no route for this host and path",
                    ctx,
                )
                .await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        ctx.origin_tries += 1;
        forward::peer(&route.upstream)
    }

    /// A refused or failed connection is retried on another server while servers remain.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let servers = ctx
            .route
            .as_ref()
            .map(|r| r.upstream.definition.servers.len())
            .unwrap_or(1);
        if ctx.origin_tries < servers && !matches!(e.etype(), ErrorType::ConnectTimedout) {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora_http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        forward::rewrite_request(
            upstream_request,
            &route.upstream,
            client_ip,
            scheme(session),
        )?;
        ctx.origin_sent = Some(std::time::Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let (Some(sent), Some(route)) = (ctx.origin_sent, ctx.route.as_ref()) {
            let waited = sent.elapsed();
            ctx.origin_wait = Some(waited);
            let m = &route.upstream.metrics;
            m.duration.observe(waited.as_secs_f64());
            m.outcome(OriginOutcome::from_status(
                upstream_response.status.as_u16(),
            ));
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream_response.status.as_u16();
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
        }
        Ok(None)
    }

    /// 502 when the origin is unreachable or broke the response, 504 when it was too slow;
    /// each with a short body, logged with route and upstream.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, outcome, text) = match e.esource() {
            pingora_error::ErrorSource::Upstream => forward::failure_status(e),
            pingora_error::ErrorSource::Downstream => {
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
        };
        if matches!(e.esource(), pingora_error::ErrorSource::Upstream) {
            if let Some(route) = &ctx.route {
                route.upstream.metrics.outcome(outcome);
                log::warn!(
                    "route={} upstream={} {} {}: {e}",
                    route.name,
                    route.upstream.name,
                    session.req_header().method,
                    session.req_header().uri
                );
            }
        }
        if code > 0 && session.response_written().is_none() {
            session.set_keepalive(None);
            let reason = match code {
                502 => format!("Bad Gateway: {text}"),
                504 => format!("Gateway Timeout: {text}"),
                _ => text.to_string(),
            };
            if respond_text(session, code, &reason, ctx).await.is_err() {
                ctx.status = code;
            }
        } else {
            ctx.status = code;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Upstream failures are logged once, with route and upstream, by `fail_to_proxy`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        matches!(error.esource(), pingora_error::ErrorSource::Upstream)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let total = ctx.started.elapsed();
        if ctx.status == 0 {
            ctx.status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
        }
        if let Some(route) = &ctx.route {
            let m = &route.metrics;
            m.request(ctx.status);
            m.duration.observe(total.as_secs_f64());
            m.body_bytes.inc_by(ctx.body_bytes);
        }
        let req = session.req_header();
        self.access_log.log(AccessRecord {
            time: Some(SystemTime::now()),
            client: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            method: req.method.to_string(),
            uri: req.uri.to_string(),
            host: ctx.host.clone(),
            status: ctx.status,
            route: ctx.route_name().to_string(),
            upstream: if ctx.origin_tries > 0 {
                ctx.upstream_name().to_string()
            } else {
                String::new()
            },
            cache: ctx.cache_outcome.map(|o| o.as_str()).unwrap_or("-"),
            etag: ctx.etag_source.as_str(),
            body_bytes: ctx.body_bytes,
            upstream_seconds: ctx.origin_wait.map(|d| d.as_secs_f64()),
            total_seconds: total.as_secs_f64(),
        });
    }
}
