//! Admission of client connections, before Pingora reads a byte of them: a cap on open
//! connections, and a deadline for the first request header.
//!
//! Pingora 0.9.1 accepts every connection and gives a new one 60 s per read, so a client that
//! sends one header byte a minute (slowloris), or simply opens connections and sends nothing,
//! holds a connection and its buffers forever, and enough of them starve everyone else.
//! [`ConnectionGate`] wraps the proxy application: past `server.max_connections` a new
//! connection gets a `503` with `Retry-After` and is closed; and every connection must have
//! sent its first request header within `server.header_timeout` (the deadline ends with the
//! first byte etagate writes, which comes only after a complete header). Later requests on a
//! kept-alive connection are bounded by Pingora's keep-alive and read timeouts.

use crate::metrics::METRICS;
use crate::runtime::LiveConfig;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a refused connection's request is read (and discarded) before the 503, so closing
/// it does not reset the connection under a response the client has not read yet.
const REFUSAL_READ: Duration = Duration::from_millis(200);

/// The proxy application behind a connection cap and a header deadline.
pub struct ConnectionGate<A> {
    inner: Arc<A>,
    live: Arc<LiveConfig>,
    open: AtomicUsize,
}

impl<A> ConnectionGate<A> {
    pub fn new(inner: A, live: Arc<LiveConfig>) -> ConnectionGate<A> {
        ConnectionGate {
            inner: Arc::new(inner),
            live,
            open: AtomicUsize::new(0),
        }
    }
}

/// One open connection, counted until dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        METRICS.client_connections.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionGate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let settings = &self.live.snapshot().config.server;
        let (max, header_timeout) = (settings.max_connections, settings.header_timeout);
        if self.open.fetch_add(1, Ordering::AcqRel) >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            METRICS.client_connections_refused.inc();
            // Boxed: its read buffer would otherwise be part of every connection's future.
            Box::pin(refuse(stream)).await;
            return None;
        }
        METRICS.client_connections.inc();
        let _slot = Slot(&self.open);
        let mut stream: Stream = Box::new(HeaderDeadline::new(stream, header_timeout));
        // Until its first byte, a connection holds only this future: Pingora's session state
        // (tens of KiB, allocated when `process_new` is called) waits for something to read.
        // A stream that cannot peek (TLS, whose handshake already read from the client) goes
        // on at once.
        let mut first = [0u8; 1];
        let mut stopping = shutdown.clone();
        tokio::select! {
            // A request already here is served even when the drain began in the same instant.
            biased;
            peeked = stream.try_peek(&mut first) => {
                if peeked.is_err() {
                    return None;
                }
            }
            _ = stopping.changed() => return None,
        }
        // HTTP/1 keep-alive is served inside this call; it returns when the connection ends.
        let mut next = self.inner.process_new(stream, shutdown).await;
        while let Some(s) = next {
            next = self.inner.process_new(s, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Answer a connection over the cap: read what it sent (briefly), then a 503 and close.
async fn refuse(mut stream: Stream) {
    let mut discard = [0u8; 8192];
    let _ = tokio::time::timeout(REFUSAL_READ, stream.read(&mut discard)).await;
    let body = "503 Service Unavailable: too many connections; retry shortly\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.flush().await;
    Shutdown::shutdown(&mut *stream).await;
}

/// A connection that must deliver its first request header by a deadline: reads fail with
/// `TimedOut` once it passes, until the first write (a response) ends it.
#[derive(Debug)]
struct HeaderDeadline {
    inner: Stream,
    /// `None` once the first byte was written.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HeaderDeadline {
    fn new(inner: Stream, timeout: Duration) -> HeaderDeadline {
        HeaderDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(Instant::now() + timeout))),
        }
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll_read(cx, buf) {
            return Poll::Ready(r);
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                METRICS.client_header_timeouts.inc();
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request header within server.header_timeout",
                )));
            }
        }
        Poll::Pending
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.deadline = None;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.deadline = None;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// The rest of Pingora's transport interface is the wrapped stream's.

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match self.deadline.as_mut() {
            Some(deadline) => tokio::select! {
                r = self.inner.try_peek(buf) => r,
                _ = deadline.as_mut() => {
                    METRICS.client_header_timeouts.inc();
                    Err(io::Error::new(io::ErrorKind::TimedOut, "no request within server.header_timeout"))
                }
            },
            None => self.inner.try_peek(buf).await,
        }
    }
}
