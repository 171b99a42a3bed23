//! Compression (issue 16) through the real gateway: each coding decodes to the identity body,
//! a stored response is compressed once per coding, every representation has its own strong
//! tag, and the validators, ranges, HEAD, `no-transform` and `Vary` behave per representation.

use crate::common::*;
use bytes::Bytes;
use std::io::Read;
use std::time::{Duration, Instant};

/// A page that compresses well and is larger than the default minimum size.
fn page() -> String {
    (0..400)
        .map(|i| {
            format!(
                "<li><a href=\"/item/{i}\">Item {i}</a> {}</li>\n",
                i * 7 % 13
            )
        })
        .collect()
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gunzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        "zstd" => out = zstd::decode_all(body).expect("zstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn field(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
}

async fn get(gw: &Gateway, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().get(gw.url(path));
    for (k, v) in fields {
        r = r.header(*k, *v);
    }
    r.send().await.expect("request")
}

async fn cacheable_origin(extra: &'static [(&'static str, &'static str)]) -> Origin {
    let body = page();
    Origin::start(move |_| {
        let mut r = Reply::ok(body.clone())
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "max-age=300");
        for (k, v) in extra {
            r = r.header(k, v);
        }
        r
    })
    .await
}

async fn compressions(gw: &Gateway, coding: &str, kind: &str) -> f64 {
    gw.metric(
        "etagate_compressions_total",
        &[("coding", coding), ("kind", kind)],
    )
    .await
}

#[tokio::test]
async fn every_coding_decodes_to_the_identity_body_and_hits_compress_once() {
    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let identity = get(&gw, "/p", &[]).await;
    assert_eq!(identity.status(), 200);
    assert_eq!(field(&identity, "content-encoding"), None);
    assert_eq!(field(&identity, "vary").as_deref(), Some("Accept-Encoding"));
    let tag = field(&identity, "etag").expect("identity tag");
    assert_eq!(tag, content_etag(page().as_bytes()));
    assert_eq!(identity.bytes().await.expect("body"), page().as_bytes());

    let mut tags = vec![tag.clone()];
    for coding in ["gzip", "br", "zstd"] {
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let r = get(&gw, "/p", &[("accept-encoding", coding)]).await;
            assert_eq!(r.status(), 200, "{coding}");
            assert_eq!(field(&r, "content-encoding").as_deref(), Some(coding));
            assert_eq!(field(&r, "vary").as_deref(), Some("Accept-Encoding"));
            let t = field(&r, "etag").expect("tag");
            // the identity content's part, then the coding and the bytes' part
            assert!(t.starts_with(&tag[..tag.len() - 1]), "{t} from {tag}");
            assert!(!t.starts_with("W/"), "strong: {t}");
            let len: usize = field(&r, "content-length")
                .expect("length")
                .parse()
                .expect("number");
            let body = r.bytes().await.expect("body");
            assert_eq!(body.len(), len);
            assert!(body.len() < page().len() / 3, "{coding}: {}", body.len());
            assert_eq!(decode(coding, &body), page().as_bytes(), "{coding}");
            bodies.push((t, body));
        }
        assert_eq!(
            bodies[0], bodies[1],
            "{coding}: the kept bytes, the same tag"
        );
        assert_eq!(
            compressions(&gw, coding, "stored").await,
            1.0,
            "{coding}: the second hit compressed nothing"
        );
        tags.push(bodies[0].0.clone());
    }
    tags.dedup();
    assert_eq!(tags.len(), 4, "a tag per representation: {tags:?}");
    assert_eq!(o.hits(), 1, "all from one stored response");
    assert_eq!(
        gw.metric("etagate_compressible_responses_total", &[("coding", "br")])
            .await,
        2.0
    );
    let preferred = get(&gw, "/p", &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
    assert_eq!(
        field(&preferred, "content-encoding").as_deref(),
        Some("zstd"),
        "the route's order breaks the tie"
    );
    let weighted = get(&gw, "/p", &[("accept-encoding", "br;q=0.5, gzip")]).await;
    assert_eq!(
        field(&weighted, "content-encoding").as_deref(),
        Some("gzip")
    );
}

