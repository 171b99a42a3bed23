//! The inner subrequest: how a client request (the outer) runs Pingora's cache and proxy
//! pipeline in a subrequest and reads the response through a channel, so it can hold the
//! response back until it knows the body's hash.
//!
//! Pingora 0.9.1's subrequest API is alpha; everything that depends on its exact behaviour is
//! here (the HTTP/1 re-parse workaround, keeping the input channel open, background refresh),
//! and `tests/gateway/conditional.rs` covers the path end to end.

use super::ctx::{Role, Routed};
use crate::cache::entry::Entry;
use crate::cache::key::PrimaryKey;
use crate::http::cache_control::RequestDirectives;
use crate::runtime::{Route, RuntimeConfig};
use bytes::Bytes;
use pingora_core::protocols::http::HttpTask;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora_proxy::Session;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long the outer waits, once the inner's channel closed early, for the inner's own error
/// (which says why: a timeout, a broken connection).
const INNER_ERROR_WAIT: Duration = Duration::from_secs(1);

/// What the inner request reports back. Written by the inner before it sends its response
/// header, read by the outer after receiving it.
#[derive(Debug, Default)]
pub struct InnerReport {
    /// Pingora answered from a stored response (another request filled it meanwhile).
    pub served_from_cache: AtomicBool,
    /// The origin answered 304 to a revalidation; the stored body is being served.
    pub revalidated: AtomicBool,
    /// The response is being written into the cache.
    pub storing: AtomicBool,
    /// Status the origin sent (0: the origin was not asked or did not answer).
    pub origin_status: AtomicU16,
    /// Microseconds until the origin's response header arrived.
    pub origin_wait_us: AtomicU64,
}

impl InnerReport {
    pub fn origin_wait(&self) -> Option<Duration> {
        match self.origin_status.load(Ordering::Acquire) {
            0 => None,
            _ => Some(Duration::from_micros(
                self.origin_wait_us.load(Ordering::Acquire),
            )),
        }
    }

    /// The origin's status, when it answered.
    pub fn origin_status(&self) -> Option<u16> {
        Some(self.origin_status.load(Ordering::Acquire)).filter(|s| *s > 0)
    }

    pub fn served_from_cache(&self) -> bool {
        self.served_from_cache.load(Ordering::Acquire)
    }

    pub fn revalidated(&self) -> bool {
        self.revalidated.load(Ordering::Acquire)
    }

    pub fn storing(&self) -> bool {
        self.storing.load(Ordering::Acquire)
    }
}

/// Everything an inner request needs from its outer request; travels in Pingora's subrequest
/// context.
pub struct InnerPlan {
    config: Arc<RuntimeConfig>,
    route: Arc<Route>,
    key: Arc<PrimaryKey>,
    authority: Arc<str>,
    host_len: usize,
    report: Arc<InnerReport>,
    via_peer: bool,
    scheme: &'static str,
}

impl InnerPlan {
    fn of(outer: &Routed, report: Arc<InnerReport>) -> InnerPlan {
        InnerPlan {
            config: outer.config.clone(),
            route: outer.route.clone(),
            key: outer.key.clone(),
            authority: outer.authority.clone(),
            host_len: outer.host_len,
            report,
            via_peer: outer.via_peer,
            scheme: outer.scheme,
        }
    }

    /// The inner's own routed state: the outer's route and key, its own request directives.
    pub fn routed(&self, directives: RequestDirectives) -> Routed {
        Routed {
            role: Role::Inner(self.report.clone()),
            config: self.config.clone(),
            route: self.route.clone(),
            key: self.key.clone(),
            authority: self.authority.clone(),
            host_len: self.host_len,
            directives,
            fwd: None,
            stale: None,
            owner: None,
            via_peer: self.via_peer,
            scheme: self.scheme,
            unshared: None,
        }
    }
}

/// The plan an inner request was spawned with, if `session` is one.
pub fn plan_of(session: &Session) -> Option<&InnerPlan> {
    session
        .subrequest_ctx
        .as_ref()
        .and_then(|c| c.user_ctx())
        .and_then(|u| u.downcast_ref::<InnerPlan>())
}

/// Run `f` (which creates a subrequest) on an HTTP/1.1 view of the request.
///
/// Pingora 0.9.1 builds a subrequest by serializing the parent request as HTTP/1 text and
/// parsing it again (an HTTP/1 parent's raw header bytes, so edits to the parent's header do
/// not reach the inner: the plan carries what the inner must know). For an HTTP/2 parent the
/// request line says `HTTP/2`, which the parser rejects, and `:authority` is not a `Host`
/// line. So for the instant the subrequest is built the parent claims HTTP/1.1 and carries
/// `Host`; both are put back right after.
fn as_http1<R>(session: &mut Session, f: impl FnOnce(&Session) -> R) -> R {
    let req = session.req_header_mut();
    let version = req.version;
    let mut added_host = false;
    if version == http::Version::HTTP_2 {
        req.set_version(http::Version::HTTP_11);
        if !req.headers.contains_key(http::header::HOST) {
            if let Some(a) = req.uri.authority().map(|a| a.as_str().to_string()) {
                added_host = req.insert_header(http::header::HOST, a).is_ok();
            }
        }
    }
    let r = f(session);
    let req = session.req_header_mut();
    req.set_version(version);
    if added_host {
        req.remove_header(&http::header::HOST);
    }
    r
}

