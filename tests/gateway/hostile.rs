//! Hostile and malformed clients: what reaches the origin and the cache, and what is refused.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Write `bytes` on one new connection and read up to `want` responses (fewer when the
/// gateway closes the connection first). Each response must carry Content-Length.
async fn raw_exchange(port: u16, bytes: &[u8], want: usize) -> Vec<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway");
    stream.write_all(bytes).await.expect("write requests");
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < want {
        // Parse every complete response already buffered.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let Ok(httparse::Status::Complete(head_len)) = resp.parse(&buf) else {
                break;
            };
            let status = resp.code.expect("status");
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse().expect("numeric Content-Length"))
                .unwrap_or(0);
            if buf.len() < head_len + len {
                break;
            }
            let body = buf[head_len..head_len + len].to_vec();
            buf.drain(..head_len + len);
            out.push(RawResponse {
                status,
                headers,
                body,
            });
        }
        if out.len() >= want {
            break;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("the gateway answers within 20 s")
            .expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    out
}

/// An origin whose cacheable response shows the `Host` it was asked for.
async fn host_echo_origin() -> Origin {
    Origin::start(|seen| {
        Reply::ok(format!(
            "host={} path={}",
            seen.header("host").unwrap_or("<none>"),
            seen.uri
        ))
        .header("cache-control", "max-age=600")
    })
    .await
}

#[tokio::test]
async fn a_malformed_host_is_refused_and_cannot_poison_the_cache() {
    let origin = host_echo_origin().await;
    let gw = Gateway::single(&origin, "", "").await;
    for bad in [
        format!("127.0.0.1:{}:80", gw.port),
        format!("127.0.0.1:{}.", gw.port),
        format!("evil.test@127.0.0.1:{}", gw.port),
        "bad host".to_string(),
        "a/b".to_string(),
    ] {
        let req = format!("GET /page HTTP/1.1\r\nHost: {bad}\r\nConnection: close\r\n\r\n");
        let r = raw_exchange(gw.port, req.as_bytes(), 1).await;
        assert_eq!(r.len(), 1, "an answer for Host {bad:?}");
        assert_eq!(r[0].status, 400, "Host {bad:?}");
    }
    assert_eq!(origin.hits(), 0, "nothing malformed reached the origin");

    // A well-formed client afterwards gets a response built from its own Host.
    let want = format!("host=127.0.0.1:{} path=/page", gw.port);
    let r = client().get(gw.url("/page")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), want);
    let r = client().get(gw.url("/page")).send().await.expect("get");
    assert!(r.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .contains("hit"));
    assert_eq!(r.text().await.expect("body"), want);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn equivalent_authorities_share_one_entry_and_reach_the_origin_in_canonical_form() {
    let origin = host_echo_origin().await;
    let gw = Gateway::single(&origin, "", "").await;
    for host in [
        "Example.TEST",
        "example.test.",
        "example.test:80",
        "example.test:",
    ] {
        let req = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let r = raw_exchange(gw.port, req.as_bytes(), 1).await;
        assert_eq!(r[0].status, 200, "Host {host:?}");
        assert_eq!(
            String::from_utf8_lossy(&r[0].body),
            "host=example.test path=/x",
            "Host {host:?}"
        );
    }
    assert_eq!(origin.hits(), 1, "one authority, one stored response");
}

#[tokio::test]
async fn http11_without_host_or_with_two_hosts_is_a_400_and_http10_without_host_is_served() {
    let origin = host_echo_origin().await;
    let gw = Gateway::single(&origin, "", "").await;
    let r = raw_exchange(gw.port, b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", 1).await;
    assert_eq!(r[0].status, 400, "RFC 9112 section 3.2");
    let two = b"GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let r = raw_exchange(gw.port, two, 1).await;
    assert_eq!(r[0].status, 400, "two Host lines");
    assert_eq!(origin.hits(), 0);

    // HTTP/1.0 needs no Host: the request is for the address it reached, and the origin
    // (spoken to in HTTP/1.1) is told so. (The request is over 24 bytes: Pingora reads that
    // much to tell HTTP/1 from an h2c preface before it parses anything.)
    let r = raw_exchange(gw.port, b"GET /http10-page HTTP/1.0\r\n\r\n", 1).await;
    assert_eq!(r[0].status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r[0].body),
        format!("host=127.0.0.1:{} path=/http10-page", gw.port)
    );
}

#[tokio::test]
async fn an_absolute_form_target_must_agree_with_host() {
    let origin = host_echo_origin().await;
    let gw = Gateway::single(&origin, "", "").await;
    let req =
        b"GET http://Target.test/p HTTP/1.1\r\nHost: Target.test\r\nConnection: close\r\n\r\n";
    let r = raw_exchange(gw.port, req, 1).await;
    assert_eq!(r[0].status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r[0].body),
        "host=target.test path=/p"
    );
    let req = b"GET http://target.test/p HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let r = raw_exchange(gw.port, req, 1).await;
    assert_eq!(r[0].status, 400, "a target and a Host that disagree");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn fifty_pipelined_requests_are_answered_in_order_on_one_connection() {
    let origin = host_echo_origin().await;
    let gw = Gateway::single(&origin, "", "").await;
    // Ten distinct paths, five times each: misses, then hits from the cache, interleaved.
    let paths: Vec<String> = (0..50).map(|i| format!("/p{}", i % 10)).collect();
    let mut requests = String::new();
    for p in &paths {
        requests.push_str(&format!("GET {p} HTTP/1.1\r\nHost: pipe.test\r\n\r\n"));
    }
    let responses = raw_exchange(gw.port, requests.as_bytes(), paths.len()).await;
    assert_eq!(responses.len(), 50, "every pipelined request answered");
    for (p, r) in paths.iter().zip(&responses) {
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("host=pipe.test path={p}"),
            "responses come in request order"
        );
        assert_ne!(r.header("connection"), Some("close"));
    }
    assert_eq!(origin.hits(), 10);
    let logged = gw.metric("etagate_requests_total", &[]).await;
    assert_eq!(logged, 50.0, "each pipelined request is counted");
}