#[tokio::test]
async fn validators_are_per_representation() {
    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let identity_tag = content_etag(page().as_bytes());
    let gz = get(&gw, "/v", &[("accept-encoding", "gzip")]).await;
    let gz_tag = field(&gz, "etag").expect("tag");
    let gz_body = gz.bytes().await.expect("body");
    let br_tag = field(&get(&gw, "/v", &[("accept-encoding", "br")]).await, "etag").expect("tag");

    // Any representation's tag revalidates; the 304 names what the client would now get.
    for held in [&gz_tag, &identity_tag, &br_tag] {
        let r = get(
            &gw,
            "/v",
            &[("accept-encoding", "br"), ("if-none-match", held)],
        )
        .await;
        assert_eq!(r.status(), 304, "held {held}");
        assert_eq!(field(&r, "etag").as_deref(), Some(br_tag.as_str()));
        assert_eq!(field(&r, "vary").as_deref(), Some("Accept-Encoding"));
    }
    // If-Range addresses the encoded bytes of exactly that representation, for each coding.
    let mut tags = vec![("identity", identity_tag.clone(), Bytes::from(page()))];
    for coding in ["gzip", "br", "zstd"] {
        let r = get(&gw, "/v", &[("accept-encoding", coding)]).await;
        let t = field(&r, "etag").expect("tag");
        tags.push((coding, t, r.bytes().await.expect("body")));
    }
    assert_eq!(tags[1].1, gz_tag);
    assert_eq!(tags[1].2, gz_body);
    for (coding, tag, body) in &tags {
        let part = get(
            &gw,
            "/v",
            &[
                ("accept-encoding", coding),
                ("if-range", tag),
                ("range", "bytes=10-99"),
            ],
        )
        .await;
        assert_eq!(part.status(), 206, "{coding}");
        let encoding = (*coding != "identity").then(|| coding.to_string());
        assert_eq!(field(&part, "content-encoding"), encoding);
        assert_eq!(
            field(&part, "content-range"),
            Some(format!("bytes 10-99/{}", body.len()))
        );
        assert_eq!(part.bytes().await.expect("part"), body.slice(10..100));
        for (other, other_tag, _) in &tags {
            if other == coding {
                continue;
            }
            let whole = get(
                &gw,
                "/v",
                &[
                    ("accept-encoding", coding),
                    ("if-range", other_tag),
                    ("range", "bytes=10-99"),
                ],
            )
            .await;
            assert_eq!(
                whole.status(),
                200,
                "If-Range with {other}'s tag on {coding}"
            );
        }
    }
    // If-Match is exact too.
    let ok = get(
        &gw,
        "/v",
        &[("accept-encoding", "gzip"), ("if-match", &gz_tag)],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let failed = get(
        &gw,
        "/v",
        &[("accept-encoding", "gzip"), ("if-match", &identity_tag)],
    )
    .await;
    assert_eq!(failed.status(), 412);
}

#[tokio::test]
async fn a_head_gets_the_fields_its_get_gets() {
    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "", "").await;
    // first a miss (answered through the inner subrequest), then hits
    for round in 0..2 {
        let head = client()
            .head(gw.url(&format!("/h{round}")))
            .header("accept-encoding", "zstd")
            .send()
            .await
            .expect("head");
        let get = get(&gw, &format!("/h{round}"), &[("accept-encoding", "zstd")]).await;
        for name in ["content-encoding", "etag", "vary", "content-length"] {
            assert_eq!(
                field(&head, name),
                field(&get, name),
                "round {round}: {name}"
            );
        }
        assert_eq!(field(&get, "content-encoding").as_deref(), Some("zstd"));
        assert!(head.bytes().await.expect("head body").is_empty());
    }
}

