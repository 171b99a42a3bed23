//! The `ProxyHttp` hooks' decisions, tested without the binary: a real Pingora session over an
//! in-memory stream, the hooks called as Pingora would call them.

use super::ctx::{Fwd, RequestCtx};
use super::*;
use crate::access_log::{self, AccessLogger};
use crate::cache::entry::Entry;
use crate::cache::key::PrimaryKey;
use crate::config::{self, ConfigSource};
use crate::http::freshness::Freshness;
use crate::http::vary::VarySpec;
use crate::metrics::CacheOutcome;
use crate::runtime::instantiate::instantiate;
use pingora_core::upstreams::peer::Peer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const CONFIG: &str = "listeners: [{ address: 127.0.0.1:8080 }]
upstreams:
  app: { servers: [127.0.0.1:8000] }
  api: { servers: [127.0.0.1:8001] }
routes:
  - { name: site, hosts: [example.com], upstream: app }
  - name: api
    hosts: [example.com]
    path: /api
    upstream: api
    etag: { enabled: false }
";

fn gateway() -> Gateway {
    let checked = config::parse("c", CONFIG, ConfigSource::QuickMode).expect("valid config");
    let live = LiveConfig::new(instantiate(checked, None).expect("instantiated"));
    let access_log = AccessLogger::open(&access_log::Settings {
        enabled: false,
        path: None,
        format: access_log::Format::Text,
        buffer: 16,
    })
    .expect("access log");
    Gateway::new(
        live,
        access_log,
        Arc::new(ProcessState::default()),
        Arc::new(SharedCache::new(8 << 20, 1 << 20, Duration::from_secs(1))),
        Arc::new(BufferBudget::default()),
    )
}

/// A session that has read `raw` as its request, and the client's end of the connection.
async fn session(raw: &str) -> (Session, DuplexStream) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(raw.as_bytes()).await.expect("write");
    let mut s = Session::new_h1(Box::new(server));
    assert!(s.read_request().await.expect("read request"), "a request");
    (s, client)
}