fn subrequest_ctx(plan: InnerPlan) -> SubrequestCtx {
    SubrequestCtx::builder()
        .body_mode(BodyMode::NoBody)
        .user_ctx(Box::new(plan))
        .build()
}

/// Start a background refresh of a stale entry (stale-while-revalidate), at most one at a time
/// per entry. Nobody reads its response: the cache fill is the point.
pub fn spawn_refresh(session: &mut Session, outer: &Routed, entry: &Entry) {
    if !entry.claim_refresh() {
        return;
    }
    let sub = subrequest_ctx(InnerPlan::of(outer, Arc::new(InnerReport::default())));
    as_http1(session, |s| {
        if let Some(spawner) = s.subrequest_spawner.as_ref() {
            spawner.spawn_background_subrequest(s.as_downstream(), sub);
        }
    });
}

/// One piece of the inner response.
pub enum Piece {
    /// An interim (1xx) response from the origin, such as 103 Early Hints: relayed to the
    /// client ahead of the final one, never stored.
    Interim(Box<ResponseHeader>),
    Header(Box<ResponseHeader>),
    Body(Bytes),
    End,
}

/// The outer side of a running inner request.
pub struct Inner {
    pub report: Arc<InnerReport>,
    tx: Option<mpsc::Sender<HttpTask>>,
    rx: mpsc::Receiver<HttpTask>,
    /// The error the inner's proxying ended with, if it failed.
    error: Option<oneshot::Receiver<Box<Error>>>,
    join: Option<tokio::task::JoinHandle<()>>,
    ended: bool,
}

impl Inner {
    /// Spawn the inner request for `outer`; `None` when subrequests are unavailable.
    pub fn start(session: &mut Session, outer: &Routed) -> Option<Inner> {
        let report = Arc::new(InnerReport::default());
        let sub = subrequest_ctx(InnerPlan::of(outer, report.clone()));
        let (prepared, handle) = as_http1(session, |s| {
            s.subrequest_spawner
                .as_ref()
                .map(|spawner| spawner.create_subrequest(s.as_downstream(), sub))
        })?;
        let join = tokio::spawn(prepared.run());
        Some(Inner {
            report,
            // Kept open until the inner finishes: when it closes, the inner session reports a
            // downstream read error and an uncached inner request aborts.
            tx: Some(handle.tx),
            rx: handle.rx,
            error: Some(handle.subreq_proxy_error),
            join: Some(join),
            ended: false,
        })
    }

    /// Whether the response has been read to its end.
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub async fn next(&mut self) -> Result<Piece> {
        if self.ended {
            return Ok(Piece::End);
        }
        loop {
            match self.rx.recv().await {
                Some(HttpTask::Header(h, eos)) => {
                    if h.status.is_informational() {
                        // 101 belongs to a protocol switch, which a GET or HEAD for the cache
                        // never asks for.
                        if h.status != 101 {
                            return Ok(Piece::Interim(h));
                        }
                        continue;
                    }
                    self.ended = eos;
                    return Ok(Piece::Header(h));
                }
                Some(HttpTask::Body(Some(b), eos)) | Some(HttpTask::UpgradedBody(Some(b), eos)) => {
                    self.ended = eos;
                    if b.is_empty() {
                        if eos {
                            return Ok(Piece::End);
                        }
                        continue;
                    }
                    return Ok(Piece::Body(b));
                }
                Some(HttpTask::Body(None, eos)) | Some(HttpTask::UpgradedBody(None, eos)) => {
                    if eos {
                        self.ended = true;
                        return Ok(Piece::End);
                    }
                }
                Some(HttpTask::Trailer(_)) => {}
                Some(HttpTask::Done) => {
                    self.ended = true;
                    return Ok(Piece::End);
                }
                Some(HttpTask::Failed(e)) => return Err(e),
                None => return Err(self.cause().await),
            }
        }
    }

    /// Why the inner's response ended early: the inner's own error when it reports one in
    /// time (an origin read timeout, say), else a generic broken response.
    async fn cause(&mut self) -> Box<Error> {
        let reported = match self.error.take() {
            Some(rx) => tokio::time::timeout(INNER_ERROR_WAIT, rx)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        reported.unwrap_or_else(|| {
            Error::explain(
                ErrorType::ReadError,
                "the response from the origin ended before it was complete",
            )
        })
    }

    /// Stop reading. A response being stored is read to its end in the background (so the
    /// cache fill completes); anything else is abandoned at once.
    pub fn release(mut self) {
        if self.ended || !self.report.storing() {
            return;
        }
        tokio::spawn(async move {
            let _keep_input_open = self.tx.take();
            while self.rx.recv().await.is_some() {}
            if let Some(j) = self.join.take() {
                let _ = j.await;
            }
        });
    }
}
