//! The gateway proxies: routing, load balancing, failures, forwarding rules, quick mode.

use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn routes_by_exact_host_wildcard_host_and_longest_path_prefix() {
    let a = Origin::fixed("a", &[("x-origin", "a")]).await;
    let b = Origin::fixed("b", &[("x-origin", "b")]).await;
    let c = Origin::fixed("c", &[("x-origin", "c")]).await;
    let d = Origin::fixed("d", &[("x-origin", "d")]).await;
    let config = [
        "upstreams:".to_string(),
        format!("  a: {{ servers: [{}] }}", a.addr),
        format!("  b: {{ servers: [{}] }}", b.addr),
        format!("  c: {{ servers: [{}] }}", c.addr),
        format!("  d: {{ servers: [{}] }}", d.addr),
        "routes:".to_string(),
        "  - { name: fallback, upstream: a }".to_string(),
        "  - { name: api, path: /api, upstream: b }".to_string(),
        "  - { name: shop, hosts: [shop.example.com], upstream: c }".to_string(),
        "  - { name: tenants, hosts: ['*.example.com'], upstream: d }".to_string(),
    ]
    .join("\n");
    let gw = Gateway::start(&format!("{config}\n")).await;
    let http = client();
    let origin_for = |host: &'static str, path: &'static str| {
        let http = http.clone();
        let url = gw.url(path);
        async move {
            let r = http
                .get(url)
                .header("host", host)
                .send()
                .await
                .expect("request");
            r.headers()["x-origin"].to_str().expect("ascii").to_string()
        }
    };
    assert_eq!(origin_for("other.test", "/").await, "a");
    assert_eq!(origin_for("other.test", "/api/users").await, "b");
    assert_eq!(
        origin_for("other.test", "/apiary").await,
        "a",
        "prefixes match whole segments"
    );
    assert_eq!(
        origin_for("shop.example.com", "/api/x").await,
        "c",
        "an exact host beats any path on a wildcard host"
    );
    assert_eq!(
        origin_for("SHOP.example.com:8080", "/").await,
        "c",
        "hosts match without case or port"
    );
    assert_eq!(origin_for("eu.example.com", "/").await, "d");
    assert_eq!(
        origin_for("example.com", "/").await,
        "a",
        "*.example.com does not match the bare domain"
    );
}

