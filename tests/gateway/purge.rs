//! `POST /purge`: by URL, URL prefix and cache tag, hard and soft, against the real binary;
//! and the tag headers that clients never see.

use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().expect("ascii"))
}

/// POST `body` to `/purge` with the token; the status and the body (JSON when 200).
async fn purge(gw: &Gateway, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = client()
        .post(gw.admin_url("/purge"))
        .bearer_auth(ADMIN_TOKEN)
        .body(body)
        .send()
        .await
        .expect("purge");
    (r.status().as_u16(), r.text().await.expect("purge answer"))
}

async fn purge_json(gw: &Gateway, request: serde_json::Value) -> serde_json::Value {
    let (status, text) = purge(gw, request.to_string()).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("a JSON report")
}

/// GET `path` and read it whole; its Cache-Status.
async fn get(gw: &Gateway, path: &str) -> (String, String) {
    let r = client().get(gw.url(path)).send().await.expect("get");
    let status = header(&r, "cache-status").unwrap_or("").to_string();
    (status, r.text().await.expect("body"))
}

/// An origin tagging each path its own way; every response stored for 10 minutes.
async fn tagging_origin() -> Origin {
    Origin::start(|s| {
        let r =
            Reply::ok(format!("{} #{}", s.uri, s.number)).header("cache-control", "max-age=600");
        match s
            .uri
            .trim_start_matches("/plain")
            .trim_start_matches("/shown")
        {
            "/a" => r.header("surrogate-key", "red shared"),
            "/b" => r.header("cache-tag", "blue, shared"),
            "/c" => r
                .header("surrogate-key", "green")
                .header("surrogate-key", "sharedish"),
            _ => r,
        }
    })
    .await
}

