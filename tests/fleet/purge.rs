//! (e) purges by tag, prefix and URL sent to one node apply on every node; (f) soft purges
//! mark stored responses stale (the next request revalidates, `fwd=stale`), so stale-if-error
//! still serves them while the origin is down.

use crate::fleet_lock;
use crate::harness::{assert_all_ok, paths, purge_url, run_once, Fleet, Spec, NAMES};
use crate::origin::Rule;
use serde_json::{json, Value};

/// A purge answer names every node, each `ok: true`.
fn assert_every_node_applied(what: &str, status: u16, answer: &Value, nodes: &[&str]) {
    assert_eq!(status, 200, "{what}: {answer}");
    let list = answer["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no `nodes` list in {answer}"));
    for n in nodes {
        let entry = list.iter().find(|e| e["node"] == *n);
        assert!(
            entry.is_some_and(|e| e["ok"] == true),
            "{what}: {n} did not report ok: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_purges_by_tag_prefix_and_url_sent_to_one_node_apply_on_every_node() {
    let _l = fleet_lock().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    let o = &fleet.origin;
    let c = &fleet.client;
    o.rule(Rule::new("/e/ts/").surrogate_key("t-s other-s"));
    o.rule(Rule::new("/e/tc/").cache_tag("other-c,t-c"));
    o.rule(
        Rule::new("/e/tx/")
            .surrogate_key("t-s-not other-s")
            .cache_tag("other-c"),
    );
    let by_url = paths("/e/u/", 20);
    // Purged: tagged t-s (Surrogate-Key) or t-c (Cache-Tag), under /e/pre/, the first ten of
    // /e/u/. Kept: other tags only (t-s-not, other-s, other-c), /e/prelude/ (not under the
    // purged prefix `http://fleet.test/e/pre/`), the other ten of /e/u/.
    let mut purged: Vec<String> = Vec::new();
    purged.extend(paths("/e/ts/", 20));
    purged.extend(paths("/e/tc/", 20));
    purged.extend(paths("/e/pre/", 20));
    purged.extend(by_url[..10].iter().cloned());
    let mut kept: Vec<String> = Vec::new();
    kept.extend(paths("/e/tx/", 20));
    kept.extend(paths("/e/prelude/", 20));
    kept.extend(by_url[10..].iter().cloned());
    let all: Vec<String> = purged.iter().chain(&kept).cloned().collect();
    let every_node: Vec<(usize, String)> = all
        .iter()
        .flat_map(|u| (0..3).map(move |n| (n, u.clone())))
        .collect();

    let fill = run_once(c, &every_node, 4).await;
    assert_all_ok("fill", &fill);
    for f in &fill {
        let r = f.result.as_ref().expect("ok");
        assert_eq!(r.version_line(), format!("{} v1", f.path));
    }
    let fetched = o.total();

    // New content everywhere at the origin; only purged URLs may show it.
    o.set_version("/e/", 2);
    let (s, a) = c.purge(0, &json!({ "tags": ["t-s", "t-c"] })).await;
    eprintln!("(e) purge by tag on {}: {s} {a}", NAMES[0]);
    assert_every_node_applied("purge by tag", s, &a, &NAMES);
    let (s, a) = c
        .purge(
            1,
            &json!({ "prefixes": [purge_url("/e/pre/")], "mode": "hard" }),
        )
        .await;
    eprintln!("(e) purge by prefix on {}: {s} {a}", NAMES[1]);
    assert_every_node_applied("purge by prefix", s, &a, &NAMES);
    let urls: Vec<String> = by_url[..10].iter().map(|p| purge_url(p)).collect();
    let (s, a) = c.purge(2, &json!({ "urls": urls })).await;
    eprintln!("(e) purge by URL on {}: {s} {a}", NAMES[2]);
    assert_every_node_applied("purge by URL", s, &a, &NAMES);

    let check = run_once(c, &every_node, 4).await;
    assert_all_ok("after the purges", &check);
    let mut old_after_purge = Vec::new();
    let mut kept_changed = Vec::new();
    for r in &check {
        let line = r.result.as_ref().expect("ok").version_line();
        if purged.contains(&r.path) {
            if line != format!("{} v2", r.path) {
                old_after_purge.push(format!("{} from {}: {line}", r.path, NAMES[r.node]));
            }
        } else if line != format!("{} v1", r.path) {
            kept_changed.push(format!("{} from {}: {line}", r.path, NAMES[r.node]));
        }
    }
    eprintln!(
        "(e) {} purged URLs x 3 nodes: {} served old content; {} kept URLs x 3 nodes: {} changed; origin fetches for the fill {fetched}, after the purges {}",
        purged.len(),
        old_after_purge.len(),
        kept.len(),
        kept_changed.len(),
        o.total() - fetched
    );
    assert!(
        old_after_purge.is_empty(),
        "no node serves purged content: {:?}",
        old_after_purge.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        kept_changed.is_empty(),
        "a purge removes only what it names: {:?}",
        kept_changed.iter().take(5).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_a_soft_purge_revalidates_and_leaves_stale_if_error_working() {
    let _l = fleet_lock().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    let o = &fleet.origin;
    let c = &fleet.client;

    // Soft purge of unchanged content: the next request goes to the origin, the ETag stays.
    o.rule(Rule::new("/f/soft"));
    let mut etags = Vec::new();
    for n in 0..3 {
        let r = c.get_ok(n, "/f/soft").await;
        etags.push(r.header("etag").map(str::to_string));
    }
    let etag = etags[0].clone().expect("a content ETag");
    assert!(
        etags.iter().all(|e| e.as_deref() == Some(etag.as_str())),
        "{etags:?}"
    );
    assert_eq!(o.count("/f/soft"), 1);
    let (s, a) = c
        .purge(
            1,
            &json!({ "urls": [purge_url("/f/soft")], "mode": "soft" }),
        )
        .await;
    eprintln!("(f) soft purge on {}: {s} {a}", NAMES[1]);
    assert_every_node_applied("soft purge", s, &a, &NAMES);
    let mut after = Vec::new();
    let mut revalidation = None;
    for (n, name) in NAMES.iter().enumerate() {
        let r = c.get_ok(n, "/f/soft").await;
        if n == 0 {
            revalidation = r.cache_status().into_iter().next();
        }
        after.push((
            *name,
            o.count("/f/soft"),
            r.header("etag").map(str::to_string),
            r.header("cache-status").map(str::to_string),
        ));
        assert_eq!(r.text(), o.body("/f/soft"));
    }
    eprintln!("(f) after the soft purge (node, origin count, ETag, Cache-Status): {after:?}");
    assert_eq!(
        after[0].1, 2,
        "the first request after a soft purge reaches the origin"
    );
    assert_eq!(after[2].1, 2, "and refreshes the entry for the next ones");
    // The owner's entry: the stored response was kept, stale, and revalidated (a hard purge
    // would show a miss here).
    let owner_entry = revalidation.expect("Cache-Status");
    assert!(
        owner_entry.params.iter().any(|p| p == "fwd=stale"),
        "after a soft purge the owner revalidates its stale copy (fwd=stale): {owner_entry:?}"
    );
    for (node, _, e, _) in &after {
        assert_eq!(
            e.as_deref(),
            Some(etag.as_str()),
            "{node}: same content, same ETag"
        );
    }

    // Soft purge, then the origin goes down: stale-if-error still serves the content.
    o.rule(Rule::new("/f/sie").cache_control("max-age=1, stale-if-error=600"));
    let body = o.body("/f/sie");
    for n in 0..3 {
        assert_eq!(c.get_ok(n, "/f/sie").await.text(), body);
    }
    let (s, a) = c
        .purge(2, &json!({ "urls": [purge_url("/f/sie")], "mode": "soft" }))
        .await;
    assert_every_node_applied("soft purge", s, &a, &NAMES);
    o.down();
    let mut served = Vec::new();
    for (n, name) in NAMES.iter().enumerate() {
        let r = c.get(n, "/f/sie").await;
        served.push(match &r {
            Ok(r) => format!("{name}: {} {:?}", r.status, r.header("cache-status")),
            Err(e) => format!("{name}: {e}"),
        });
        let ok = matches!(&r, Ok(r) if r.status == 200 && r.text() == body);
        if !ok {
            o.up().await;
            panic!("stale-if-error after a soft purge with the origin down: {served:?}");
        }
    }
    eprintln!(
        "(f) origin down after a soft purge ({} requests on open connections closed unanswered): {served:?}",
        o.refused()
    );
    o.up().await;
}

/// A successful unsafe request invalidates its URL on every node, not only on the node that
/// sent it to the origin; and a purge's propagation time (the slowest member's answer) is
/// reported over repeated purges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_unsafe_requests_invalidate_fleet_wide_and_purges_propagate_quickly() {
    let _l = fleet_lock().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    let o = &fleet.origin;
    let c = &fleet.client;
    let urls = paths("/i/", 12);
    let every_node: Vec<(usize, String)> = urls
        .iter()
        .flat_map(|u| (0..3).map(move |n| (n, u.clone())))
        .collect();
    assert_all_ok("fill", &run_once(c, &every_node, 4).await);
    o.set_version("/i/", 2);
    for (i, u) in urls.iter().enumerate() {
        let r = c
            .http
            .post(format!("http://{}{u}", c.publics[i % 3]))
            .header("host", crate::harness::HOST)
            .body("changed")
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 200, "POST {u}");
    }
    // The invalidation reaches the other members in the background: allow it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let stale = loop {
        let check = run_once(c, &every_node, 4).await;
        assert_all_ok("after the POSTs", &check);
        let stale: Vec<String> = check
            .iter()
            .filter(|r| r.result.as_ref().expect("ok").version_line() != format!("{} v2", r.path))
            .map(|r| format!("{} from {}", r.path, NAMES[r.node]))
            .collect();
        if stale.is_empty() || std::time::Instant::now() > deadline {
            break stale;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    eprintln!(
        "(i) {} URLs changed by POST through alternating nodes: {} node responses still old",
        urls.len(),
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "served after an invalidating POST: {stale:?}"
    );

    let mut slowest: Vec<f64> = Vec::new();
    for n in 0..30 {
        let (s, a) = c
            .purge(
                n % 3,
                &json!({ "urls": [purge_url(&urls[n % urls.len()])] }),
            )
            .await;
        assert_every_node_applied("purge", s, &a, &NAMES);
        let worst = a["nodes"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|e| e["seconds"].as_f64())
                    .fold(0.0, f64::max)
            })
            .unwrap_or(0.0);
        slowest.push(worst);
    }
    slowest.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| slowest[((slowest.len() - 1) as f64 * p).round() as usize] * 1000.0;
    eprintln!(
        "(i) purge propagation over {} purges (slowest member's answer): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        slowest.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
