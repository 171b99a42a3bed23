//! Content ETags and conditional requests, through the real gateway, against origins that send
//! no validators.

use crate::common::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn etag_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("etag")
        .map(|v| v.to_str().expect("ascii etag").to_string())
}

/// An origin that never caches (private) and sends no validators.
async fn private_origin(body: &'static str) -> Origin {
    Origin::fixed(
        body,
        &[("cache-control", "private"), ("content-type", "text/plain")],
    )
    .await
}

#[tokio::test]
async fn the_first_response_carries_the_blake3_content_etag() {
    let o = private_origin("hello, conditional world").await;
    let gw = Gateway::single(&o, "", "").await;
    let r = client().get(gw.url("/page")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(etag_of(&r), Some(content_etag(b"hello, conditional world")));
    assert_eq!(r.text().await.expect("body"), "hello, conditional world");
}

#[tokio::test]
async fn the_etag_is_stable_and_changes_with_the_content() {
    let version = Arc::new(AtomicUsize::new(1));
    let v = version.clone();
    let o = Origin::start(move |_| {
        Reply::ok(format!("version {}", v.load(Ordering::SeqCst)))
            .header("cache-control", "private")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let a = etag_of(&http.get(gw.url("/doc")).send().await.expect("a")).expect("etag");
    let b = etag_of(&http.get(gw.url("/doc")).send().await.expect("b")).expect("etag");
    assert_eq!(a, b, "same content, same tag");
    version.store(2, Ordering::SeqCst);
    let c = etag_of(&http.get(gw.url("/doc")).send().await.expect("c")).expect("etag");
    assert_ne!(a, c, "new content, new tag");
    assert_eq!(c, content_etag(b"version 2"));
    assert_eq!(o.hits(), 3, "private responses are fetched every time");
}

#[tokio::test]
async fn if_none_match_answers_304_for_lists_weak_tags_and_star() {
    let o = private_origin("body").await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let tag = content_etag(b"body");
    let weak = format!("W/{tag}");
    let list = format!("\"x\", {tag}, \"y\"");
    for inm in [tag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let r = http
            .get(gw.url("/r"))
            .header("if-none-match", inm)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 304, "If-None-Match: {inm}");
        assert_eq!(etag_of(&r).as_deref(), Some(tag.as_str()));
        assert_eq!(r.bytes().await.expect("body").len(), 0);
    }
    let r = http
        .get(gw.url("/r"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_304_carries_only_the_fields_rfc9110_lists() {
    let o = Origin::fixed(
        "representation",
        &[
            ("cache-control", "private, max-age=60"),
            ("content-type", "text/html"),
            ("content-location", "/canonical"),
            ("expires", "Thu, 01 Dec 2094 16:00:00 GMT"),
            ("vary", "accept-language"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("x-powered-by", "naive-app"),
        ],
    )
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let r = client()
        .get(gw.url("/rep"))
        .header("if-none-match", content_etag(b"representation"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 304);
    let h = r.headers();
    for present in [
        "etag",
        "cache-control",
        "content-location",
        "date",
        "expires",
        "vary",
        "last-modified",
    ] {
        assert!(h.contains_key(present), "304 lacks {present}");
    }
    for absent in [
        "content-type",
        "content-length",
        "x-powered-by",
        "transfer-encoding",
    ] {
        assert!(!h.contains_key(absent), "304 carries {absent}");
    }
}

#[tokio::test]
async fn an_uncacheable_response_still_saves_the_download_and_counts_as_origin_304() {
    let o = Origin::fixed(
        "your account",
        &[("cache-control", "private"), ("set-cookie", "session=abc")],
    )
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let r = client()
        .get(gw.url("/account"))
        .header("if-none-match", content_etag(b"your account"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 304);
    assert_eq!(o.hits(), 1, "the origin was asked");
    assert_eq!(
        r.headers()
            .get("set-cookie")
            .map(|v| v.to_str().expect("ascii")),
        Some("session=abc"),
        "a cookie set for this very request is not lost"
    );
    assert_eq!(
        gw.metric("etagate_not_modified_total", &[("source", "origin")])
            .await,
        1.0
    );
    assert_eq!(
        gw.metric("etagate_not_modified_saved_bytes_total", &[])
            .await,
        "your account".len() as f64
    );
}

#[tokio::test]
async fn a_fresh_cached_response_answers_304_without_the_origin() {
    let o = Origin::fixed("cached page", &[("cache-control", "max-age=300")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let first = http.get(gw.url("/p")).send().await.expect("first");
    let tag = etag_of(&first).expect("etag on the first response");
    let r = http
        .get(gw.url("/p"))
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(r.status(), 304);
    assert_eq!(o.hits(), 1, "answered from the cache");
    assert_eq!(
        gw.metric("etagate_not_modified_total", &[("source", "cache")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn failing_if_match_and_if_unmodified_since_give_412() {
    let o = Origin::fixed(
        "data",
        &[
            ("cache-control", "private"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let status = |pairs: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = gw.url("/d");
        async move {
            let mut rq = http.get(url);
            for (k, v) in pairs {
                rq = rq.header(k, v);
            }
            rq.send().await.expect("request").status().as_u16()
        }
    };
    assert_eq!(status(vec![("if-match", "\"nope\"".into())]).await, 412);
    assert_eq!(status(vec![("if-match", content_etag(b"data"))]).await, 200);
    assert_eq!(status(vec![("if-match", "*".into())]).await, 200);
    assert_eq!(status(vec![("if-match", "garbage".into())]).await, 412);
    assert_eq!(
        status(vec![(
            "if-unmodified-since",
            "Sat, 05 Nov 1994 08:49:37 GMT".into()
        )])
        .await,
        412
    );
    assert_eq!(
        status(vec![(
            "if-unmodified-since",
            "Mon, 07 Nov 1994 08:49:37 GMT".into()
        )])
        .await,
        200
    );
    assert_eq!(
        gw.metric("etagate_precondition_failed_total", &[]).await,
        3.0
    );
}

#[tokio::test]
async fn if_modified_since_answers_both_ways_in_every_date_format() {
    let o = Origin::fixed(
        "dated",
        &[
            ("cache-control", "private"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for (ims, want) in [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 304),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304),
        ("Sun Nov  6 08:49:37 1994", 304),
        ("Mon, 07 Nov 1994 00:00:00 GMT", 304),
        ("Sat, 05 Nov 1994 00:00:00 GMT", 200),
        ("not a date", 200),
    ] {
        let r = http
            .get(gw.url("/dated"))
            .header("if-modified-since", ims)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), want, "If-Modified-Since: {ims}");
    }
    // If-None-Match wins over If-Modified-Since.
    let r = http
        .get(gw.url("/dated"))
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", "Mon, 07 Nov 1994 00:00:00 GMT")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn head_before_any_get_gets_the_etag_get_would() {
    let o = private_origin("head first").await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let head = http.head(gw.url("/h")).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(etag_of(&head), Some(content_etag(b"head first")));
    assert_eq!(head.headers()["content-length"], "10");
    let get = http.get(gw.url("/h")).send().await.expect("get");
    assert_eq!(etag_of(&get), etag_of(&head));
}

#[tokio::test]
async fn chunked_origin_bodies_get_an_etag_and_a_length() {
    let o = Origin::start(|_| {
        Reply::status(200)
            .header("cache-control", "private")
            .chunks(vec![
                Bytes::from("one,"),
                Bytes::from("two,"),
                Bytes::from("three"),
            ])
            .chunk_delay(Duration::from_millis(20))
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let r = client()
        .get(gw.url("/chunked"))
        .send()
        .await
        .expect("request");
    assert_eq!(etag_of(&r), Some(content_etag(b"one,two,three")));
    assert_eq!(r.headers()["content-length"], "13");
    assert_eq!(r.text().await.expect("body"), "one,two,three");
}

#[tokio::test]
async fn bodies_over_the_limit_stream_without_a_tag_and_get_one_once_cached() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let body = Bytes::from(big.clone());
    let o = Origin::start(move |_| Reply::ok(body.clone()).header("cache-control", "max-age=300"))
        .await;
    let gw = Gateway::single(&o, "    etag: { max_buffer: 64KiB }\n", "").await;
    let http = client();
    let first = http.get(gw.url("/big")).send().await.expect("first");
    assert_eq!(first.status(), 200);
    assert!(etag_of(&first).is_none(), "too large to hold back");
    assert_eq!(first.bytes().await.expect("body").as_ref(), big.as_slice());
    let second = http.get(gw.url("/big")).send().await.expect("second");
    assert_eq!(
        etag_of(&second),
        Some(content_etag(&big)),
        "hashed while stored"
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn an_origin_that_breaks_off_mid_body_never_yields_a_complete_tagged_200_nor_a_stored_copy() {
    let o = Origin::start(|_| {
        Reply::status(200)
            .header("cache-control", "max-age=300")
            .body("only part of")
            .abort_after(1000)
            .chunk_delay(Duration::from_millis(50))
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for _ in 0..2 {
        // A cut connection is also not a complete response.
        if let Ok(r) = http.get(gw.url("/broken")).send().await {
            assert_ne!(r.status(), 200, "a broken body must not look complete");
            assert!(etag_of(&r).is_none());
        }
    }
    assert_eq!(o.hits(), 2, "the truncated response was not stored");
}

#[tokio::test]
async fn a_large_body_that_breaks_off_is_truncated_for_the_client() {
    let o = Origin::start(|_| {
        Reply::status(200)
            .header("cache-control", "private")
            .chunks(vec![
                Bytes::from(vec![b'x'; 100_000]),
                Bytes::from(vec![b'y'; 100_000]),
            ])
            .abort_after(0)
            .chunk_delay(Duration::from_millis(50))
    })
    .await;
    let gw = Gateway::single(&o, "    etag: { max_buffer: 16KiB }\n", "").await;
    let r = client().get(gw.url("/broken-big")).send().await;
    if let Ok(r) = r {
        assert!(
            r.bytes().await.is_err(),
            "reading the body must fail: the client sees the truncation"
        );
    }
}

#[tokio::test]
async fn one_variants_etag_never_matches_another_variant() {
    let o = Origin::start(|s| {
        let lang = s.header("accept-language").unwrap_or("en").to_string();
        Reply::ok(format!("content in {lang}"))
            .header("cache-control", "max-age=300")
            .header("vary", "Accept-Language")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let en = http
        .get(gw.url("/v"))
        .header("accept-language", "en")
        .send()
        .await
        .expect("en");
    let de = http
        .get(gw.url("/v"))
        .header("accept-language", "de")
        .send()
        .await
        .expect("de");
    let (en_tag, de_tag) = (etag_of(&en).expect("tag"), etag_of(&de).expect("tag"));
    assert_ne!(en_tag, de_tag);
    let r = http
        .get(gw.url("/v"))
        .header("accept-language", "de")
        .header("if-none-match", &en_tag)
        .send()
        .await
        .expect("cross-variant conditional");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "content in de");
    let r = http
        .get(gw.url("/v"))
        .header("accept-language", "de")
        .header("if-none-match", &de_tag)
        .send()
        .await
        .expect("same-variant conditional");
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn no_store_responses_and_skipped_types_get_no_etag_and_origin_tags_are_kept() {
    let o = Origin::start(|s| match s.uri.as_str() {
        "/nostore" => Reply::ok("secret").header("cache-control", "no-store"),
        "/events" => Reply::ok("data: 1\n\n").header("content-type", "text/event-stream"),
        _ => Reply::ok("tagged")
            .header("etag", "\"v1\"")
            .header("cache-control", "private"),
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    assert!(etag_of(&http.get(gw.url("/nostore")).send().await.expect("r")).is_none());
    assert!(etag_of(&http.get(gw.url("/events")).send().await.expect("r")).is_none());
    assert_eq!(
        etag_of(&http.get(gw.url("/tagged")).send().await.expect("r")).as_deref(),
        Some("\"v1\"")
    );
}

#[tokio::test]
async fn a_route_can_turn_content_etags_off() {
    let o = private_origin("plain").await;
    let gw = Gateway::single(&o, "    etag: { enabled: false }\n", "").await;
    let r = client().get(gw.url("/x")).send().await.expect("request");
    assert!(etag_of(&r).is_none());
}

#[tokio::test]
async fn a_response_stored_before_etags_were_enabled_gets_its_tag_from_the_cache() {
    let o = Origin::fixed(
        "stored untagged",
        &[
            ("cache-control", "max-age=600"),
            ("content-type", "text/plain"),
        ],
    )
    .await;
    let gw = Gateway::single(&o, "    etag: { enabled: false }\n", "").await;
    let http = client();
    let first = http.get(gw.url("/u")).send().await.expect("fill");
    assert!(etag_of(&first).is_none());
    let config = std::fs::read_to_string(&gw.config_path).expect("config");
    gw.write_config(&config.replace("    etag: { enabled: false }\n", ""));
    let r = http
        .post(gw.admin_url("/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    let hit = http.get(gw.url("/u")).send().await.expect("hit");
    let tag = etag_of(&hit).expect("tagged on the hit");
    assert_eq!(
        tag,
        content_etag(b"stored untagged"),
        "the stored body's tag"
    );
    let not_modified = http
        .get(gw.url("/u"))
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(etag_of(&not_modified).as_deref(), Some(tag.as_str()));
    assert_eq!(o.hits(), 1, "both answered from the cache");
}

#[tokio::test]
async fn if_range_with_a_strong_match_gives_206_and_anything_else_the_full_200() {
    let o = Origin::fixed("0123456789", &[("cache-control", "max-age=300")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let tag = content_etag(b"0123456789");
    let r = http
        .get(gw.url("/range"))
        .header("range", "bytes=2-4")
        .header("if-range", &tag)
        .send()
        .await
        .expect("strong");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.text().await.expect("body"), "234");
    let r = http
        .get(gw.url("/range"))
        .header("range", "bytes=2-4")
        .header("if-range", format!("W/{tag}"))
        .send()
        .await
        .expect("weak");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "0123456789");
    let r = http
        .get(gw.url("/range"))
        .header("range", "bytes=20-")
        .send()
        .await
        .expect("unsatisfiable");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");
}

#[tokio::test]
async fn malformed_conditional_headers_never_cause_a_5xx() {
    let o = private_origin("robust").await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for (h, v) in [
        ("if-none-match", "\"unterminated"),
        ("if-none-match", ",,,"),
        ("if-modified-since", "yesterday-ish"),
        ("if-unmodified-since", "32 Foo 99999"),
        ("if-range", "W/"),
        ("range", "bytes=abc"),
        ("range", "bytes=0-1,5-6"),
    ] {
        let r = http
            .get(gw.url("/m"))
            .header(h, v)
            .send()
            .await
            .expect("request");
        assert!(r.status().as_u16() < 500, "{h}: {v} gave {}", r.status());
    }
}

#[tokio::test]
async fn unsafe_methods_carry_their_preconditions_to_the_origin_untouched() {
    let o = Origin::fixed("updated", &[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let r = client()
        .put(gw.url("/res"))
        .header("if-match", "\"v7\"")
        .body("new content")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let seen = o.last();
    assert_eq!(seen.header("if-match"), Some("\"v7\""));
    assert_eq!(seen.method, http::Method::PUT);
}

#[tokio::test]
async fn debug_headers_are_off_by_default_and_opt_in_per_route() {
    let o = Origin::fixed("dbg", &[("cache-control", "max-age=300")]).await;
    let off = Gateway::single(&o, "", "").await;
    let r = client().get(off.url("/d")).send().await.expect("request");
    assert!(r.headers().get("x-cache-key").is_none());
    assert!(r.headers().get("x-cache-hit").is_none());
    assert!(!r.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .contains("key="));

    let on = Gateway::single(&o, "    debug_headers: true\n", "").await;
    let http = client();
    let miss = http.get(on.url("/d?x=1")).send().await.expect("miss");
    assert_eq!(miss.headers()["x-cache-hit"], "false");
    assert!(miss.headers()["x-cache-key"]
        .to_str()
        .expect("ascii")
        .ends_with("/d?x=1"));
    let hit = http.get(on.url("/d?x=1")).send().await.expect("hit");
    assert_eq!(hit.headers()["x-cache-hit"], "true");
    assert!(hit.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .contains("key=\""));
}

#[tokio::test]
async fn buffering_memory_is_bounded_across_concurrent_requests() {
    let body = Bytes::from(vec![b'z'; 40_000]);
    let o = Origin::start(move |_| {
        Reply::status(200)
            .header("cache-control", "private")
            .chunks(vec![body.slice(..20_000), body.slice(20_000..)])
            .chunk_delay(Duration::from_millis(150))
    })
    .await;
    // 64KiB for everyone: at most one 40KB body can be held back at a time.
    let gw = Gateway::single(
        &o,
        "    etag: { max_buffer: 48KiB }\n",
        "etag:\n  buffer_budget: 64KiB\n",
    )
    .await;
    let http = client();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (http, url) = (http.clone(), gw.url(&format!("/c{i}")));
        tasks.push(tokio::spawn(async move {
            let r = http.get(url).send().await.expect("request");
            let tagged = r.headers().contains_key("etag");
            let len = r.bytes().await.expect("body").len();
            (tagged, len)
        }));
    }
    let mut tagged = 0;
    for t in tasks {
        let (has_tag, len) = t.await.expect("task");
        assert_eq!(len, 40_000, "every response arrives whole");
        tagged += has_tag as usize;
    }
    assert!(tagged >= 1, "some responses were hashed");
    assert!(tagged < 6, "not all six fit in the budget at once");
    assert_eq!(
        gw.metric("etagate_etag_buffer_bytes", &[]).await,
        0.0,
        "all released"
    );
}

/// Gzip of `content` with a file name that differs on every call, as Django's GZipMiddleware
/// pads every response against BREACH.
fn padded_gzip(content: &[u8], n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut w = flate2::GzBuilder::new()
        .filename(format!("pad-{}", "x".repeat(n % 17)))
        .mtime(n as u32)
        .write(Vec::new(), flate2::Compression::default());
    w.write_all(content).expect("gzip");
    w.finish().expect("gzip")
}

/// Issue #16: an origin that compresses with random padding sent a new content tag with every
/// response, so clients never got a 304. The tag now names the decoded content (weak, RFC 9110
/// §8.8.1), for a response etagate passes through (`private`) and one it stores but revalidates
/// every time (`no-cache`).
#[tokio::test]
async fn an_origin_that_compresses_with_random_padding_still_gets_304s() {
    for cache_control in ["private", "no-cache"] {
        let version = Arc::new(AtomicUsize::new(1));
        let served = Arc::new(AtomicUsize::new(0));
        let (v, s) = (version.clone(), served.clone());
        let o = Origin::start(move |_| {
            let content = format!(r#"{{"user": 7, "version": {}}}"#, v.load(Ordering::SeqCst));
            let n = s.fetch_add(1, Ordering::SeqCst);
            Reply::ok(padded_gzip(content.repeat(40).as_bytes(), n))
                .header("cache-control", cache_control)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("vary", "Accept-Encoding")
        })
        .await;
        let gw = Gateway::single(&o, "", "").await;
        let http = client();
        let get = |extra: &[(&str, &str)]| {
            let mut r = http
                .get(gw.url("/api/me"))
                .header("accept-encoding", "gzip");
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            r.send()
        };
        let a = get(&[]).await.expect("a");
        assert_eq!(a.status(), 200, "{cache_control}");
        let tag = etag_of(&a).expect("a tag");
        let a_body = a.bytes().await.expect("body");
        let b = get(&[]).await.expect("b");
        assert_eq!(
            etag_of(&b).as_deref(),
            Some(tag.as_str()),
            "{cache_control}: same content"
        );
        assert_ne!(
            a_body,
            b.bytes().await.expect("body"),
            "the bytes did differ"
        );
        assert!(
            tag.starts_with("W/\"b3-") && tag.ends_with(".gz\""),
            "{tag}"
        );

        let c = get(&[("if-none-match", tag.as_str())]).await.expect("c");
        assert_eq!(c.status(), 304, "{cache_control}: the client revalidates");
        assert_eq!(etag_of(&c).as_deref(), Some(tag.as_str()));

        // A weak tag never satisfies If-Range (strong comparison): the whole response.
        let d = get(&[("if-range", tag.as_str()), ("range", "bytes=0-9")])
            .await
            .expect("d");
        assert_eq!(d.status(), 200, "{cache_control}: If-Range with a weak tag");

        version.store(2, Ordering::SeqCst);
        let e = get(&[("if-none-match", tag.as_str())]).await.expect("e");
        assert_eq!(e.status(), 200, "{cache_control}: new content");
        assert_ne!(etag_of(&e).as_deref(), Some(tag.as_str()));
        assert!(
            o.seen().iter().all(|s| s.header("if-none-match").is_none()),
            "etagate's own tags are never sent to the origin"
        );
    }
}

/// Issue #17 item 5: over HTTP/1.1 the fields etagate adds are spelled as registered (RFC 9110
/// §8.8.3 `ETag`, RFC 9211 `Cache-Status`, RFC 9111 §5.1 `Age`), on a miss, a hit and a 304,
/// beside the origin's own spelling.
#[tokio::test]
async fn fields_etagate_writes_are_spelled_as_registered_on_http1() {
    let o = Origin::fixed("cased", &[("cache-control", "max-age=300")]).await;
    let g = Gateway::single(&o, "    debug_headers: true\n", "").await;
    let wait = Duration::from_secs(5);
    let miss = crate::common::raw::get(g.port, "/cased", wait).await;
    let hit = crate::common::raw::get(g.port, "/cased", wait).await;
    let tag = hit.header("etag").expect("etag").to_string();
    let head = format!(
        "GET /cased HTTP/1.1\r\nHost: gateway.test\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n"
    );
    let not_modified = crate::common::raw::exchange(g.port, head, Vec::new(), wait).await;
    assert_eq!(
        (miss.status, hit.status, not_modified.status),
        (200, 200, 304)
    );
    for (what, r, expected) in [
        (
            "miss",
            &miss,
            &["ETag", "Cache-Status", "X-Cache-Key", "X-Cache-Hit"][..],
        ),
        (
            "hit",
            &hit,
            &["ETag", "Cache-Status", "Age", "X-Cache-Key", "X-Cache-Hit"][..],
        ),
        ("304", &not_modified, &["ETag", "Cache-Status"][..]),
    ] {
        for name in expected {
            assert!(
                r.names.iter().any(|n| n == name),
                "{what}: no field spelled {name} in {:?}",
                r.names
            );
        }
    }
}
