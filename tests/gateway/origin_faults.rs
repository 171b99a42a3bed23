//! Origins that misbehave: silence after the header, more body than announced, broken chunked
//! framing, an answer before the request body was read, a connection closed mid-response.
//!
//! Whatever the fault, a client never gets a partial body that looks complete (a clean 502/504
//! when nothing was sent yet; a response cut short and a closed connection when the header
//! had already gone out), no partial body gets a content ETag or a place in the cache, and
//! nothing is left behind: the hashing buffer is empty and the next request for the URL is a
//! miss the origin answers.
//!
//! Each fault is tried with a body etagate holds back to hash (under the route's
//! `etag.max_buffer` of 1 KiB) and, where it matters, with one it streams (over it). The
//! origins here speak raw bytes ([`raw::RawOrigin`]): no HTTP library writes broken framing.

use crate::common::raw::{self, RawOrigin, RawResponse, Script};
use crate::common::*;
use std::time::Duration;

/// Under the route's `etag.max_buffer`: held back, hashed, then sent whole.
const HASHED: usize = 500;
/// Over it: streamed as it arrives.
const STREAMED: usize = 20_000;
/// Longer than the gateway's read timeout (1 s): an origin that says nothing more.
const STALL: Duration = Duration::from_secs(30);
/// A client gets its answer, or sees the connection close, within this.
const DEADLINE: Duration = Duration::from_secs(5);

/// etagate with a 1 s upstream read timeout, a 1 KiB `etag.max_buffer` and a cache lock
/// longer than [`DEADLINE`] (a fill that never let go of its key would make the next request
/// wait past it).
async fn gateway(origin: &RawOrigin) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n  app:\n    servers: [{}]\n    timeout: {{ connect: 1s, read: 1s }}\nroutes:\n  - name: main\n    upstream: app\n    etag: {{ max_buffer: 1KiB }}\ncache:\n  lock_timeout: 10s\n",
        origin.addr
    ))
    .await
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A cacheable response header announcing `len` bytes; the connection is kept alive.
fn header_with_length(len: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nContent-Length: {len}\r\n\r\n")
}

/// A cacheable response header for a chunked body.
const CHUNKED_HEADER: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A correct, whole response; the origin closes the connection after it.
fn whole(body: &[u8]) -> Script {
    Script::new()
        .write(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ))
        .write(body)
}

/// An origin whose first answer is `fault` and every later one `body`, whole.
async fn faulty_once(fault: Script, body: &[u8]) -> RawOrigin {
    let body = body.to_vec();
    RawOrigin::start(move |n, _| if n == 1 { fault.clone() } else { whole(&body) }).await
}

/// Nothing was sent before the fault: a whole, short error response, without a content ETag.
fn assert_clean_error(r: &RawResponse, status: u16) {
    assert!(
        r.elapsed < DEADLINE,
        "an answer within {DEADLINE:?}; got {r:?}"
    );
    assert_eq!(r.status, status, "got {r:?}");
    assert!(r.complete, "the error response itself is whole: {r:?}");
    assert_eq!(r.header("etag"), None);
}

/// An origin went silent before etagate sent anything: a timely gateway error, whole and
/// without a content ETag. 504 is the right one, as for an origin silent before its header;
/// etagate answers 502 (see
/// `an_origin_silent_after_its_header_gets_the_504_one_silent_before_it_gets`).
fn assert_timely_gateway_error(r: &RawResponse) {
    assert!(
        matches!(r.status, 502 | 504),
        "a gateway error within {DEADLINE:?}; got {r:?}"
    );
    assert_clean_error(r, r.status);
}

/// The header was out before the fault: the client sees the body end short of what its
/// framing promised, and the connection close, soon after the origin failed.
fn assert_cut_short(r: &RawResponse, body: &[u8]) {
    assert!(
        r.closed && r.elapsed < DEADLINE,
        "the connection closes within {DEADLINE:?}; took {:?}",
        r.elapsed
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.complete,
        "the body must not look complete: got {} bytes, framing {:?}",
        r.body.len(),
        r.header("content-length").or(r.header("transfer-encoding"))
    );
    assert!(r.body.len() < body.len());
    assert!(
        body.starts_with(&r.body),
        "what arrived is the start of the body"
    );
    assert_eq!(r.header("etag"), None);
}