#[tokio::test]
async fn a_purge_by_tag_removes_exactly_the_responses_carrying_it() {
    let o = tagging_origin().await;
    let gw = Gateway::single(&o, "", "").await;
    for p in ["/a", "/b", "/c", "/d"] {
        get(&gw, p).await;
    }
    assert_eq!(o.hits(), 4);
    assert_eq!(
        gw.metric("etagate_cache_tag_index_entries", &[]).await,
        6.0,
        "red, shared, blue, shared, green, sharedish"
    );

    let report = purge_json(&gw, serde_json::json!({ "tags": ["shared"] })).await;
    assert_eq!(report["mode"], "hard");
    assert_eq!(report["entries"], 2);
    assert_eq!(report["tags"][0]["target"], "shared");
    assert_eq!(report["tags"][0]["entries"], 2);
    for (p, stored) in [("/a", false), ("/b", false), ("/c", true), ("/d", true)] {
        let (status, _) = get(&gw, p).await;
        assert_eq!(status.contains("hit"), stored, "{p}: {status}");
    }
    assert_eq!(o.hits(), 6, "only /a and /b were fetched again");

    // A tag no response carries, and a tag that is a prefix of another, purge nothing.
    let report = purge_json(&gw, serde_json::json!({ "tags": ["nobody", "shar"] })).await;
    assert_eq!(report["entries"], 0);
    assert!(get(&gw, "/c").await.0.contains("hit"));

    let text = gw.scrape().await;
    assert_eq!(
        metric_value(
            &text,
            "etagate_purges_total",
            &[("kind", "tag"), ("mode", "hard"), ("result", "matched")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "etagate_purges_total",
            &[("kind", "tag"), ("mode", "hard"), ("result", "unmatched")]
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            "etagate_purged_entries_total",
            &[("kind", "tag"), ("mode", "hard")]
        ),
        2.0
    );
}

#[tokio::test]
async fn tag_headers_are_stripped_from_client_responses_but_kept_in_the_stored_copy() {
    let o = tagging_origin().await;
    let body = format!(
        "upstreams:\n  app:\n    servers: [{}]\nroutes:\n  - name: main\n    upstream: app\n  - name: plain\n    path: /plain\n    upstream: app\n    etag: {{ enabled: false }}\n  - name: shown\n    path: /shown\n    upstream: app\n    tags: {{ strip: false }}\n",
        o.addr_string()
    );
    let gw = Gateway::start(&body).await;
    let http = client();
    // The subrequest path (content ETags on), its stored hits and 304s, and Pingora's own
    // pipeline (ETags off) with its hits.
    for path in ["/a", "/b", "/plain/a", "/plain/b"] {
        for round in ["miss", "hit"] {
            let r = http.get(gw.url(path)).send().await.expect("get");
            assert_eq!(header(&r, "surrogate-key"), None, "{path} {round}");
            assert_eq!(header(&r, "cache-tag"), None, "{path} {round}");
            if round == "hit" {
                assert!(header(&r, "cache-status").expect("status").contains("hit"));
            }
        }
        let head = http.head(gw.url(path)).send().await.expect("head");
        assert_eq!(header(&head, "surrogate-key"), None, "HEAD {path}");
        assert_eq!(header(&head, "cache-tag"), None, "HEAD {path}");
    }
    let etag = http.get(gw.url("/a")).send().await.expect("get");
    let etag = header(&etag, "etag").expect("etag").to_string();
    let not_modified = http
        .get(gw.url("/a"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("304");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(header(&not_modified, "surrogate-key"), None);

    // A route that keeps them shows them.
    let shown = http.get(gw.url("/shown/a")).send().await.expect("get");
    assert_eq!(header(&shown, "surrogate-key"), Some("red shared"));

    // The stored copies kept their tags, whichever path stored them.
    let report = purge_json(&gw, serde_json::json!({ "tags": ["shared", "green"] })).await;
    assert_eq!(
        report["tags"][0]["entries"], 5,
        "/a /b /plain/a /plain/b /shown/a"
    );
    assert_eq!(report["tags"][1]["entries"], 0);
}

#[tokio::test]
async fn a_purge_by_prefix_removes_the_urls_under_it_and_no_others() {
    let o = tagging_origin().await;
    let gw = Gateway::single(&o, "", "").await;
    let paths = ["/blog/1", "/blog/2?page=3", "/blogger", "/other", "/blog"];
    for p in paths {
        get(&gw, p).await;
    }
    let report = purge_json(
        &gw,
        serde_json::json!({ "prefixes": [format!("HTTP://127.0.0.1:{}/blog/", gw.port)] }),
    )
    .await;
    assert_eq!(
        report["prefixes"][0]["target"],
        format!("http://127.0.0.1:{}/blog/", gw.port),
        "reported in canonical form"
    );
    assert_eq!(report["prefixes"][0]["entries"], 2);
    for (p, stored) in [
        ("/blog/1", false),
        ("/blog/2?page=3", false),
        ("/blogger", true),
        ("/other", true),
        ("/blog", true),
    ] {
        let (status, _) = get(&gw, p).await;
        assert_eq!(status.contains("hit"), stored, "{p}: {status}");
    }
}

#[tokio::test]
async fn a_purge_by_url_takes_json_or_the_plain_list() {
    let o = tagging_origin().await;
    let gw = Gateway::single(&o, "", "").await;
    for p in ["/x", "/y", "/z"] {
        get(&gw, p).await;
    }
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", gw.port);
    let report = purge_json(
        &gw,
        serde_json::json!({ "urls": [url("/x"), url("/nothing")] }),
    )
    .await;
    assert_eq!(report["urls"][0]["target"], url("/x"));
    assert_eq!(report["urls"][0]["entries"], 1);
    assert_eq!(report["urls"][1]["entries"], 0);
    assert_eq!(report["prefixes"], serde_json::json!([]));

    let (status, text) = purge(&gw, format!("{}\n{}\n", url("/y"), url("/y"))).await;
    assert_eq!(status, 200, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(report["entries"], 1, "the second line finds it gone");
    for (p, stored) in [("/x", false), ("/y", false), ("/z", true)] {
        let (status, _) = get(&gw, p).await;
        assert_eq!(status.contains("hit"), stored, "{p}: {status}");
    }
}

#[tokio::test]
async fn bad_purge_requests_are_refused_with_a_reason_and_the_token_is_required() {
    let o = tagging_origin().await;
    let gw = Gateway::single(&o, "", "").await;
    for (body, why) in [
        (r#"{"tag": ["x"]}"#, "unknown field"),
        (r#"{"tags": ["x"], "mode": "gentle"}"#, "unknown variant"),
        (r#"{}"#, "nothing to purge"),
        (r#"{"urls": ["/relative"]}"#, "absolute"),
        ("not a url\n", "absolute"),
        ("", "one per line"),
    ] {
        let (status, text) = purge(&gw, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(why), "{body}: {text}");
    }
    let denied = client()
        .post(gw.admin_url("/purge"))
        .body(r#"{"tags": ["x"]}"#)
        .send()
        .await
        .expect("purge");
    assert_eq!(denied.status(), 401);
}

#[tokio::test]
async fn a_soft_purge_makes_the_next_request_revalidate_and_keeps_the_content_etag() {
    // No validators at the origin: etagate's content ETag; the refetch brings the same bytes.
    let o = Origin::start(|s| {
        Reply::ok("same bytes")
            .header("cache-control", "max-age=600")
            .header(
                "surrogate-key",
                format!("page {}", s.uri.trim_start_matches('/')),
            )
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let first = http.get(gw.url("/s")).send().await.expect("fill");
    let tag = header(&first, "etag").expect("content etag").to_string();
    assert!(get(&gw, "/s").await.0.contains("hit"));
    assert_eq!(o.hits(), 1);

    let report = purge_json(&gw, serde_json::json!({ "tags": ["s"], "mode": "soft" })).await;
    assert_eq!(report["mode"], "soft");
    assert_eq!(report["tags"][0]["entries"], 1);

    let after = http.get(gw.url("/s")).send().await.expect("after");
    assert_eq!(o.hits(), 2, "the next request went to the origin");
    assert_eq!(
        header(&after, "etag"),
        Some(tag.as_str()),
        "unchanged body, same tag"
    );
    assert!(
        header(&after, "cache-status")
            .expect("status")
            .contains("fwd=stale"),
        "{:?}",
        header(&after, "cache-status")
    );
    assert_eq!(after.text().await.expect("body"), "same bytes");
    assert!(get(&gw, "/s").await.0.contains("hit"), "fresh again");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn a_soft_purge_revalidates_with_the_origins_validators() {
    let o = Origin::start(|s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            Reply::status(304).header("cache-control", "max-age=600")
        } else {
            Reply::ok("validated")
                .header("cache-control", "max-age=600")
                .header("etag", "\"v1\"")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    get(&gw, "/v").await;
    let url = format!("http://127.0.0.1:{}/v", gw.port);
    let report = purge_json(&gw, serde_json::json!({ "urls": [url], "mode": "soft" })).await;
    assert_eq!(report["entries"], 1);
    let r = client().get(gw.url("/v")).send().await.expect("after");
    assert_eq!(o.hits(), 2);
    assert_eq!(
        o.last().header("if-none-match"),
        Some("\"v1\""),
        "a conditional request"
    );
    assert_eq!(header(&r, "etag"), Some("\"v1\""));
    assert_eq!(r.text().await.expect("body"), "validated");
    assert!(get(&gw, "/v").await.0.contains("hit"));
}

#[tokio::test]
async fn stale_while_revalidate_never_serves_a_soft_purged_response() {
    let o = Origin::start(|s| {
        Reply::ok(format!("generation {}", s.number))
            .header("cache-control", "max-age=600, stale-while-revalidate=600")
            .header("cache-tag", "swr")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    assert_eq!(get(&gw, "/swr").await.1, "generation 1");
    purge_json(&gw, serde_json::json!({ "tags": ["swr"], "mode": "soft" })).await;
    let (status, body) = get(&gw, "/swr").await;
    assert_eq!(
        body, "generation 2",
        "answered by the origin, not stale: {status}"
    );
    assert!(!status.contains("stale-while-revalidate"), "{status}");
}

#[tokio::test]
async fn stale_if_error_still_serves_a_soft_purged_response_while_the_origin_fails() {
    let down = Arc::new(AtomicBool::new(false));
    let flag = down.clone();
    let o = Origin::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::drop_connection()
        } else {
            Reply::ok("good copy")
                .header("cache-control", "max-age=600, stale-if-error=60")
                .header("surrogate-key", "sie")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    get(&gw, "/sie").await;
    get(&gw, "/hard").await;
    down.store(true, Ordering::SeqCst);

    purge_json(&gw, serde_json::json!({ "tags": ["sie"], "mode": "soft" })).await;
    let r = client().get(gw.url("/sie")).send().await.expect("stale");
    assert_eq!(r.status(), 200);
    let status = header(&r, "cache-status").expect("status").to_string();
    assert!(status.contains("fwd=stale"), "{status}");
    assert_eq!(r.text().await.expect("body"), "good copy");
    assert!(o.hits() >= 3, "the origin was asked first");

    // A hard purge leaves nothing to fall back on.
    let url = format!("http://127.0.0.1:{}/hard", gw.port);
    purge_json(&gw, serde_json::json!({ "urls": [url] })).await;
    let r = client().get(gw.url("/hard")).send().await.expect("gone");
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn a_response_with_more_tags_than_the_index_holds_is_not_stored() {
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let many = many.join(" ");
    let o = Origin::start(move |s| {
        let r = Reply::ok("tagged").header("cache-control", "max-age=600");
        if s.uri == "/many" {
            r.header("surrogate-key", &many)
        } else {
            r.header("surrogate-key", "t64")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    for _ in 0..2 {
        get(&gw, "/many").await;
        get(&gw, "/one").await;
    }
    assert_eq!(o.hits(), 3, "/many twice from the origin, /one stored");
    let report = purge_json(&gw, serde_json::json!({ "tags": ["t64"] })).await;
    assert_eq!(report["entries"], 1);
}
