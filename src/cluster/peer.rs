//! The HTTP calls members make to each other's peer listeners (over Pingora's pooled
//! connector): health probes and purge fan-out. Forwarded client requests go through the proxy
//! itself, to the same listener, with the peer built by [`http_peer`].

use super::auth::OP_HEADER;
use super::{Fleet, Member};
use crate::metrics::METRICS;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::time::{Duration, Instant};

/// Longest peer answer read (a purge report); more is an error, not a larger buffer.
const MAX_ANSWER: usize = 1 << 20;
/// Pooled connections to a peer stay this long idle.
const IDLE: Duration = Duration::from_secs(60);

/// The upstream peer for a member's peer listener, with the cluster's timeouts.
pub fn http_peer(fleet: &Fleet, member: &Member) -> HttpPeer {
    let s = fleet.settings();
    let mut p = HttpPeer::new(member.addr, false, String::new());
    p.options.connection_timeout = Some(s.spec.connect_timeout);
    p.options.total_connection_timeout = Some(s.spec.connect_timeout);
    p.options.read_timeout = Some(s.spec.request_timeout);
    p.options.write_timeout = Some(s.spec.request_timeout);
    p.options.idle_timeout = Some(IDLE);
    p
}

/// One peer's answer to an operation: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Send an operation to a member and read the whole answer, within `limit`.
pub async fn call(
    fleet: &Fleet,
    member: &Member,
    op: &str,
    body: Bytes,
    limit: Duration,
) -> Result<Answer, String> {
    match tokio::time::timeout(limit, exchange(fleet, member, op, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

async fn exchange(fleet: &Fleet, member: &Member, op: &str, body: Bytes) -> Result<Answer, String> {
    let peer = http_peer(fleet, member);
    let method = if body.is_empty() { "GET" } else { "POST" };
    let mut req = RequestHeader::build(method, b"/", None).map_err(|e| e.to_string())?;
    let host = member.addr.to_string();
    let headers = fleet.credentials();
    req.insert_header("host", host.as_str())
        .and_then(|_| req.insert_header(OP_HEADER, op))
        .and_then(|_| req.insert_header("content-length", body.len().to_string()))
        .map_err(|e| e.to_string())?;
    for (name, value) in headers {
        req.insert_header(name, value).map_err(|e| e.to_string())?;
    }
    let (mut session, _reused) = fleet
        .connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    if !body.is_empty() {
        session
            .write_request_body(body, true)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
    }
    session
        .finish_request_body()
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    session
        .read_response_header()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = session
        .response_header()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let mut answer = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| format!("answer cut off: {e}"))?
    {
        if answer.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answer larger than {MAX_ANSWER} bytes"));
        }
        answer.extend_from_slice(&chunk);
    }
    fleet
        .connector
        .release_http_session(session, &peer, Some(IDLE))
        .await;
    Ok(Answer {
        status,
        body: Bytes::from(answer),
    })
}

/// One health probe: the member's peer listener answers an authenticated `health` op with 200.
pub async fn probe(fleet: &Fleet, member: &Member) -> Result<(), String> {
    let s = fleet.settings();
    let limit = s.spec.connect_timeout + s.spec.probe_interval.min(s.spec.request_timeout);
    drop(s);
    let a = call(fleet, member, "health", Bytes::new(), limit).await?;
    match a.status {
        200 => Ok(()),
        s => Err(format!("answered {s}")),
    }
}

/// A member's result in a fan-out.
pub struct FanOutResult {
    pub node: String,
    pub result: Result<Answer, String>,
    pub seconds: f64,
}

/// Send `op` with `body` to every other member at once and gather their answers (each bounded
/// by `cluster.purge_timeout`).
pub async fn fan_out(
    fleet: &std::sync::Arc<Fleet>,
    op: &'static str,
    body: Bytes,
) -> Vec<FanOutResult> {
    let limit = fleet.settings().spec.purge_timeout;
    let mut tasks = Vec::new();
    for m in fleet.peers() {
        let fleet = fleet.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = call(&fleet, &m, op, body, limit).await;
            let seconds = started.elapsed().as_secs_f64();
            let c = &METRICS.cluster;
            c.fanout_seconds.observe(seconds);
            let label = match &result {
                Ok(a) if a.status == 200 => "ok",
                Ok(_) => "refused",
                Err(_) => "error",
            };
            c.fanout.with_label_values(&[op, label]).inc();
            FanOutResult {
                node: m.name.to_string(),
                result,
                seconds,
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            out.push(r);
        }
    }
    out
}
