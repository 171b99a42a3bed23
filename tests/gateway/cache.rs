//! The shared cache: storage bounds, eviction, purge, invalidation, variants, and what must
//! never be stored or shared.

use crate::common::*;
use bytes::Bytes;
use std::time::Duration;

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().expect("ascii"))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_cacheable_response_is_served_from_the_cache_with_age_and_cache_status() {
    let o = Origin::fixed("stored", &[("cache-control", "max-age=300")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let miss = http.get(gw.url("/s")).send().await.expect("miss");
    assert_eq!(
        header(&miss, "cache-status"),
        Some("etagate; fwd=uri-miss; fwd-status=200; stored")
    );
    let hit = http.get(gw.url("/s")).send().await.expect("hit");
    assert!(header(&hit, "cache-status")
        .expect("status")
        .starts_with("etagate; hit; ttl="));
    assert!(header(&hit, "age").is_some());
    assert_eq!(hit.text().await.expect("body"), "stored");
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn a_fill_of_ten_times_the_budget_keeps_memory_within_bounds() {
    let body = Bytes::from(vec![b'f'; 100_000]);
    let o = Origin::start(move |_| Reply::ok(body.clone()).header("cache-control", "max-age=600"))
        .await;
    let budget_mib = 4;
    let gw = Gateway::single(
        &o,
        "",
        &format!("cache:\n  budget: {budget_mib}MiB\n  max_object_size: 256KiB\n"),
    )
    .await;
    let http = client();
    // warm the allocator and the connection pool first
    for i in 0..20 {
        http.get(gw.url(&format!("/warm/{i}")))
            .send()
            .await
            .expect("warm")
            .bytes()
            .await
            .expect("body");
    }
    let baseline = rss_kib(gw.pid());
    // 400 objects of 100 KB: ten times the 4 MiB budget
    for i in 0..400 {
        let r = http
            .get(gw.url(&format!("/fill/{i}")))
            .send()
            .await
            .expect("fill");
        assert_eq!(r.bytes().await.expect("body").len(), 100_000);
    }
    let cached = gw.metric("etagate_cache_bytes", &[]).await;
    let budget = gw.metric("etagate_cache_budget_bytes", &[]).await;
    assert_eq!(budget, (budget_mib << 20) as f64);
    assert!(
        cached <= budget,
        "cache accounting {cached} exceeds the budget {budget}"
    );
    assert!(
        cached >= budget / 2.0,
        "the cache is actually used: {cached}"
    );
    assert!(gw.metric("etagate_cache_evictions_total", &[]).await > 0.0);
    let grown_kib = rss_kib(gw.pid()).saturating_sub(baseline);
    assert!(
        grown_kib < (budget_mib << 10) + 24 * 1024,
        "RSS grew by {grown_kib} KiB for a {budget_mib} MiB cache"
    );
}

#[tokio::test]
async fn evicted_responses_are_fetched_again_and_popular_ones_survive_a_scan() {
    let body = Bytes::from(vec![b'e'; 60_000]);
    let o = Origin::start(move |_| Reply::ok(body.clone()).header("cache-control", "max-age=600"))
        .await;
    let gw = Gateway::single(
        &o,
        "",
        "cache:\n  budget: 2MiB\n  max_object_size: 128KiB\n",
    )
    .await;
    let http = client();
    // a popular object, used repeatedly
    for _ in 0..5 {
        http.get(gw.url("/popular"))
            .send()
            .await
            .expect("popular")
            .bytes()
            .await
            .expect("body");
    }
    // a scan of one-hit objects several times the budget
    for i in 0..120 {
        http.get(gw.url(&format!("/scan/{i}")))
            .send()
            .await
            .expect("scan")
            .bytes()
            .await
            .expect("body");
    }
    let before = o.hits();
    http.get(gw.url("/scan/60"))
        .send()
        .await
        .expect("scanned")
        .bytes()
        .await
        .expect("body");
    assert_eq!(
        o.hits(),
        before + 1,
        "a one-hit object of the scan was evicted"
    );
    assert!(gw.metric("etagate_cache_evictions_total", &[]).await > 0.0);
    let before = o.hits();
    let r = http
        .get(gw.url("/popular"))
        .send()
        .await
        .expect("popular again");
    assert!(header(&r, "cache-status").expect("status").contains("hit"));
    assert_eq!(o.hits(), before, "the popular object survived the scan");
}

#[tokio::test]
async fn purge_removes_every_variant_and_needs_the_token() {
    let o = Origin::start(|s| {
        Reply::ok(format!(
            "enc={}",
            s.header("accept-encoding").unwrap_or("none")
        ))
        .header("cache-control", "max-age=600")
        .header("vary", "accept-encoding")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for enc in ["gzip", "br"] {
        http.get(gw.url("/purge-me?a=1"))
            .header("accept-encoding", enc)
            .send()
            .await
            .expect("fill");
    }
    assert_eq!(o.hits(), 2);
    let target = format!("http://127.0.0.1:{}/purge-me?a=1", gw.port);
    let denied = http
        .post(gw.admin_url("/purge"))
        .body(target.clone())
        .send()
        .await
        .expect("purge");
    assert_eq!(denied.status(), 401);
    let ok = http
        .post(gw.admin_url("/purge"))
        .bearer_auth(ADMIN_TOKEN)
        .body(target)
        .send()
        .await
        .expect("purge");
    assert_eq!(ok.status(), 200);
    let report: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(report["urls"][0]["entries"], 2);
    for enc in ["gzip", "br"] {
        http.get(gw.url("/purge-me?a=1"))
            .header("accept-encoding", enc)
            .send()
            .await
            .expect("refill");
    }
    assert_eq!(o.hits(), 4, "both variants were gone");
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_url_location_and_content_location() {
    let o = Origin::start(|s| match (s.method.as_str(), s.uri.as_str()) {
        ("POST", "/fail") => Reply::status(500).body("boom"),
        ("POST", _) => Reply::status(201)
            .header("location", "/items/2")
            .header("content-location", "/items/3")
            .body("created"),
        _ => Reply::ok(format!("item {}", s.uri)).header("cache-control", "max-age=600"),
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    for p in ["/items", "/items/2", "/items/3", "/fail"] {
        http.get(gw.url(p)).send().await.expect("fill");
        http.get(gw.url(p)).send().await.expect("hit");
    }
    assert_eq!(o.hits(), 4);
    http.post(gw.url("/items"))
        .body("x")
        .send()
        .await
        .expect("post");
    http.post(gw.url("/fail"))
        .body("x")
        .send()
        .await
        .expect("post");
    let before = o.hits();
    for p in ["/items", "/items/2", "/items/3"] {
        http.get(gw.url(p)).send().await.expect("after");
    }
    assert_eq!(o.hits(), before + 3, "all three were invalidated");
    let before = o.hits();
    http.get(gw.url("/fail")).send().await.expect("after");
    assert_eq!(o.hits(), before, "a 5xx invalidates nothing");
}

#[tokio::test]
async fn vary_selects_variants_with_normalized_accept_encoding() {
    let o = Origin::start(|s| {
        Reply::ok(format!(
            "variant {}",
            s.header("accept-encoding").unwrap_or("-")
        ))
        .header("cache-control", "max-age=600")
        .header("vary", "Accept-Encoding")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let get = |enc: &'static str| {
        let (http, url) = (http.clone(), gw.url("/vary"));
        async move {
            http.get(url)
                .header("accept-encoding", enc)
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        }
    };
    assert_eq!(get("gzip, br").await, "variant gzip, br");
    assert_eq!(
        get("br,GZIP").await,
        "variant gzip, br",
        "same tokens, other order and case"
    );
    assert_eq!(o.hits(), 1);
    assert_eq!(get("identity").await, "variant identity");
    assert_eq!(o.hits(), 2);
    assert_eq!(get(" gzip ,br ").await, "variant gzip, br");
    assert_eq!(o.hits(), 2, "both variants are kept");
}

#[tokio::test]
async fn vary_star_is_never_served_from_the_cache() {
    let o = Origin::fixed("star", &[("cache-control", "max-age=600"), ("vary", "*")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(gw.url("/star")).send().await.expect("first");
    http.get(gw.url("/star")).send().await.expect("second");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn responses_to_authorized_requests_are_shared_only_when_the_origin_allows_it() {
    let o = Origin::start(|s| {
        let cc = if s.uri.starts_with("/public") {
            "public, max-age=600"
        } else {
            "max-age=600"
        };
        Reply::ok(format!(
            "for {}",
            s.header("authorization").unwrap_or("anonymous")
        ))
        .header("cache-control", cc)
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(gw.url("/secret"))
        .header("authorization", "Bearer alice")
        .send()
        .await
        .expect("alice");
    let bob = http.get(gw.url("/secret")).send().await.expect("anonymous");
    assert_eq!(
        bob.text().await.expect("body"),
        "for anonymous",
        "alice's response was not shared"
    );
    http.get(gw.url("/public"))
        .header("authorization", "Bearer alice")
        .send()
        .await
        .expect("alice");
    let anon = http.get(gw.url("/public")).send().await.expect("anonymous");
    assert_eq!(
        anon.text().await.expect("body"),
        "for Bearer alice",
        "public allows sharing"
    );
}

#[tokio::test]
async fn set_cookie_responses_are_not_stored_unless_the_route_says_so() {
    let o = Origin::fixed(
        "with cookie",
        &[("cache-control", "max-age=600"), ("set-cookie", "id=1")],
    )
    .await;
    let plain = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(plain.url("/c")).send().await.expect("first");
    http.get(plain.url("/c")).send().await.expect("second");
    assert_eq!(o.hits(), 2, "not stored by default");

    let o2 = Origin::fixed(
        "with cookie",
        &[("cache-control", "max-age=600"), ("set-cookie", "id=1")],
    )
    .await;
    let opted = Gateway::single(&o2, "    cache: { store_set_cookie: true }\n", "").await;
    let first = http.get(opted.url("/c")).send().await.expect("first");
    let tag = first.headers()["etag"].to_str().expect("ascii").to_string();
    http.get(opted.url("/c")).send().await.expect("second");
    assert_eq!(o2.hits(), 1, "stored when the route opts in");
    let nm = http
        .get(opted.url("/c"))
        .header("if-none-match", tag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(nm.status(), 304);
    assert!(
        nm.headers().get("set-cookie").is_none(),
        "a 304 never replays a stored cookie"
    );
}

#[tokio::test]
async fn unkeyed_headers_cannot_poison_the_cache() {
    let o = Origin::start(|s| {
        let host = s
            .header("x-forwarded-host")
            .or(s.header("host"))
            .unwrap_or("?")
            .to_string();
        Reply::ok(format!("<a href=//{host}/next>")).header("cache-control", "max-age=600")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let attacker = http
        .get(gw.url("/home"))
        .header("host", "site.test")
        .header("x-forwarded-host", "evil.test")
        .header("x-original-url", "/admin")
        .send()
        .await
        .expect("attacker");
    assert!(!attacker.text().await.expect("body").contains("evil"));
    let victim = http
        .get(gw.url("/home"))
        .header("host", "site.test")
        .send()
        .await
        .expect("victim");
    assert_eq!(
        victim.text().await.expect("body"),
        "<a href=//site.test/next>"
    );
    // the host and the query are part of the key
    http.get(gw.url("/home"))
        .header("host", "other.test")
        .send()
        .await
        .expect("other host");
    http.get(gw.url("/home?x=1"))
        .header("host", "site.test")
        .send()
        .await
        .expect("query");
    assert_eq!(o.hits(), 3);
}

#[tokio::test]
async fn concurrent_misses_for_one_url_reach_the_origin_once() {
    let o = Origin::start(|_| {
        Reply::ok("slow and popular")
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(300))
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url) = (http.clone(), gw.url("/coalesce"));
        tasks.push(tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), "slow and popular");
    }
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn request_directives_are_honoured() {
    let o = Origin::fixed("directive", &[("cache-control", "max-age=600")]).await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let oic = http
        .get(gw.url("/d"))
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .expect("only-if-cached");
    assert_eq!(oic.status(), 504);
    assert_eq!(o.hits(), 0);
    http.get(gw.url("/d")).send().await.expect("fill");
    http.get(gw.url("/d"))
        .header("cache-control", "no-cache")
        .send()
        .await
        .expect("no-cache");
    assert_eq!(o.hits(), 2, "no-cache goes to the origin");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    http.get(gw.url("/d"))
        .header("cache-control", "max-age=0")
        .send()
        .await
        .expect("max-age=0");
    assert_eq!(
        o.hits(),
        3,
        "max-age=0 refuses a stored response older than 0s"
    );
    let hit = http
        .get(gw.url("/d"))
        .header("cache-control", "max-age=60")
        .send()
        .await
        .expect("ok");
    assert!(header(&hit, "cache-status")
        .expect("status")
        .contains("hit"));
    assert_eq!(o.hits(), 3);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let o = Origin::start(|s| {
        Reply::ok(format!("generation {}", s.number))
            .header("cache-control", "max-age=1, stale-while-revalidate=30")
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    assert_eq!(
        http.get(gw.url("/swr"))
            .send()
            .await
            .expect("r")
            .text()
            .await
            .expect("b"),
        "generation 1"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let stale = http.get(gw.url("/swr")).send().await.expect("stale");
    assert!(header(&stale, "cache-status")
        .expect("status")
        .contains("stale-while-revalidate"));
    assert_eq!(stale.text().await.expect("b"), "generation 1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(o.hits(), 2, "refreshed in the background");
    let fresh = http.get(gw.url("/swr")).send().await.expect("fresh");
    assert_eq!(fresh.text().await.expect("b"), "generation 2");
}

#[tokio::test]
async fn stale_if_error_serves_the_stored_response_when_the_origin_fails() {
    let o = Origin::start(|s| {
        if s.number == 1 {
            Reply::ok("good copy").header("cache-control", "max-age=1, stale-if-error=60")
        } else {
            Reply::status(503).body("down")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(gw.url("/sie")).send().await.expect("fill");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = http.get(gw.url("/sie")).send().await.expect("stale");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "cache-status")
        .expect("status")
        .contains("fwd=stale; fwd-status=503"));
    assert_eq!(r.text().await.expect("body"), "good copy");
}

#[tokio::test]
async fn must_revalidate_forbids_stale_on_error() {
    let o = Origin::start(|s| {
        if s.number == 1 {
            Reply::ok("strict").header(
                "cache-control",
                "max-age=1, must-revalidate, stale-if-error=60",
            )
        } else {
            Reply::status(503).body("down")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    http.get(gw.url("/mr")).send().await.expect("fill");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = http.get(gw.url("/mr")).send().await.expect("after");
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn stale_responses_are_revalidated_and_304s_update_the_stored_headers() {
    let o = Origin::start(|s| {
        if s.header("if-modified-since").is_some() {
            Reply::status(304)
                .header("cache-control", "max-age=600")
                .header("x-version", "updated")
        } else {
            Reply::ok("revalidate me")
                .header("cache-control", "max-age=1")
                .header("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
                .header("x-version", "original")
        }
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let first = http.get(gw.url("/rv")).send().await.expect("first");
    let tag = first.headers()["etag"].to_str().expect("ascii").to_string();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = http.get(gw.url("/rv")).send().await.expect("revalidated");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-version"), Some("updated"));
    assert_eq!(
        header(&r, "etag"),
        Some(tag.as_str()),
        "the content ETag is kept"
    );
    assert!(
        o.last().header("if-none-match").is_none(),
        "etagate's own tag never goes upstream"
    );
    assert_eq!(r.text().await.expect("body"), "revalidate me");
    let hit = http.get(gw.url("/rv")).send().await.expect("hit");
    assert!(header(&hit, "cache-status")
        .expect("status")
        .contains("hit"));
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn a_stale_entry_refetched_with_the_same_bytes_counts_as_revalidated_unchanged() {
    // No validators at the origin: the refetch is a full 200, judged by its content tag.
    let origin = Origin::fixed("same bytes", &[("cache-control", "max-age=1")]).await;
    let gw = Gateway::single(&origin, "", "").await;
    let http = client();
    let first = http.get(gw.url("/r")).send().await.expect("get");
    let tag = first.headers()["etag"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let second = http.get(gw.url("/r")).send().await.expect("get");
    assert_eq!(second.headers()["etag"], tag);
    assert!(second.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .contains("fwd=stale"));
    assert_eq!(origin.hits(), 2);
    let unchanged = gw
        .metric(
            "etagate_cache_requests_total",
            &[("outcome", "revalidated_unchanged")],
        )
        .await;
    let changed = gw
        .metric(
            "etagate_cache_requests_total",
            &[("outcome", "revalidated_changed")],
        )
        .await;
    assert_eq!((unchanged, changed), (1.0, 0.0));
}

/// Issue #15: a key whose response said `no-store` is remembered, and its next misses go
/// through Pingora's pipeline without the inner subrequest or the cache; once the origin
/// changes its mind the key is forgotten and its responses are tagged and stored again.
#[tokio::test]
async fn a_no_store_key_skips_the_subrequest_until_its_response_changes() {
    let cacheable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cacheable.clone();
    let o = Origin::start(move |_| {
        let cc = if flag.load(std::sync::atomic::Ordering::SeqCst) {
            "max-age=300"
        } else {
            "no-store"
        };
        Reply::ok("per-user page").header("cache-control", cc)
    })
    .await;
    let gw = Gateway::single(&o, "", "").await;
    let http = client();
    let outcome = |o: &'static str| [("outcome", o)];

    let first = http.get(gw.url("/me")).send().await.expect("first");
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "etag"), None, "no-store gets no tag");
    assert!(header(&first, "cache-status")
        .expect("cs")
        .contains("fwd=uri-miss"));
    assert_eq!(
        gw.metric(
            "etagate_pass_through_predictions_total",
            &outcome("learned")
        )
        .await,
        1.0
    );

    for _ in 0..3 {
        let r = http.get(gw.url("/me")).send().await.expect("predicted");
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "etag"), None);
        let cs = header(&r, "cache-status").expect("cs").to_string();
        assert!(cs.contains("fwd=bypass"), "{cs}");
        assert_eq!(r.text().await.expect("body"), "per-user page");
    }
    assert_eq!(
        gw.metric(
            "etagate_pass_through_predictions_total",
            &outcome("predicted")
        )
        .await,
        3.0
    );
    // Another URL is not affected.
    let other = http.get(gw.url("/other")).send().await.expect("other");
    assert!(header(&other, "cache-status")
        .expect("cs")
        .contains("fwd=uri-miss"));

    cacheable.store(true, std::sync::atomic::Ordering::SeqCst);
    let changed = http.get(gw.url("/me")).send().await.expect("changed");
    assert_eq!(changed.status(), 200);
    assert_eq!(
        gw.metric(
            "etagate_pass_through_predictions_total",
            &outcome("forgotten")
        )
        .await,
        1.0
    );
    let stored = http.get(gw.url("/me")).send().await.expect("stored");
    assert!(header(&stored, "etag").is_some(), "tagged again");
    assert!(header(&stored, "cache-status")
        .expect("cs")
        .contains("stored"));
    let hit = http.get(gw.url("/me")).send().await.expect("hit");
    assert!(header(&hit, "cache-status")
        .expect("cs")
        .starts_with("etagate; hit"));
    assert_eq!(
        o.hits(),
        1 + 3 + 1 + 1 + 1,
        "every no-store request reached the origin"
    );
}

/// RFC 9213 §2.2: `CDN-Cache-Control` and etagate's own targeted field decide what etagate
/// stores, over `Cache-Control` (which still reaches the client); §3 `CDN-Cache-Control` is
/// passed on, etagate's own field is not (docs/etags-and-caching.md).
#[tokio::test]
async fn targeted_cache_control_decides_storage_and_only_the_cdn_field_is_forwarded() {
    let stored = Origin::fixed(
        "cdn",
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
            ("etagate-cache-control", "bogus, &&&"),
        ],
    )
    .await;
    let gw = Gateway::single(&stored, "", "").await;
    let http = client();
    let first = http.get(gw.url("/t")).send().await.expect("miss");
    assert_eq!(header(&first, "cache-control"), Some("no-store"));
    assert_eq!(header(&first, "cdn-cache-control"), Some("max-age=600"));
    assert_eq!(header(&first, "etagate-cache-control"), None);
    let second = http.get(gw.url("/t")).send().await.expect("hit");
    assert!(
        header(&second, "cache-status")
            .expect("status")
            .starts_with("etagate; hit"),
        "stored by CDN-Cache-Control despite Cache-Control: no-store"
    );
    assert_eq!(header(&second, "etagate-cache-control"), None);
    assert_eq!(stored.hits(), 1);

    // A renamed own field, first on the list, forbids what Cache-Control allows.
    let refused = Origin::fixed(
        "own",
        &[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "max-age=600"),
            ("acme-cache-control", "no-store"),
        ],
    )
    .await;
    let gw = Gateway::single(
        &refused,
        "",
        "cache:\n  targeted_field: Acme-Cache-Control\n",
    )
    .await;
    for _ in 0..2 {
        let r = http.get(gw.url("/o")).send().await.expect("request");
        assert_eq!(header(&r, "acme-cache-control"), None, "never forwarded");
        assert_eq!(r.text().await.expect("body"), "own");
    }
    assert_eq!(refused.hits(), 2, "not stored");
}

/// RFC 9111 §3.3 and issue #14 item 5: a representation larger than the cache keeps and than
/// the route holds back to tag is learned from its first response; its later range requests
/// go to the origin as ranges instead of costing a transfer of the whole representation each,
/// and the origin's 206 reaches the client as sent (no content ETag: a tag is only ever for a
/// complete body). The next full request streams it whole.
#[tokio::test]
async fn ranges_of_a_representation_too_large_to_keep_are_forwarded_as_ranges() {
    let body: Bytes = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let whole = body.clone();
    let o = Origin::start(move |seen| {
        let reply = match seen.header("range").and_then(|r| r.strip_prefix("bytes=")) {
            Some(spec) => {
                let (a, b) = spec.split_once('-').expect("a-b");
                let (a, b): (usize, usize) = (a.parse().expect("a"), b.parse().expect("b"));
                Reply::status(206)
                    .header("content-range", format!("bytes {a}-{b}/{}", whole.len()))
                    .body(whole.slice(a..=b))
            }
            None => Reply::ok(whole.clone()),
        };
        reply.header("cache-control", "max-age=600")
    })
    .await;
    // Keeps at most 64 KiB (a sixteenth of 1 MiB), holds back at most 16 KiB.
    let gw = Gateway::single(
        &o,
        "    etag: { max_buffer: 16KiB }\n",
        "cache:\n  budget: 1MiB\n",
    )
    .await;
    let http = client();
    let range = |a: usize, b: usize| {
        http.get(gw.url("/big"))
            .header("range", format!("bytes={a}-{b}"))
            .send()
    };
    let first = range(1000, 2023).await.expect("first");
    assert_eq!(first.status(), 206);
    assert_eq!(first.bytes().await.expect("body"), body.slice(1000..2024));
    assert_eq!(
        o.last().header("range"),
        None,
        "the first request learns: a whole fetch"
    );
    for (a, b) in [(5000, 5099), (299_000, 299_999)] {
        let r = range(a, b).await.expect("range");
        assert_eq!(r.status(), 206);
        assert_eq!(
            header(&r, "content-range"),
            Some(format!("bytes {a}-{b}/300000").as_str())
        );
        assert_eq!(header(&r, "etag"), None);
        assert!(header(&r, "cache-status")
            .expect("status")
            .contains("fwd=bypass"));
        assert_eq!(r.bytes().await.expect("body"), body.slice(a..=b));
        assert_eq!(
            o.last().header("range"),
            Some(format!("bytes={a}-{b}").as_str()),
            "forwarded as a range"
        );
    }
    let full = http.get(gw.url("/big")).send().await.expect("full");
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.expect("body"), body);
    assert_eq!(o.hits(), 4);
    assert_eq!(
        gw.metric(
            "etagate_pass_through_predictions_total",
            &[("outcome", "predicted")]
        )
        .await,
        3.0
    );
}