/// After the fault nothing stays behind: no bytes held for hashing, nothing stored or being
/// stored, and the next request for `path` is a miss the origin answers whole.
async fn assert_forgotten(gw: &Gateway, origin: &RawOrigin, path: &str, body: &[u8]) {
    let held = |text: &str| {
        [
            "etagate_etag_buffer_bytes",
            "etagate_cache_objects",
            "etagate_cache_bytes",
        ]
        .map(|m| (m, metric_value(text, m, &[])))
    };
    // A failed fill may be let go of just after the client saw the end of its response.
    let started = std::time::Instant::now();
    let mut now = held(&gw.scrape().await);
    while now.iter().any(|(_, v)| *v != 0.0) && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = held(&gw.scrape().await);
    }
    assert!(
        now.iter().all(|(_, v)| *v == 0.0),
        "nothing held after the fault: {now:?}"
    );

    let before = origin.hits();
    let next = raw::get(gw.port, path, DEADLINE).await;
    assert_eq!(next.status, 200, "got {next:?}");
    assert_eq!(
        next.header("cache-status"),
        Some("etagate; fwd=uri-miss; fwd-status=200; stored"),
        "nothing of the faulty response was stored"
    );
    assert_eq!(origin.hits(), before + 1, "the origin was asked again");
    assert!(next.complete);
    assert_eq!(next.body, body);
    if body.len() <= 1024 {
        assert_eq!(next.header("etag"), Some(content_etag(body).as_str()));
    }
}

// --- An origin that sends its header, then nothing ---

#[tokio::test]
async fn an_origin_silent_after_its_header_gets_a_timely_gateway_error_and_nothing_is_stored() {
    let body = body_of(HASHED);
    let o = faulty_once(
        Script::new().write(header_with_length(HASHED)).wait(STALL),
        &body,
    )
    .await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/silent", DEADLINE).await;
    assert_timely_gateway_error(&r);
    assert_forgotten(&gw, &o, "/silent", &body).await;
}

#[tokio::test]
async fn an_origin_silent_after_part_of_a_hashed_body_gets_a_timely_gateway_error_and_nothing_is_stored(
) {
    let body = body_of(HASHED);
    let o = faulty_once(
        Script::new()
            .write(header_with_length(HASHED))
            .write(&body[..200])
            .wait(STALL),
        &body,
    )
    .await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/silent", DEADLINE).await;
    assert_timely_gateway_error(&r);
    assert_forgotten(&gw, &o, "/silent", &body).await;
}

#[tokio::test]
async fn an_origin_silent_after_the_header_of_a_body_over_max_buffer_gets_a_timely_gateway_error() {
    let body = body_of(STREAMED);
    let o = faulty_once(
        Script::new()
            .write(header_with_length(STREAMED))
            .wait(STALL),
        &body,
    )
    .await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/silent", DEADLINE).await;
    assert_timely_gateway_error(&r);
    assert_forgotten(&gw, &o, "/silent", &body).await;
}

#[tokio::test]
async fn an_origin_silent_after_its_header_gets_the_504_one_silent_before_it_gets() {
    let o = RawOrigin::start(|_, line| match line {
        l if l.starts_with("GET /before-header ") => Script::new().wait(STALL),
        _ => Script::new().write(header_with_length(HASHED)).wait(STALL),
    })
    .await;
    let gw = gateway(&o).await;
    let before = raw::get(gw.port, "/before-header", DEADLINE).await;
    assert_clean_error(&before, 504);
    let after = raw::get(gw.port, "/after-header", DEADLINE).await;
    assert_clean_error(&after, 504);
}

#[tokio::test]
async fn a_streamed_body_the_origin_stops_sending_is_cut_short_and_closed_within_the_read_timeout()
{
    let body = body_of(STREAMED);
    let o = faulty_once(
        Script::new()
            .write(header_with_length(STREAMED))
            .write(&body[..5_000])
            .wait(STALL),
        &body,
    )
    .await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/stalls", DEADLINE).await;
    assert_cut_short(&r, &body);
    assert_eq!(r.header("content-length"), Some("20000"));
    assert_eq!(
        r.body.len(),
        5_000,
        "everything the origin sent was relayed"
    );
    assert_forgotten(&gw, &o, "/stalls", &body).await;
}

// --- An origin that sends more than its Content-Length ---

