//! Bounds under overload and against clients that hold connections: fast refusals with
//! `Retry-After` instead of queues, and deadlines instead of waiting forever.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway in front of `origin` with extra `server:` keys (indented two spaces).
async fn gateway_with_server_keys(origin: &Origin, server_keys: &str) -> Gateway {
    let ports = Ports::new();
    let preamble = ports
        .preamble()
        .replace("server:\n", &format!("server:\n{server_keys}"));
    let config = format!(
        "{preamble}upstreams:\n  app:\n    servers: [{}]\n    timeout: {{ connect: 1s, read: 5s }}\nroutes:\n  - name: main\n    upstream: app\n",
        origin.addr_string()
    );
    Gateway::start_with(ports, &config, &[]).await
}

/// Read until the peer closes (or `limit` passes); what arrived.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn connections_past_max_connections_get_a_503_with_retry_after() {
    let origin = Origin::fixed("ok", &[]).await;
    let gw = gateway_with_server_keys(&origin, "  max_connections: 3\n").await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(
            TcpStream::connect(("127.0.0.1", gw.port))
                .await
                .expect("connect"),
        );
    }
    // Give the gateway a moment to take all three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    extra
        .write_all(b"GET /over HTTP/1.1\r\nHost: limits.test\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut extra, Duration::from_secs(5))
        .await
        .expect("an answer, then a close, within 5 s");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    assert_eq!(origin.hits(), 0);

    // A connection that closes frees its place.
    idle.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client().get(gw.url("/after")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        gw.metric("etagate_client_connections_refused_total", &[])
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_header_is_cut_off_at_header_timeout() {
    let origin = Origin::fixed("ok", &[]).await;
    let gw = gateway_with_server_keys(&origin, "  header_timeout: 1s\n").await;
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    let started = Instant::now();
    let header = b"GET /slow HTTP/1.1\r\nHost: limits.test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in header.iter().cycle().take(40) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        // Meanwhile a well-behaved client is served.
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(150), slow.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    let waited = started.elapsed();
    assert!(closed, "the trickling connection was closed");
    assert!(
        waited < Duration::from_secs(3),
        "closed after {waited:?}, not at the 1 s deadline"
    );
    let r = client().get(gw.url("/fast")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        origin.hits(),
        1,
        "the slow request never reached the origin"
    );
    assert!(gw.metric("etagate_client_header_timeouts_total", &[]).await >= 1.0);
}

#[tokio::test]
async fn an_upstream_at_max_requests_answers_503_with_retry_after_at_once() {
    let origin = Origin::start(|_| Reply::ok("slow").delay(Duration::from_secs(3))).await;
    let body = format!(
        "upstreams:\n  app:\n    servers: [{}]\n    max_requests: 1\n    timeout: {{ connect: 1s, read: 5s }}\nroutes:\n  - name: main\n    upstream: app\n",
        origin.addr_string()
    );
    let gw = Gateway::start(&body).await;
    let http = client();
    let first = tokio::spawn({
        let (http, url) = (http.clone(), gw.url("/first"));
        async move { http.get(url).send().await.expect("first").status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let second = http.get(gw.url("/second")).send().await.expect("second");
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not queued behind the slow request"
    );
    assert_eq!(first.await.expect("join"), 200);
    assert_eq!(origin.hits(), 1);
    assert_eq!(
        gw.metric(
            "etagate_origin_requests_total",
            &[("upstream", "app"), ("outcome", "limited")]
        )
        .await,
        1.0
    );
    // The place is free again.
    let third = http.get(gw.url("/third")).send().await.expect("third");
    assert_eq!(third.status(), 200);
}
