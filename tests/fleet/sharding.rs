//! (a) origin offload and (b) aggregate cache capacity: the sharded fleet against the same
//! workload on an unsharded one (no `cluster:`, three independent caches).
//!
//! The unsharded runs are the baselines: each runs once per test process (memoized), in its own
//! test so that it passes on its own (it checks the harness: namespaces, nodes, the origin
//! reachable from every namespace), and is printed beside the sharded numbers.

use crate::fleet_lock;
use crate::harness::{assert_all_ok, paths, run_once, Fleet, Outcome, Spec, NAMES};
use crate::origin::Rule;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio::sync::OnceCell;

const A_URLS: usize = 1_000;
const A_REQUESTS: usize = 3_000;
/// (a) allows this many origin requests for 1,000 URLs.
const A_MAX_ORIGIN: usize = 1_010;

/// (b): per-node budget B, object size and working set (2.5 B).
///
/// B is what a node can keep stored: 7/8 of its `cache.budget` (an eighth is kept for fills in
/// flight, docs/configuration.md). Measured against the whole `cache.budget` instead, 2.5 of it
/// over three nodes is 213 objects of 16 KiB each against the 215 a node holds with headers and
/// bookkeeping, and the test would judge the key sampling (640 keys over three owners: a
/// standard deviation of 12 objects per node), not the sharding: 0.902 to 0.955 over eight
/// runs. With B = 7/8 of the budget, the working set is 560 objects, 187 per node on average.
const B_BUDGET: &str = "4MiB";
const B_BUDGET_BYTES: usize = (4 << 20) * 7 / 8;
const B_OBJECT: usize = 16 << 10;
const B_OBJECTS: usize = B_BUDGET_BYTES * 5 / 2 / B_OBJECT;
const B_MIN_HIT_RATIO: f64 = 0.90;

const WORKERS: usize = 6;

/// (a)'s workload: request i for URL i mod 1,000 on node i mod 3, so each URL is asked of
/// all three nodes, 1,000 requests apart. The origin's request count afterwards.
async fn workload_a(fleet: &Fleet) -> (usize, Vec<Outcome>) {
    let urls = paths("/a/", A_URLS);
    let plan: Vec<(usize, String)> = (0..A_REQUESTS)
        .map(|i| (i % fleet.size(), urls[i % A_URLS].clone()))
        .collect();
    let t = Instant::now();
    let out = run_once(&fleet.client, &plan, WORKERS).await;
    let took = t.elapsed();
    assert_all_ok("(a) workload", &out);
    eprintln!(
        "(a) {} requests in {:.1} s ({:.0}/s)",
        out.len(),
        took.as_secs_f64(),
        out.len() as f64 / took.as_secs_f64()
    );
    (fleet.origin.total(), out)
}

