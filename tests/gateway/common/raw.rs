//! HTTP/1.1 spoken as bytes, for what a well-behaved library will not produce: an origin that
//! writes scripted bytes (wrong framing, silence, a connection closed mid-response), and a
//! client that reads exactly what the gateway sent, framing included, until it closes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections a [`RawOrigin`] accepts before it stops listening.
const MAX_CONNECTIONS: usize = 64;
/// The longest a [`RawOrigin`] waits for a request header.
const HEADER_WAIT: Duration = Duration::from_secs(5);

/// What a [`RawOrigin`] does on one connection once it has read the request header (never the
/// request body): the steps in order, then it closes the connection.
#[derive(Clone, Default)]
pub struct Script {
    steps: Vec<Step>,
}

#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Wait(Duration),
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    pub fn write(mut self, bytes: impl AsRef<[u8]>) -> Script {
        self.steps.push(Step::Write(bytes.as_ref().to_vec()));
        self
    }

    /// Do nothing for `d`: neither write nor read (a stalled origin, if longer than the
    /// gateway's read timeout).
    pub fn wait(mut self, d: Duration) -> Script {
        self.steps.push(Step::Wait(d));
        self
    }
}

/// An origin on an ephemeral loopback port that answers one request per connection with the
/// [`Script`] its handler picks for the request (numbered from 1, and its request line).
pub struct RawOrigin {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawOrigin {
    pub async fn start(
        handler: impl Fn(usize, &str) -> Script + Send + Sync + 'static,
    ) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, handler) = (seen.clone(), handler.clone());
                tokio::spawn(async move {
                    let mut stream = stream;
                    let Some(line) = read_request_line(&mut stream).await else {
                        return;
                    };
                    let script = {
                        let mut seen = seen.lock().expect("requests lock");
                        seen.push(line.clone());
                        handler(seen.len(), &line)
                    };
                    for step in script.steps {
                        match step {
                            Step::Write(bytes) => {
                                if stream.write_all(&bytes).await.is_err() {
                                    return;
                                }
                            }
                            Step::Wait(d) => tokio::time::sleep(d).await,
                        }
                    }
                });
            }
        });
        RawOrigin {
            addr,
            requests,
            task,
        }
    }

    /// Request headers received so far.
    pub fn hits(&self) -> usize {
        self.requests.lock().expect("requests lock").len()
    }

    /// The request lines received so far, in order (`GET /a HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

/// Read a request header (leaving any body unread); its request line.
async fn read_request_line(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        // One byte at a time, so not a byte of the body is taken off the socket.
        while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            buf.push(byte[0]);
        }
        Some(())
    };
    tokio::time::timeout(HEADER_WAIT, read).await.ok()??;
    let text = String::from_utf8_lossy(&buf);
    Some(text.lines().next()?.to_string())
}

/// What a client received for one request on its own connection.
#[derive(Debug)]
pub struct RawResponse {
    /// 0 when the connection ended (or the deadline passed) before a whole response header.
    pub status: u16,
    /// Field names in lower case.
    pub headers: Vec<(String, String)>,
    /// Field names as they were written on the wire, in order.
    pub names: Vec<String>,
    /// The body as framed (chunked framing removed), as much of it as arrived.
    pub body: Vec<u8>,
    /// The framing says the body is all there: Content-Length bytes, or the last chunk.
    pub complete: bool,
    /// The gateway closed the connection before the deadline.
    pub closed: bool,
    /// Until the connection closed (or the deadline).
    pub elapsed: Duration,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `head` (and `body`, concurrently with reading, as a client would) on a new
/// connection to `port`, and read everything until the gateway closes the connection or
/// `deadline` passes.
pub async fn exchange(port: u16, head: String, body: Vec<u8>, deadline: Duration) -> RawResponse {
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let send = async {
            wr.write_all(head.as_bytes()).await?;
            for piece in body.chunks(64 * 1024) {
                wr.write_all(piece).await?;
            }
            Ok::<_, std::io::Error>(wr)
        };
        // The gateway may stop reading the body: give up at the deadline. The write half stays
        // open while reading, so the gateway never sees a half-closed request.
        let wr = tokio::time::timeout(deadline, send).await;
        tokio::time::sleep(deadline).await;
        drop(wr);
    });
    let mut received = Vec::new();
    let mut closed = false;
    let _ = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    return;
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    writer.abort();
    parse(&received, closed, elapsed)
}

/// GET `path` on a new connection (`Connection: close`), read to the end; `deadline` bounds it.
pub async fn get(port: u16, path: &str, deadline: Duration) -> RawResponse {
    let head = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n");
    exchange(port, head, Vec::new(), deadline).await
}

fn parse(bytes: &[u8], closed: bool, elapsed: Duration) -> RawResponse {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(head_len)) = resp.parse(bytes) else {
        return RawResponse {
            status: 0,
            headers: Vec::new(),
            names: Vec::new(),
            body: Vec::new(),
            complete: false,
            closed,
            elapsed,
        };
    };
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let names = resp.headers.iter().map(|h| h.name.to_string()).collect();
    let field = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let rest = &bytes[head_len..];
    let (body, complete) = if field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else if let Some(len) = field("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest[..rest.len().min(len)].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), closed)
    };
    RawResponse {
        status: resp.code.unwrap_or(0),
        headers,
        names,
        body,
        complete,
        closed,
        elapsed,
    }
}

/// The data of a chunked body, and whether its last (zero-size) chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(rest) else {
            return (data, false);
        };
        if size == 0 {
            return (data, true);
        }
        let end = start + size as usize;
        if rest.len() < end + 2 {
            data.extend_from_slice(&rest[start.min(rest.len())..end.min(rest.len())]);
            return (data, false);
        }
        data.extend_from_slice(&rest[start..end]);
        rest = &rest[end + 2..];
    }
}
