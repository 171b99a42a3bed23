//! Requests on the peer listener: only fleet members are answered. A member either forwards a
//! client request whose key this node owns (answered like a client's, never forwarded again)
//! or asks for an operation (`health`, `purge`).

use super::ctx::RequestCtx;
use super::respond;
use crate::cluster::{auth, Fleet};
use crate::control::Control;
use crate::metrics::METRICS;
use pingora_error::Result;
use pingora_proxy::Session;
use std::sync::Arc;

/// Largest operation body read (a purge list).
const MAX_OP_BODY: usize = 256 * 1024;

pub(crate) enum PeerRequest {
    /// Answered here (an operation, or a refusal).
    Answered,
    /// A member's forwarded client request, keyed with the client's `scheme`.
    Forwarded { scheme: &'static str },
}

async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    body: &str,
    content_type: &str,
) -> Result<PeerRequest> {
    ctx.sent.status = status;
    let body = bytes::Bytes::from(body.to_string());
    let d = respond::respond_body(session, status, content_type, body, &[]).await?;
    ctx.sent.body_bytes += d.body_bytes;
    Ok(PeerRequest::Answered)
}

pub(crate) async fn admit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    fleet: Option<&(Arc<Fleet>, Arc<Control>)>,
) -> Result<PeerRequest> {
    let m = &METRICS.cluster;
    let Some((fleet, control)) = fleet else {
        return answer(
            session,
            ctx,
            403,
            "Forbidden: this node is not a fleet member\n",
            "text/plain",
        )
        .await;
    };
    let Some(member) = fleet.authenticate(&session.req_header().headers) else {
        m.received.with_label_values(&["rejected"]).inc();
        session.set_keepalive(None);
        return answer(
            session,
            ctx,
            403,
            "Forbidden: the peer listener answers fleet members only (missing or invalid etagate-peer-auth)\n",
            "text/plain",
        )
        .await;
    };
    m.received.with_label_values(&["accepted"]).inc();
    let op = session
        .req_header()
        .headers
        .get(auth::OP_HEADER)
        .map(|v| v.as_bytes().to_vec());
    match op.as_deref() {
        None => {
            let scheme = match session.req_header().headers.get(auth::SCHEME_HEADER) {
                Some(v) if v.as_bytes() == b"https" => "https",
                _ => "http",
            };
            let req = session.req_header_mut();
            for name in auth::ALL_HEADERS {
                req.remove_header(name);
            }
            Ok(PeerRequest::Forwarded { scheme })
        }
        Some(b"health") => {
            let body = format!("ok {}\n", fleet.node());
            answer(session, ctx, 200, &body, "text/plain").await
        }
        Some(b"purge") => {
            let body = match read_body(session).await {
                Ok(b) => b,
                Err(why) => return answer(session, ctx, 400, &why, "text/plain").await,
            };
            let control = control.clone();
            let applied = tokio::task::spawn_blocking(move || control.purge_request(&body))
                .await
                .unwrap_or_else(|e| Err(format!("purge failed: {e}")));
            match applied {
                Ok(report) => {
                    log::info!("purge from member {member}: {report}");
                    answer(
                        session,
                        ctx,
                        200,
                        &format!("{report}\n"),
                        "application/json",
                    )
                    .await
                }
                Err(why) => answer(session, ctx, 400, &format!("{why}\n"), "text/plain").await,
            }
        }
        Some(other) => {
            let why = format!(
                "unknown operation '{}'; this node knows health and purge\n",
                String::from_utf8_lossy(other)
            );
            answer(session, ctx, 400, &why, "text/plain").await
        }
    }
}

async fn read_body(session: &mut Session) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_OP_BODY {
                    return Err(format!("body larger than {MAX_OP_BODY} bytes\n"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("cannot read body: {e}\n")),
        }
    }
}
