//! A real HTTP/1.1 origin on an ephemeral loopback port, scripted per test.
//!
//! The handler sees every request (with its number, from 1) and returns a [`Reply`]; the origin
//! records what it received so tests can assert on what etagate forwarded.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the origin received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub number: usize,
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the origin answers one request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Bytes>,
    /// Send the body chunked instead of with Content-Length.
    pub chunked: bool,
    /// Wait this long before sending the response header.
    pub delay: Duration,
    /// Wait this long between body chunks.
    pub chunk_delay: Duration,
    /// Break the connection after the listed chunks instead of finishing the body.
    pub abort: bool,
    /// Close the connection without sending any response.
    pub drop_connection: bool,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200).body(body)
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            chunks: Vec::new(),
            chunked: false,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            abort: false,
            drop_connection: false,
        }
    }

    /// Close the connection without answering (a crashed worker, a request that kills the app).
    pub fn drop_connection() -> Reply {
        Reply {
            drop_connection: true,
            ..Reply::status(200)
        }
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.chunks = vec![body.into()];
        self
    }

    pub fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Send these chunks with `Transfer-Encoding: chunked`.
    pub fn chunks(mut self, chunks: Vec<Bytes>) -> Reply {
        self.chunks = chunks;
        self.chunked = true;
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn chunk_delay(mut self, d: Duration) -> Reply {
        self.chunk_delay = d;
        self
    }

    /// Declare `declared` bytes, send the chunks, then break the connection.
    pub fn abort_after(mut self, declared: usize) -> Reply {
        self.abort = true;
        if !self.chunked {
            self.headers
                .push(("content-length".to_string(), declared.to_string()));
        }
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Start an origin answering with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve(listener, handler)
    }

    /// An origin answering with `handler` on a listener the caller bound (another address than
    /// 127.0.0.1, or a port it must keep across a restart). Needs a running Tokio runtime.
    pub fn serve(
        listener: TcpListener,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (h2, s2) = (hits.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, seen, handler) = (h2.clone(), s2.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let (hits, seen, handler) = (hits.clone(), seen.clone(), handler.clone());
                        async move { serve(req, hits, seen, handler).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            hits,
            seen,
            task,
        }
    }

    /// An origin that answers every request with a fixed body and headers.
    pub async fn fixed(body: &'static str, headers: &[(&'static str, &'static str)]) -> Origin {
        let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
        Origin::start(move |_| {
            let mut r = Reply::ok(body);
            for (n, v) in &headers {
                r = r.header(n, v);
            }
            r
        })
        .await
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the origin received a request")
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }
}

async fn serve(
    req: hyper::Request<Incoming>,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
) -> Result<hyper::Response<ScriptBody>, Dropped> {
    use http_body_util::BodyExt;
    let number = hits.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let s = Seen {
        number,
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
    };
    seen.lock().expect("seen lock").push(s.clone());
    let reply = handler(&s);
    if reply.drop_connection {
        // A service error makes hyper close the connection without writing a response.
        return Err(Dropped);
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = hyper::Response::new(ScriptBody {
        chunks: reply.chunks.iter().cloned().collect(),
        delay: reply.chunk_delay,
        sleep: None,
        abort: reply.abort,
        known_len: (!reply.chunked && !reply.abort)
            .then(|| reply.chunks.iter().map(|c| c.len() as u64).sum()),
    });
    *resp.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    for (n, v) in &reply.headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    Ok(resp)
}

/// The service error that makes hyper close a connection unanswered.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the script")
    }
}

impl std::error::Error for Dropped {}

/// A body that yields scripted chunks, optionally spaced out, optionally failing at the end.
pub struct ScriptBody {
    chunks: VecDeque<Bytes>,
    delay: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    abort: bool,
    known_len: Option<u64>,
}

impl Body for ScriptBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(s) = self.sleep.as_mut() {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        match self.chunks.pop_front() {
            Some(c) => {
                if !self.delay.is_zero() {
                    let d = self.delay;
                    self.sleep = Some(Box::pin(tokio::time::sleep(d)));
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None if self.abort => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "scripted abort",
            )))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && !self.abort && self.sleep.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.known_len {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

use std::future::Future;