/// The unsharded fleet's origin count for (a) (about 3,000: each node fetches each URL).
pub async fn unsharded_a() -> usize {
    static CELL: OnceCell<usize> = OnceCell::const_new();
    *CELL
        .get_or_init(|| async {
            let fleet = Fleet::start(Spec::unsharded(3)).await;
            let (origin, out) = workload_a(&fleet).await;
            eprintln!("(a) unsharded fleet: {A_REQUESTS} requests for {A_URLS} URLs reached the origin {origin} times");
            // The harness check: every node answered, from its own cache on a repeat.
            assert!(
                (A_REQUESTS - 10..=A_REQUESTS).contains(&origin),
                "three independent caches fetch each URL once each: {origin}"
            );
            for o in &out {
                let entries = o.result.as_ref().expect("ok").cache_status();
                assert_eq!(entries.len(), 1, "one cache per request without a cluster: {entries:?}");
            }
            origin
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a0_unsharded_baseline_fetches_each_url_once_per_node() {
    let _l = fleet_lock().await;
    unsharded_a().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_fleet_fetches_each_url_from_the_origin_about_once() {
    let _l = fleet_lock().await;
    let baseline = unsharded_a().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    let (origin, out) = workload_a(&fleet).await;

    // Who owns what, as Cache-Status tells: the first entry, the same for all three requests of
    // a URL; one entry when the node asked is the owner, else the owner then the node asked.
    let mut owners: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut bad_shape = Vec::new();
    let mut repeat_owner_hits = 0;
    for (i, o) in out.iter().enumerate() {
        let r = o.result.as_ref().expect("ok");
        let entries = r.cache_status();
        let asked = NAMES[o.node];
        let shape_ok = match entries.first() {
            Some(first) if first.name == asked => entries.len() == 1,
            Some(first) => {
                NAMES.contains(&first.name.as_str())
                    && entries.len() == 2
                    && entries[1].name == asked
            }
            None => false,
        };
        if !shape_ok {
            bad_shape.push(format!(
                "{} from {asked}: {:?}",
                o.path,
                r.header("cache-status")
            ));
        }
        if let Some(first) = entries.first() {
            owners
                .entry(o.path.as_str())
                .or_default()
                .insert(first.name.clone());
            if i >= A_URLS && first.hit() {
                repeat_owner_hits += 1;
            }
        }
    }
    let inconsistent: Vec<_> = owners.iter().filter(|(_, s)| s.len() != 1).collect();
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    for s in owners.values().filter(|s| s.len() == 1) {
        *owned
            .entry(s.iter().next().cloned().unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!(
        "(a) sharded fleet: {A_REQUESTS} requests for {A_URLS} URLs reached the origin {origin} times (limit {A_MAX_ORIGIN}); unsharded fleet: {baseline}"
    );
    eprintln!(
        "(a) owners by Cache-Status: {owned:?}; URLs with more than one owner: {}; responses with a wrong Cache-Status shape: {}; repeat requests answered by an owner hit: {repeat_owner_hits} of {}",
        inconsistent.len(),
        bad_shape.len(),
        A_REQUESTS - A_URLS
    );
    assert!(
        (A_URLS..=A_MAX_ORIGIN).contains(&origin),
        "the sharded fleet reached the origin {origin} times for {A_URLS} URLs"
    );
    assert!(
        inconsistent.is_empty(),
        "each key has one owner; these had several: {:?}",
        inconsistent.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        bad_shape.is_empty(),
        "Cache-Status must list the owner first and the node asked second (one entry when they are the same): {:?}",
        bad_shape.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        repeat_owner_hits >= A_REQUESTS - A_URLS - 10,
        "the 2nd and 3rd request of a URL are owner hits: {repeat_owner_hits}"
    );
}

/// (b)'s two passes, round-robin over the nodes with one counter across both passes (560
/// objects: a URL meets another node in the second pass). The second pass's hit ratio, and the
/// per-node cache gauges after it.
async fn workload_b(fleet: &Fleet) -> (f64, String) {
    fleet.origin.rule(Rule::new("/b/").size(B_OBJECT));
    let urls = paths("/b/", B_OBJECTS);
    let n = fleet.size();
    let pass = |p: usize| -> Vec<(usize, String)> {
        urls.iter()
            .enumerate()
            .map(|(u, path)| ((p * B_OBJECTS + u) % n, path.clone()))
            .collect()
    };
    let t = Instant::now();
    let first = run_once(&fleet.client, &pass(0), WORKERS).await;
    assert_all_ok("(b) pass 1", &first);
    let after_first = fleet.origin.total();
    let second = run_once(&fleet.client, &pass(1), WORKERS).await;
    assert_all_ok("(b) pass 2", &second);
    let origin_second = fleet.origin.total() - after_first;
    for o in first.iter().chain(&second) {
        let r = o.result.as_ref().expect("ok");
        assert_eq!(r.body.len(), B_OBJECT, "{}: whole object", o.path);
    }
    let ratio = 1.0 - origin_second as f64 / B_OBJECTS as f64;
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    for o in &first {
        *owned.entry(o.owner().unwrap_or_default()).or_default() += 1;
    }
    let mut gauges = vec![format!("first Cache-Status entries of pass 1: {owned:?}")];
    for (i, name) in NAMES.iter().enumerate().take(n) {
        let m = fleet.client.scrape(i).await;
        gauges.push(format!(
            "{name}: {} objects, {:.2} MiB, {} evictions",
            crate::common::metric_value(&m, "etagate_cache_objects", &[]),
            crate::common::metric_value(&m, "etagate_cache_bytes", &[]) / (1 << 20) as f64,
            crate::common::metric_value(&m, "etagate_cache_evictions_total", &[]),
        ));
    }
    eprintln!(
        "(b) pass 1: origin {after_first} of {B_OBJECTS}; pass 2: origin {origin_second}, hit ratio {ratio:.3} ({:.1} s for both passes)",
        t.elapsed().as_secs_f64()
    );
    (ratio, gauges.join("; "))
}

/// The unsharded fleet's second-pass hit ratio for (b).
pub async fn unsharded_b() -> f64 {
    static CELL: OnceCell<f64> = OnceCell::const_new();
    *CELL
        .get_or_init(|| async {
            let fleet = Fleet::start(Spec::unsharded(3).budget(B_BUDGET)).await;
            let (ratio, gauges) = workload_b(&fleet).await;
            eprintln!("(b) unsharded fleet (budget {B_BUDGET} each, working set {B_OBJECTS} x {} KiB): second-pass hit ratio {ratio:.3}; {gauges}", B_OBJECT >> 10);
            // The harness check: independent caches do not share, so a URL met by another node
            // in the second pass is a miss there.
            assert!(ratio < 0.5, "the unsharded fleet should thrash: {ratio}");
            ratio
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b0_unsharded_baseline_thrashes_on_a_working_set_of_two_and_a_half_budgets() {
    let _l = fleet_lock().await;
    unsharded_b().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_sharded_fleet_holds_a_working_set_of_two_and_a_half_budgets() {
    let _l = fleet_lock().await;
    let baseline = unsharded_b().await;
    let fleet = Fleet::start(Spec::cluster(3).budget(B_BUDGET)).await;
    let (ratio, gauges) = workload_b(&fleet).await;
    eprintln!(
        "(b) sharded fleet (budget {B_BUDGET} each, working set {B_OBJECTS} x {} KiB): second-pass hit ratio {ratio:.3} (at least {B_MIN_HIT_RATIO}); unsharded: {baseline:.3}; {gauges}",
        B_OBJECT >> 10
    );
    assert!(
        ratio >= B_MIN_HIT_RATIO,
        "the sharded fleet's second pass hit ratio is {ratio:.3}; {gauges}. A node holds about \
         215 of these objects (7/8 of its budget, less per-entry overhead) against 187 per node \
         on average"
    );
}

/// (j) uncacheable responses do not go through an owner: the first request for a key cannot
/// know, and goes to its owner; its `private` or `no-store` answer is remembered by the member
/// the client reached, whose next requests for that key go to the origin directly (one
/// `Cache-Status` entry, its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j_private_and_no_store_responses_skip_the_owner_after_the_first() {
    let _l = fleet_lock().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    fleet
        .origin
        .rule(Rule::new("/j/p/").cache_control("private"));
    fleet
        .origin
        .rule(Rule::new("/j/n/").cache_control("no-store"));
    let c = &fleet.client;
    let mut checked = 0;
    for prefix in ["/j/p/", "/j/n/"] {
        for u in paths(prefix, 30) {
            let first = c.get_ok(0, &u).await;
            let entries = first.cache_status();
            if entries.first().map(|e| e.name.as_str()) == Some(NAMES[0]) {
                continue; // etagate-a owns it: nothing to skip
            }
            assert_eq!(
                entries.len(),
                2,
                "{u}: first through its owner: {entries:?}"
            );
            let second = c.get_ok(0, &u).await;
            let entries = second.cache_status();
            assert_eq!(
                entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                [NAMES[0]],
                "{u}: then straight to the origin from etagate-a: {:?}",
                second.header("cache-status")
            );
            assert_eq!(second.text(), fleet.origin.body(&u));
            assert_eq!(fleet.origin.count(&u), 2, "{u}: both reached the origin");
            checked += 1;
        }
    }
    eprintln!("(j) {checked} private or no-store keys owned elsewhere: the second request skipped the owner");
    assert!(checked >= 10, "{checked}");
}