#[tokio::test]
async fn a_request_no_route_matches_gets_404() {
    let a = Origin::fixed("a", &[]).await;
    let gw = Gateway::start(&format!(
        "upstreams:\n  a: {{ servers: [{}] }}\nroutes:\n  - {{ name: only, hosts: [only.test], upstream: a }}\n",
        a.addr
    ))
    .await;
    let r = client()
        .get(gw.url("/"))
        .header("host", "else.test")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn load_balances_round_robin_across_two_origins() {
    let a = Origin::fixed("a", &[("cache-control", "no-store")]).await;
    let b = Origin::fixed("b", &[("cache-control", "no-store")]).await;
    let gw = Gateway::start(&format!(
        "upstreams:\n  app: {{ servers: [{}, {}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        a.addr, b.addr
    ))
    .await;
    let http = client();
    for _ in 0..10 {
        let r = http.get(gw.url("/lb")).send().await.expect("request");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(a.hits() + b.hits(), 10);
    assert_eq!(a.hits(), 5, "round robin splits evenly");
    assert_eq!(b.hits(), 5);
}

#[tokio::test]
async fn a_refused_server_is_skipped_for_the_next_one() {
    let b = Origin::fixed("b", &[("cache-control", "no-store")]).await;
    let dead = free_port();
    let gw = Gateway::start(&format!(
        "upstreams:\n  app: {{ servers: [127.0.0.1:{dead}, {}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        b.addr
    ))
    .await;
    let http = client();
    for _ in 0..4 {
        let r = http.get(gw.url("/")).send().await.expect("request");
        assert_eq!(r.status(), 200, "a dead server costs a retry, not an error");
    }
}

/// A gateway whose only route points at a port nothing listens on.
async fn gateway_to_a_dead_upstream() -> Gateway {
    let dead = free_port();
    Gateway::start(&format!(
        "upstreams:\n  gone: {{ servers: [127.0.0.1:{dead}] }}\nroutes:\n  - {{ name: main, upstream: gone }}\n"
    ))
    .await
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502_with_a_short_body_and_a_log_line() {
    let gw = gateway_to_a_dead_upstream().await;
    let r = client().get(gw.url("/x")).send().await.expect("request");
    assert_eq!(r.status(), 502);
    let body = r.text().await.expect("body");
    assert!(body.starts_with("502 Bad Gateway"), "{body}");
    assert!(body.len() < 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    assert!(log.contains("route=main upstream=gone"), "{log}");
}

#[tokio::test]
async fn a_502_leaves_the_client_connection_usable() {
    // A keep-alive client reuses the connection after an error response that did not say
    // `Connection: close`; a gateway that closes it anyway makes the client's next request
    // fail ("socket hang up").
    let gw = gateway_to_a_dead_upstream().await;
    let mut conn = SingleConn::open(gw.port).await;
    let first = conn
        .get("/a")
        .await
        .expect("a response to the first request");
    assert_eq!(first.status(), 502);
    assert_ne!(
        first.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let second = conn
        .get("/b")
        .await
        .expect("the connection a 502 was sent on without `Connection: close` still answers");
    assert_eq!(second.status(), 502);
}

#[tokio::test]
async fn a_request_the_origin_drops_reaches_it_at_most_three_times() {
    // /ok answers slowly, so concurrent requests open several connections, which the gateway
    // then keeps in its pool; /drop closes the connection unanswered.
    let o = Origin::start(|s| {
        if s.uri.starts_with("/drop") {
            Reply::drop_connection()
        } else {
            Reply::ok("ok")
                .header("cache-control", "no-store")
                .delay(Duration::from_millis(200))
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let warm: Vec<_> = (0..5)
        .map(|i| tokio::spawn(http.get(gw.url(&format!("/ok/{i}"))).send()))
        .collect();
    for r in warm {
        assert_eq!(r.await.expect("task").expect("request").status(), 200);
    }
    let r = http.get(gw.url("/drop")).send().await.expect("request");
    assert_eq!(r.status(), 502);
    let n = o.seen().iter().filter(|s| s.uri == "/drop").count();
    assert!(
        (1..=3).contains(&n),
        "the origin saw the dropped request {n} times; retries on pooled connections are bounded at 2"
    );
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let slow = Origin::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let gw = Gateway::start(&format!(
        "upstreams:\n  slow: {{ servers: [{}], timeout: {{ connect: 1s, read: 300ms }} }}\nroutes:\n  - {{ name: main, upstream: slow }}\n",
        slow.addr
    ))
    .await;
    let started = std::time::Instant::now();
    let r = client().get(gw.url("/x")).send().await.expect("request");
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the read timeout cut the wait"
    );
    assert!(r
        .text()
        .await
        .expect("body")
        .starts_with("504 Gateway Timeout"));
}

#[tokio::test]
async fn forwards_host_appends_x_forwarded_for_and_drops_unkeyed_and_hop_by_hop_headers() {
    let o = Origin::fixed("ok", &[("cache-control", "no-store")]).await;
    let gw = Gateway::single(&o, "", "").await;
    client()
        .get(gw.url("/fwd"))
        .header("host", "site.test")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-proto", "https")
        .header("x-original-url", "/admin")
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .send()
        .await
        .expect("request");
    let seen = o.last();
    assert_eq!(seen.header("host"), Some("site.test"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), None);
    assert_eq!(seen.header("x-original-url"), None);
    assert_eq!(
        seen.header("x-secret"),
        None,
        "headers named in Connection are hop-by-hop"
    );
}

#[tokio::test]
async fn an_upstream_can_set_the_host_header() {
    let o = Origin::fixed("ok", &[]).await;
    let gw = Gateway::start(&format!(
        "upstreams:\n  app: {{ servers: [{}], host: internal.app }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        o.addr
    ))
    .await;
    client()
        .get(gw.url("/"))
        .header("host", "public.test")
        .send()
        .await
        .expect("request");
    assert_eq!(o.last().header("host"), Some("internal.app"));
}

#[tokio::test]
async fn streams_large_request_bodies_to_the_origin_intact() {
    let o = Origin::start(|s| {
        Reply::ok(format!("{}", s.body.len())).header("cache-control", "no-store")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let r = client()
        .post(gw.url("/upload"))
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(r.text().await.expect("body"), "3000000");
    assert_eq!(o.last().body.as_ref(), body.as_slice());
}

#[tokio::test]
async fn quick_mode_proxies_without_a_config_file() {
    let o = Origin::fixed("hello from origin", &[]).await;
    let gw = Gateway::quick(&[&o]).await;
    let r = client().get(gw.url("/")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "hello from origin");
}

#[tokio::test]
async fn speaks_http2_with_prior_knowledge_downstream() {
    let o = Origin::fixed("over h2", &[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = h2.get(gw.url("/h2")).send().await.expect("request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.text().await.expect("body"), "over h2");
    assert!(
        o.last().header("host").is_some(),
        "the origin gets a Host header"
    );
}

#[tokio::test]
async fn readiness_and_health_endpoints_answer_on_the_admin_listener_only() {
    let o = Origin::fixed("ok", &[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    assert_eq!(
        http.get(gw.admin_url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(gw.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    // The public listener proxies /metrics like any path; it never exposes etagate's own.
    http.get(gw.url("/metrics")).send().await.expect("request");
    assert_eq!(o.last().uri, "/metrics");
}

#[tokio::test]
async fn a_taken_address_is_reported_instead_of_retried_forever() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = run_etagate(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--upstream",
        "127.0.0.1:1",
        "--admin",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Everything the gateway writes on a new connection for `GET path`, until it closes it.
async fn wire_bytes(port: u16, path: &str) -> String {
    wire_bytes_as(port, path, "HTTP/1.1").await
}

/// The same, asking in `version`.
async fn wire_bytes_as(port: u16, path: &str, version: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!("GET {path} {version}\r\nHost: gateway.test\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 9110 §15.2 and RFC 8297: a `103 Early Hints` from the origin reaches an HTTP/1.1 client
/// before the final response, on the content-ETag path and the pass-through path alike, as
/// the origin sent it (no `Cache-Status` of its own); it is never stored, so a hit does not
/// replay it (RFC 9111 §3: only final responses are stored).
#[tokio::test]
async fn early_hints_reach_http1_clients_before_the_response_and_are_never_replayed() {
    use crate::common::raw::{RawOrigin, Script};
    let o = RawOrigin::start(|_, line| {
        let cc = if line.contains("/private") { "no-store" } else { "max-age=60" };
        Script::new()
            .write("HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
            .wait(Duration::from_millis(20))
            .write(format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: {cc}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhints"
            ))
    })
    .await;
    let g = Gateway::start(&format!(
        "upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        o.addr
    ))
    .await;
    let early =
        "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n";
    let miss = wire_bytes(g.port, "/page").await;
    assert!(miss.starts_with(early), "{miss}");
    assert!(
        miss.contains("ETag: \"b3-") && miss.ends_with("hints"),
        "{miss}"
    );
    let hit = wire_bytes(g.port, "/page").await;
    assert!(
        hit.starts_with("HTTP/1.1 200 OK\r\n"),
        "a hit replays no 103: {hit}"
    );
    assert!(hit.contains("Cache-Status: etagate; hit"), "{hit}");
    // no-store: the second request for the key takes the pass-through path.
    for _ in 0..2 {
        let passed = wire_bytes(g.port, "/private").await;
        assert!(passed.starts_with(early), "{passed}");
        assert!(passed.ends_with("hints"), "{passed}");
    }
    assert_eq!(o.hits(), 3);
    // HTTP/2: Pingora 0.9.1 drops interim responses there; the final one arrives intact.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = h2.get(g.url("/h2")).send().await.expect("h2 request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "hints");
}

/// RFC 9110 §15.2: an interim response is followed by a final one, so an origin that fails
/// after its 103 still gets the client a 502 (not a closed connection); and no 1xx goes to an
/// HTTP/1.0 client, which would take it for the answer.
#[tokio::test]
async fn after_early_hints_a_failure_still_answers_and_http10_clients_get_none() {
    use crate::common::raw::{RawOrigin, Script};
    let o = RawOrigin::start(|_, line| {
        let hints = Script::new()
            .write("HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
            .wait(Duration::from_millis(20));
        if line.contains("/fails") {
            hints
        } else {
            hints.write(
                "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhints",
            )
        }
    })
    .await;
    let g = Gateway::start(&format!(
        "upstreams:\n  app: {{ servers: [{}], timeout: {{ connect: 1s, read: 1s }} }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        o.addr
    ))
    .await;
    let failed = wire_bytes(g.port, "/fails").await;
    assert!(
        failed.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "{failed}"
    );
    assert!(
        failed.contains("\r\n\r\nHTTP/1.1 502 "),
        "a final answer after the hints: {failed}"
    );
    assert_eq!(
        g.metric(
            "etagate_requests_total",
            &[("route", "main"), ("status_class", "5xx")]
        )
        .await,
        1.0
    );
    for path in ["/ok", "/ok"] {
        let old = wire_bytes_as(g.port, path, "HTTP/1.0").await;
        assert!(
            old.starts_with("HTTP/1.1 200 OK\r\n"),
            "no 103 for HTTP/1.0: {old}"
        );
        assert!(old.ends_with("hints"), "{old}");
    }
}