#[tokio::test]
async fn no_transform_small_bodies_and_other_types_are_left_alone() {
    let no_transform = cacheable_origin(&[("cache-control", "max-age=300, no-transform")]).await;
    let gw = Gateway::single(&no_transform, "", "").await;
    let r = get(&gw, "/n", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding"), None);
    assert_eq!(field(&r, "vary"), None, "nothing varies");
    assert_eq!(r.bytes().await.expect("body"), page().as_bytes());

    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let r = get(
        &gw,
        "/n",
        &[
            ("accept-encoding", "gzip"),
            ("cache-control", "no-transform"),
        ],
    )
    .await;
    assert_eq!(
        field(&r, "content-encoding"),
        None,
        "the request's no-transform"
    );
    let r = get(&gw, "/n", &[("accept-encoding", "gzip;q=0, identity")]).await;
    assert_eq!(field(&r, "content-encoding"), None);

    let small = Origin::fixed("tiny", &[("content-type", "text/plain")]).await;
    let gw = Gateway::single(&small, "", "").await;
    let r = get(&gw, "/s", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding"), None);
    assert_eq!(field(&r, "vary"), None);

    let png =
        Origin::start(|_| Reply::ok(vec![7u8; 8192]).header("content-type", "image/png")).await;
    let gw = Gateway::single(&png, "", "").await;
    let r = get(&gw, "/i", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding"), None);

    let off = cacheable_origin(&[]).await;
    let gw = Gateway::single(&off, "    compression: { enabled: false }\n", "").await;
    let r = get(&gw, "/o", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding"), None);
}

#[tokio::test]
async fn the_origins_vary_is_kept_and_merged() {
    let o = cacheable_origin(&[("vary", "Origin, accept-encoding, origin")]).await;
    let gw = Gateway::single(&o, "", "").await;
    for ae in ["gzip", "identity"] {
        let r = get(&gw, "/m", &[("accept-encoding", ae)]).await;
        assert_eq!(
            field(&r, "vary").as_deref(),
            Some("Origin, accept-encoding"),
            "{ae}"
        );
    }
}

#[tokio::test]
async fn responses_not_stored_are_compressed_per_request_and_large_ones_while_streaming() {
    let body = page();
    let large: String = body.repeat(40); // ~1.2 MiB, beyond the 256 KiB hold-back below
    let (b, l) = (body.clone(), large.clone());
    let o = Origin::start(move |seen| {
        if seen.uri.starts_with("/large") {
            Reply::ok(l.clone())
                .header("content-type", "application/json")
                .header("cache-control", "no-store")
                .header("etag", "\"v1\"")
        } else {
            Reply::ok(b.clone())
                .header("content-type", "application/json")
                .header("cache-control", "private")
        }
    })
    .await;
    let gw = Gateway::single(&o, "    etag: { max_buffer: 256KiB }\n", "").await;
    // private: held back to tag it, so compressed whole, with a strong tag of its own
    let r = get(&gw, "/small", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding").as_deref(), Some("gzip"));
    let tag = field(&r, "etag").expect("tag");
    let identity = content_etag(body.as_bytes());
    assert!(
        tag.starts_with(&identity[..identity.len() - 1]) && tag.contains(".gz."),
        "{tag}"
    );
    let len = field(&r, "content-length").expect("a length");
    let got = r.bytes().await.expect("body");
    assert_eq!(len, got.len().to_string());
    assert_eq!(decode("gzip", &got), body.as_bytes());
    assert_eq!(compressions(&gw, "gzip", "per_request").await, 1.0);
    let again = get(
        &gw,
        "/small",
        &[("accept-encoding", "gzip"), ("if-none-match", &tag)],
    )
    .await;
    assert_eq!(again.status(), 304, "the per-request tag validates");

    // no-store with the origin's tag, larger than the hold-back: compressed as it streams
    let r = get(&gw, "/large", &[("accept-encoding", "br")]).await;
    assert_eq!(field(&r, "content-encoding").as_deref(), Some("br"));
    assert_eq!(field(&r, "content-length"), None, "streamed");
    assert_eq!(
        field(&r, "etag").as_deref(),
        Some("W/\"v1\""),
        "the origin's strong tag names the identity bytes: weakened"
    );
    let got = r.bytes().await.expect("body");
    assert!(got.len() < large.len() / 10);
    assert_eq!(decode("br", &got), large.as_bytes());
    assert_eq!(compressions(&gw, "br", "streamed").await, 1.0);
    // A range of a representation whose length is unknown is not served: the whole of it.
    let r = get(
        &gw,
        "/large",
        &[("accept-encoding", "zstd"), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        decode("zstd", &r.bytes().await.expect("body")),
        large.as_bytes()
    );
}

#[tokio::test]
async fn a_purge_removes_every_representation() {
    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "", "").await;
    let before = get(&gw, "/x", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&before, "content-encoding").as_deref(), Some("gzip"));
    let hit = get(&gw, "/x", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&hit, "content-encoding").as_deref(), Some("gzip"));
    let purged = client()
        .post(gw.admin_url("/purge"))
        .bearer_auth(ADMIN_TOKEN)
        .body(format!(r#"{{"urls": ["{}"]}}"#, gw.url("/x")))
        .send()
        .await
        .expect("purge");
    assert!(purged.status().is_success(), "{}", purged.status());
    assert_eq!(o.hits(), 1);
    let after = get(&gw, "/x", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&after, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(o.hits(), 2, "fetched again: no representation survived");
}

/// A gzip bomb from the origin (20 MiB of zeros in ~20 KiB): decoding to tag it stops at the
/// bounds, so it gets the strong tag of its bytes and goes out as it came.
#[tokio::test]
async fn a_compression_bomb_from_the_origin_is_bounded() {
    use std::io::Write;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    w.write_all(&vec![0u8; 20 << 20]).expect("gzip");
    let bomb = w.finish().expect("gzip");
    let sent = bomb.clone();
    let o = Origin::start(move |_| {
        Reply::ok(sent.clone())
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("cache-control", "private")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let started = Instant::now();
    let r = get(&gw, "/bomb", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(field(&r, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        field(&r, "etag"),
        Some(content_etag(&bomb)),
        "the bytes' tag"
    );
    assert_eq!(r.bytes().await.expect("body"), bomb);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A response the origin writes slowly (a streamed API answer, progress) is compressed piece by
/// piece: what the origin has sent reaches the client before the rest is written.
#[tokio::test]
async fn a_slow_stream_is_compressed_piece_by_piece() {
    let first = Bytes::from(page());
    let second = Bytes::from(page().replace("Item", "Entry"));
    let (a, b) = (first.clone(), second.clone());
    let o = Origin::start(move |_| {
        Reply::ok(Bytes::new())
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .chunks(vec![a.clone(), b.clone()])
            .chunk_delay(Duration::from_millis(1500))
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let started = Instant::now();
    let mut r = get(&gw, "/s", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        field(&r, "accept-ranges"),
        None,
        "no ranges of a streamed encoding"
    );
    let mut got = Vec::new();
    let piece = r.chunk().await.expect("read").expect("a first piece");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the first piece waited for the second: {:?}",
        started.elapsed()
    );
    got.extend_from_slice(&piece);
    while let Some(p) = r.chunk().await.expect("read") {
        got.extend_from_slice(&p);
    }
    assert_eq!(decode("gzip", &got), [first, second].concat());
}

/// A stored response fetched again in full (its origin gives no validators) with the same
/// content keeps what was compressed of it.
#[tokio::test]
async fn a_refetched_unchanged_response_keeps_its_encodings() {
    let body = page();
    let served = std::sync::atomic::AtomicUsize::new(0);
    let o = Origin::start(move |_| {
        // stale a second after the first fetch; the refetched copy stays fresh, so the hits
        // after it are hits however slow the machine is
        let first = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        Reply::ok(body.clone())
            .header("content-type", "text/html")
            .header(
                "cache-control",
                if first { "max-age=1" } else { "max-age=300" },
            )
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let ae = [("accept-encoding", "br")];
    let miss = get(&gw, "/r", &ae).await;
    let tag = field(&miss, "etag").expect("tag");
    let hit = get(&gw, "/r", &ae).await;
    assert_eq!(
        field(&hit, "etag").as_deref(),
        Some(tag.as_str()),
        "the miss's bytes"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refetched = get(&gw, "/r", &ae).await; // stale: fetched again, the same content
    assert_eq!(field(&refetched, "etag").as_deref(), Some(tag.as_str()));
    assert_eq!(o.hits(), 2);
    let before = compressions(&gw, "br", "stored").await;
    for _ in 0..3 {
        let again = get(&gw, "/r", &ae).await;
        assert_eq!(field(&again, "etag").as_deref(), Some(tag.as_str()));
    }
    assert_eq!(
        compressions(&gw, "br", "stored").await,
        before,
        "the new copy kept the old one's encoding: its hits compress nothing"
    );
}

/// A date in `If-Range` never selects a range of a compressed representation (its bytes
/// depend on the level and the path it took); of the identity one it does.
#[tokio::test]
async fn if_range_with_a_date_ranges_only_the_identity_bytes() {
    let o = cacheable_origin(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let date = ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT");
    let range = ("range", "bytes=0-9");
    get(&gw, "/d", &[]).await;
    let identity = get(&gw, "/d", &[date, range]).await;
    assert_eq!(identity.status(), 206);
    let gz = get(&gw, "/d", &[date, range, ("accept-encoding", "gzip")]).await;
    assert_eq!(gz.status(), 200);
    assert_eq!(field(&gz, "content-encoding").as_deref(), Some("gzip"));
}

/// An origin's 304 for a key that takes Pingora's pipeline (learned `no-store`) carries what
/// the compressed 200 carried: `Vary: Accept-Encoding` and the weakened tag.
#[tokio::test]
async fn an_origins_304_through_the_pipeline_matches_the_compressed_200() {
    let body = page();
    let o = Origin::start(move |seen| {
        if seen
            .header("if-none-match")
            .is_some_and(|v| v.contains("\"v1\""))
        {
            return Reply::status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "no-store");
        }
        Reply::ok(body.clone())
            .header("content-type", "text/html")
            .header("cache-control", "no-store")
            .header("etag", "\"v1\"")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let ae = ("accept-encoding", "gzip");
    for _ in 0..2 {
        let r = get(&gw, "/n", &[ae]).await;
        assert_eq!(field(&r, "etag").as_deref(), Some("W/\"v1\""));
        assert_eq!(field(&r, "content-encoding").as_deref(), Some("gzip"));
    }
    let r = get(&gw, "/n", &[ae, ("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(field(&r, "etag").as_deref(), Some("W/\"v1\""));
    assert_eq!(field(&r, "vary").as_deref(), Some("Accept-Encoding"));
}

/// A response stored while its route gave no content tags gets one on its first hit after the
/// route enables them; a compressed hit then carries the encoded representation's strong tag,
/// made from that new tag (not the origin-less weak one).
#[tokio::test]
async fn a_response_tagged_on_its_first_hit_gets_a_strong_encoded_tag() {
    let o = cacheable_origin(&[]).await;
    let gw = Gateway::single(&o, "    etag: { enabled: false }\n", "").await;
    let first = get(&gw, "/t", &[]).await;
    assert_eq!(field(&first, "etag"), None);
    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    gw.write_config(&text.replace("etag: { enabled: false }", "etag: { enabled: true }"));
    let reloaded = client()
        .post(gw.admin_url("/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status(), 200);
    let r = get(&gw, "/t", &[("accept-encoding", "gzip")]).await;
    assert_eq!(field(&r, "content-encoding").as_deref(), Some("gzip"));
    let tag = field(&r, "etag").expect("tag");
    let identity = content_etag(page().as_bytes());
    assert!(
        tag.starts_with(&identity[..identity.len() - 1]) && tag.contains(".gz."),
        "{tag}"
    );
    let again = get(&gw, "/t", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        field(&again, "etag"),
        Some(tag),
        "kept beside the tagged copy"
    );
    assert_eq!(o.hits(), 1);
    assert_eq!(compressions(&gw, "gzip", "stored").await, 1.0);
}