/// The origin's first response to `/long` is followed, on the same connection, by bytes that
/// look like a whole second response (after `gap`); the connection then stays open, unread.
/// Every other request gets an honest answer on a connection of its own.
///
/// The response as its Content-Length frames it is whole: it is served, tagged and stored as
/// such. The bytes past it are no part of any response (RFC 9112 §6.3): the connection they
/// arrived on is not used again, so the next request reaches the origin itself.
async fn bytes_past_the_content_length(len: usize, gap: Duration) {
    let body = body_of(len);
    let smuggled =
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nCache-Control: max-age=60\r\n\r\nsmuggled";
    let first = Script::new()
        .write(header_with_length(len))
        .write(&body)
        .wait(gap)
        .write(smuggled)
        .wait(STALL);
    let long = body.clone();
    let o = RawOrigin::start(move |n, line| match line {
        l if l.starts_with("GET /next ") => whole(b"next"),
        _ if n == 1 => first.clone(),
        _ => whole(&long),
    })
    .await;
    let gw = gateway(&o).await;

    let r = raw::get(gw.port, "/long", DEADLINE).await;
    assert_eq!(r.status, 200, "got {r:?}");
    assert!(r.complete);
    assert_eq!(r.body, body, "the body as the Content-Length frames it");
    if len <= 1024 {
        assert_eq!(r.header("etag"), Some(content_etag(&body).as_str()));
    }

    // Past the gap, with the extra bytes waiting on the origin connection.
    tokio::time::sleep(gap * 2).await;
    let next = raw::get(gw.port, "/next", DEADLINE).await;
    assert_eq!(
        next.text(),
        "next",
        "the extra bytes were taken for the next response"
    );
    assert_eq!(
        o.requests().last().map(String::as_str),
        Some("GET /next HTTP/1.1"),
        "the origin answered the next request itself"
    );
    let again = raw::get(gw.port, "/long", DEADLINE).await;
    assert!(
        again
            .header("cache-status")
            .is_some_and(|s| s.starts_with("etagate; hit;")),
        "got {again:?}"
    );
    assert_eq!(again.body, body);
}

#[tokio::test]
async fn bytes_past_the_content_length_of_a_hashed_body_are_never_served() {
    bytes_past_the_content_length(HASHED, Duration::ZERO).await;
}

#[tokio::test]
async fn bytes_past_the_content_length_of_a_streamed_body_are_never_served() {
    bytes_past_the_content_length(STREAMED, Duration::ZERO).await;
}

/// Extra bytes that arrive while the connection waits in etagate's pool. (Bytes that arrive
/// after etagate has sent the next request on it cannot be told from that request's answer:
/// no HTTP/1.1 client can, so the test waits for them.)
#[tokio::test]
async fn bytes_an_origin_sends_after_a_complete_response_are_never_served_as_the_next_one() {
    bytes_past_the_content_length(HASHED, Duration::from_millis(300)).await;
}

// --- Invalid chunked framing ---

/// A valid chunk, then `bad` framing followed by a valid last chunk (so that a parser that
/// skipped the bad part would see a complete body); the connection then stays open.
fn chunked_with(first: &[u8], bad: &str) -> Script {
    Script::new()
        .write(CHUNKED_HEADER)
        .write(format!("{:x}\r\n", first.len()))
        .write(first)
        .write("\r\n")
        // The first chunk is on its way before the bad framing.
        .wait(Duration::from_millis(200))
        .write(bad)
        .write("0\r\n\r\n")
        .wait(STALL)
}

#[tokio::test]
async fn a_chunk_size_that_is_not_hex_is_a_502_and_nothing_is_stored() {
    let body = body_of(HASHED);
    let o = faulty_once(chunked_with(&body[..100], "zz\r\nworld\r\n"), &body).await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/bad-size", DEADLINE).await;
    assert_clean_error(&r, 502);
    assert_forgotten(&gw, &o, "/bad-size", &body).await;
}

#[tokio::test]
async fn a_chunk_longer_than_its_size_is_a_502_and_nothing_is_stored() {
    let body = body_of(HASHED);
    let o = faulty_once(chunked_with(&body[..100], "5\r\nhello world\r\n"), &body).await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/long-chunk", DEADLINE).await;
    assert_clean_error(&r, 502);
    assert_forgotten(&gw, &o, "/long-chunk", &body).await;
}