/// What the client has received so far.
async fn received(client: &mut DuplexStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf))
        .await
        .expect("a response within 2 s")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn an_invalid_authority_is_answered_400_and_never_routed() {
    let gw = gateway();
    let (mut s, mut client) = session("GET / HTTP/1.1\r\nHost: example.com:80:80\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert!(ctx.routed().is_err(), "no route for a refused request");
    assert_eq!(ctx.sent.status, 400);
    assert!(received(&mut client).await.starts_with("HTTP/1.1 400"));
}

#[tokio::test]
async fn no_route_is_a_404_that_keeps_the_host_for_the_log() {
    let gw = gateway();
    let (mut s, mut client) = session("GET / HTTP/1.1\r\nHost: Other.test\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert_eq!((ctx.sent.status, ctx.host()), (404, Some("other.test")));
    assert!(received(&mut client).await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn an_unsafe_method_takes_the_pipeline_without_the_cache() {
    let gw = gateway();
    let (mut s, _client) =
        session("POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(!gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert_eq!(ctx.routed().expect("routed").fwd, Some(Fwd::Bypass));
    gw.request_cache_filter(&mut s, &mut ctx)
        .expect("cache filter");
    assert!(!s.cache.enabled());
}

#[tokio::test]
async fn a_plain_get_takes_the_pipeline_with_the_cache_and_reaches_its_upstream() {
    let gw = gateway();
    let (mut s, _client) = session("GET /api/x HTTP/1.1\r\nHost: example.com\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(
        !gw.request_filter(&mut s, &mut ctx).await.expect("filter"),
        "ETags are off on /api and nothing is conditional: no subrequest"
    );
    let routed = ctx.routed().expect("routed");
    assert_eq!(
        (&*routed.route.name, routed.fwd),
        ("api", Some(Fwd::UriMiss))
    );
    gw.request_cache_filter(&mut s, &mut ctx)
        .expect("cache filter");
    assert!(s.cache.enabled());
    let peer = gw.upstream_peer(&mut s, &mut ctx).await.expect("peer");
    assert_eq!(peer.address().to_string(), "127.0.0.1:8001");
}

#[tokio::test]
async fn only_if_cached_without_a_stored_response_is_a_504() {
    let gw = gateway();
    let (mut s, mut client) =
        session("GET /x HTTP/1.1\r\nHost: example.com\r\nCache-Control: only-if-cached\r\n\r\n")
            .await;
    let mut ctx = RequestCtx::new();
    assert!(gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert_eq!(ctx.sent.status, 504);
    assert!(received(&mut client).await.starts_with("HTTP/1.1 504"));
}

#[tokio::test]
async fn a_fresh_stored_response_is_served_without_forwarding() {
    let gw = gateway();
    let mut header = ResponseHeader::build(200, None).expect("header");
    header.insert_header("etag", "\"v1\"").expect("etag");
    let entry = Entry::new(
        7,
        header,
        Bytes::from_static(b"stored body"),
        Freshness::plain(Duration::from_secs(60), SystemTime::now()),
        None,
        VarySpec::None,
        false,
    );
    let key = PrimaryKey::new("http", "example.com", "/page");
    gw.cache.store.insert(key.hash, Arc::new(entry));

    let (mut s, mut client) = session("GET /page HTTP/1.1\r\nHost: EXAMPLE.com\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert_eq!(ctx.sent.cache_outcome, Some(CacheOutcome::Hit));
    let text = received(&mut client).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("stored body"), "{text}");

    // The same stored response answers a matching If-None-Match with a 304.
    let (mut s, mut client) =
        session("GET /page HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"v1\"\r\n\r\n").await;
    let mut ctx = RequestCtx::new();
    assert!(gw.request_filter(&mut s, &mut ctx).await.expect("filter"));
    assert_eq!(ctx.sent.status, 304);
    assert!(received(&mut client).await.starts_with("HTTP/1.1 304"));
}

/// A member of a three-node fleet whose peers are addresses nothing listens on.
fn fleet_gateway() -> (Gateway, Arc<Fleet>) {
    let dir = std::env::temp_dir().join(format!("etagate-hook-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "0123456789abcdef0123").expect("secret");
    let text = format!(
        "{CONFIG}cluster:\n  node: etagate-a\n  listen: 127.0.0.1:1\n  secret_file: {}\n  peers:\n    - {{ name: etagate-b, address: '127.0.0.1:2' }}\n    - {{ name: etagate-c, address: '127.0.0.1:3' }}\n",
        secret.display()
    );
    let checked = config::parse("c", &text, ConfigSource::QuickMode).expect("valid config");
    let runtime = instantiate(checked, None).expect("instantiated");
    let spec = runtime.config.cluster.clone().expect("cluster");
    let fleet = Arc::new(Fleet::new(
        &spec,
        runtime.cluster_secret.as_deref().expect("secret"),
    ));
    let live = LiveConfig::new(runtime);
    let access_log = AccessLogger::open(&access_log::Settings {
        enabled: false,
        path: None,
        format: access_log::Format::Text,
        buffer: 16,
    })
    .expect("access log");
    let cache = Arc::new(SharedCache::new(8 << 20, 1 << 20, Duration::from_secs(1)));
    let state = Arc::new(ProcessState::default());
    let control = Arc::new(
        Control::new(
            live.clone(),
            access_log.clone(),
            state.clone(),
            cache.clone(),
        )
        .with_fleet(fleet.clone()),
    );
    let gw = Gateway::new(
        live,
        access_log,
        state,
        cache,
        Arc::new(BufferBudget::default()),
    )
    .in_fleet(fleet.clone(), control);
    (gw, fleet)
}

/// A path whose key another member owns.
fn path_owned_elsewhere(fleet: &Fleet) -> String {
    (0..1000)
        .map(|i| format!("/o{i}"))
        .find(|p| {
            let key = PrimaryKey::new("http", "example.com", p);
            fleet.owner(&key.hash).is_some()
        })
        .expect("some key belongs to another member")
}

#[tokio::test]
async fn a_key_another_member_owns_goes_to_that_member_without_the_local_cache() {
    let (gw, fleet) = fleet_gateway();
    let path = path_owned_elsewhere(&fleet);
    let raw = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"x\"\r\n\r\n");
    let (mut s, _client) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    assert!(
        !gw.request_filter(&mut s, &mut ctx).await.expect("filter"),
        "forwarded"
    );
    let owner = ctx
        .routed()
        .expect("routed")
        .owner
        .clone()
        .expect("an owner");
    assert_eq!(ctx.routed().expect("routed").fwd, Some(Fwd::Owner));
    gw.request_cache_filter(&mut s, &mut ctx)
        .expect("cache filter");
    assert!(
        !s.cache.enabled(),
        "this node keeps no copy of another member's keys"
    );
    let peer = gw.upstream_peer(&mut s, &mut ctx).await.expect("peer");
    assert_eq!(peer.address().to_string(), owner.addr.to_string());
    let mut up = s.req_header().clone();
    gw.upstream_request_filter(&mut s, &mut up, &mut ctx)
        .await
        .expect("upstream request");
    assert_eq!(
        up.headers["if-none-match"], "\"x\"",
        "the owner answers the conditional"
    );
    assert_eq!(up.headers[peer_auth::PEER_HEADER], "etagate-a");
    assert!(up.headers.contains_key(peer_auth::AUTH_HEADER));
}

#[tokio::test]
async fn credentials_forged_peer_headers_and_forwarded_requests_are_decided_here() {
    let (gw, fleet) = fleet_gateway();
    let path = path_owned_elsewhere(&fleet);
    // Credentials: straight to the origin from this node.
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nAuthorization: Basic eDp5\r\n\r\n");
    let (mut s, _c) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    gw.request_filter(&mut s, &mut ctx).await.expect("filter");
    assert!(ctx.routed().expect("routed").owner.is_none());
    // Forged peer headers on a public listener: removed, the request is a client's.
    let raw = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\netagate-peer: etagate-b\r\netagate-peer-auth: 1.00\r\n\r\n");
    let (mut s, _c) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    gw.request_filter(&mut s, &mut ctx).await.expect("filter");
    assert!(!s.req_header().headers.contains_key(peer_auth::PEER_HEADER));
    let routed = ctx.routed().expect("routed");
    assert!(!routed.via_peer && routed.owner.is_some());
    // The peer listener without a valid proof: 403, never routed.
    let peers = gw.for_peers();
    let (mut s, mut client) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    assert!(peers
        .request_filter(&mut s, &mut ctx)
        .await
        .expect("filter"));
    assert!(ctx.routed().is_err());
    assert!(received(&mut client).await.starts_with("HTTP/1.1 403"));
    // With a valid proof: answered here, never forwarded again.
    let [(p, node), (a, proof)] = fleet.credentials();
    let raw = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n{p}: {node}\r\n{a}: {proof}\r\netagate-peer-scheme: https\r\n\r\n");
    let (mut s, _c) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    peers
        .request_filter(&mut s, &mut ctx)
        .await
        .expect("filter");
    let routed = ctx.routed().expect("routed");
    assert!(routed.via_peer && routed.owner.is_none());
    assert_eq!(routed.scheme, "https", "keyed with the client's scheme");
}

#[tokio::test]
async fn an_owner_that_refuses_is_marked_down_and_its_keys_fail_over() {
    let (gw, fleet) = fleet_gateway();
    let path = path_owned_elsewhere(&fleet);
    let raw = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let (mut s, _c) = session(&raw).await;
    let mut ctx = RequestCtx::new();
    gw.request_filter(&mut s, &mut ctx).await.expect("filter");
    let first = ctx.routed().expect("routed").owner.clone().expect("owner");
    let peer = gw.upstream_peer(&mut s, &mut ctx).await.expect("peer");
    let e = Error::new(ErrorType::ConnectRefused);
    let e = gw.fail_to_connect(&mut s, &peer, &mut ctx, e);
    assert!(e.retry(), "retried elsewhere");
    assert!(!first.is_up(), "marked down");
    let next = ctx.routed().expect("routed").owner.clone();
    assert!(
        next.as_ref().is_none_or(|n| n.addr != first.addr),
        "not the failed owner again"
    );
    let key = PrimaryKey::new("http", "example.com", &path);
    assert!(fleet.owner(&key.hash).is_none_or(|m| m.addr != first.addr));
}