#[tokio::test]
async fn bad_chunked_framing_after_max_buffer_ends_the_response_without_its_last_chunk() {
    let body = body_of(STREAMED);
    for (path, bad) in [
        ("/bad-size", "zz\r\nworld\r\n"),
        ("/long-chunk", "5\r\nhello world\r\n"),
    ] {
        let o = faulty_once(chunked_with(&body[..5_000], bad), &body).await;
        let gw = gateway(&o).await;
        let r = raw::get(gw.port, path, DEADLINE).await;
        assert_cut_short(&r, &body);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.body.len(), 5_000, "{path}: the valid chunk was relayed");
        assert_forgotten(&gw, &o, path, &body).await;
    }
}

// --- An origin that answers before reading the request body ---

/// A POST of 8 MiB, more than the socket buffers between etagate and the origin hold.
async fn post_large(gw: &Gateway, path: &str) -> RawResponse {
    let len = 8 << 20;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    );
    raw::exchange(gw.port, head, vec![b'p'; len], DEADLINE).await
}

/// An origin that answers a POST with `answer` without reading its body, waits `then`
/// without reading either, and closes; it answers a GET with `get_body`.
async fn answering_posts_unread(
    answer: &'static str,
    then: Duration,
    get_body: &[u8],
) -> RawOrigin {
    let get_body = get_body.to_vec();
    RawOrigin::start(move |_, line| {
        if line.starts_with("POST ") {
            Script::new().write(answer).wait(then)
        } else {
            whole(&get_body)
        }
    })
    .await
}

#[tokio::test]
async fn an_origin_refusing_a_large_post_with_413_before_reading_it_has_its_413_relayed() {
    let form = body_of(HASHED);
    // Closing with the body unread makes the origin's side reset the connection.
    let o = answering_posts_unread(
        "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: close\r\n\r\nbody too large",
        Duration::from_millis(200),
        &form,
    )
    .await;
    let gw = gateway(&o).await;
    let r = post_large(&gw, "/upload").await;
    assert!(r.elapsed < DEADLINE, "took {:?}", r.elapsed);
    assert_eq!(r.status, 413, "got {r:?}");
    assert!(r.complete);
    assert_eq!(r.text(), "body too large");
    assert_eq!(o.requests(), ["POST /upload HTTP/1.1"]);
    assert_forgotten(&gw, &o, "/upload", &form).await;
}

#[tokio::test]
async fn an_origin_answering_a_large_post_before_reading_it_has_its_answer_relayed_in_bounded_time()
{
    let form = body_of(HASHED);
    // Open and unread past the read timeout, which also bounds writing the request.
    let o = answering_posts_unread(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nContent-Length: 8\r\n\r\naccepted",
        Duration::from_secs(3),
        &form,
    )
    .await;
    let gw = gateway(&o).await;
    let r = post_large(&gw, "/upload").await;
    assert_eq!(r.status, 200, "got {r:?}");
    assert!(r.complete);
    assert_eq!(r.text(), "accepted");
    assert!(
        r.closed && r.elapsed < DEADLINE,
        "with its body unsent the client's connection is closed, within {DEADLINE:?}; took {:?}",
        r.elapsed
    );
    assert_forgotten(&gw, &o, "/upload", &form).await;
}

// --- An origin that closes the connection mid-response ---

#[tokio::test]
async fn an_origin_closing_right_after_its_header_is_a_502_and_nothing_is_stored() {
    let body = body_of(HASHED);
    let o = faulty_once(Script::new().write(header_with_length(HASHED)), &body).await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/closes", DEADLINE).await;
    assert_clean_error(&r, 502);
    assert_forgotten(&gw, &o, "/closes", &body).await;
}

#[tokio::test]
async fn an_origin_closing_right_after_the_header_of_a_body_over_max_buffer_is_a_502() {
    let body = body_of(STREAMED);
    let o = faulty_once(Script::new().write(header_with_length(STREAMED)), &body).await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/closes", DEADLINE).await;
    assert_clean_error(&r, 502);
    assert_forgotten(&gw, &o, "/closes", &body).await;
}

#[tokio::test]
async fn a_streamed_body_the_origin_cuts_off_is_short_for_the_client_and_its_connection_closes() {
    let body = body_of(STREAMED);
    let o = faulty_once(
        Script::new()
            .write(header_with_length(STREAMED))
            .write(&body[..5_000]),
        &body,
    )
    .await;
    let gw = gateway(&o).await;
    let r = raw::get(gw.port, "/cut", DEADLINE).await;
    assert_cut_short(&r, &body);
    assert_eq!(r.header("content-length"), Some("20000"));
    assert_forgotten(&gw, &o, "/cut", &body).await;
}
