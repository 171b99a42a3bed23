//! Membership changes: removing one of three members moves only its keys (about a third), and
//! (h) reloads that add and remove a member under load fail no request.

use crate::fleet_lock;
use crate::harness::{
    assert_all_ok, failures, paths, run, run_once, Bounds, Fleet, Spec, NAMES, PROBE_INTERVAL,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Owner per path, asking node `node` for each.
async fn owners_via(fleet: &Fleet, node: usize, urls: &[String]) -> Vec<String> {
    let plan: Vec<(usize, String)> = urls.iter().map(|u| (node, u.clone())).collect();
    let out = run_once(&fleet.client, &plan, 4).await;
    assert_all_ok("owner survey", &out);
    out.iter()
        .map(|o| {
            o.owner()
                .unwrap_or_else(|| panic!("{}: no Cache-Status", o.path))
        })
        .collect()
}

fn tally(owners: &[String]) -> BTreeMap<&str, usize> {
    let mut t = BTreeMap::new();
    for o in owners {
        *t.entry(o.as_str()).or_default() += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_from_three_members_to_two_moves_only_the_removed_members_keys() {
    let _l = fleet_lock().await;
    let mut fleet = Fleet::start(Spec::cluster(3)).await;
    let urls = paths("/r/", 300);
    let before = owners_via(&fleet, 0, &urls).await;

    fleet.set_members(Some(&[0, 1]));
    fleet.reload(0).await;
    fleet.reload(1).await;
    tokio::time::sleep(PROBE_INTERVAL).await;
    let after = owners_via(&fleet, 0, &urls).await;
    let after_b = owners_via(&fleet, 1, &urls).await;

    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let moved_not_c: Vec<String> = urls
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| b != a && b.as_str() != NAMES[2])
        .map(|(u, (b, a))| format!("{u}: {b} -> {a}"))
        .collect();
    let fraction = moved as f64 / urls.len() as f64;
    eprintln!(
        "ring 3 -> 2: owners before {:?}, after {:?}; {moved} of {} keys changed owner ({fraction:.3}), {} of them not {}'s",
        tally(&before),
        tally(&after),
        urls.len(),
        moved_not_c.len(),
        NAMES[2]
    );
    assert_eq!(
        after, after_b,
        "both remaining members agree on every owner"
    );
    assert!(
        after.iter().all(|o| o != NAMES[2]),
        "a removed member owns nothing"
    );
    assert!(
        moved_not_c.is_empty(),
        "keys of the remaining members keep their owner: {:?}",
        moved_not_c.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        (0.15..=0.55).contains(&fraction),
        "about a third of the keys change owner, not all: {fraction:.3}"
    );
}

const H_MAX_REQUESTS: usize = 20_000;
const H_MAX_TIME: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reloads_adding_and_removing_a_member_under_load_fail_no_request() {
    let _l = fleet_lock().await;
    let mut fleet = Fleet::new(Spec::cluster(3).members(&[0, 1])).await;
    fleet.start_nodes(&[0, 1]).await;
    let urls = paths("/h/", 200);
    let plan: Vec<(usize, String)> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| (i % 2, u.clone()))
        .collect();

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, plan, stop) = (fleet.client.clone(), plan.clone(), stop.clone());
        tokio::spawn(async move {
            run(
                &client,
                &plan,
                4,
                Bounds {
                    max_requests: H_MAX_REQUESTS,
                    deadline: t0 + H_MAX_TIME,
                },
                t0,
                Some(stop),
            )
            .await
        })
    };
    let mut steps = Vec::new();
    let mut step = |what: &str| steps.push(format!("{:.2} s {what}", t0.elapsed().as_secs_f64()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Add etagate-c: it starts knowing a and b, then a and b reload with c added.
    fleet.set_members(Some(&[0, 1, 2]));
    fleet.start_nodes(&[2]).await;
    step("etagate-c started");
    let r0 = fleet.reload(0).await;
    let r1 = fleet.reload(1).await;
    step("a and b reloaded with c");
    eprintln!("(h) reload answers: {r0} {r1}");
    tokio::time::sleep(PROBE_INTERVAL * 2).await;
    let with_c = tally(&owners_via(&fleet, 0, &urls).await)
        .get(NAMES[2])
        .copied()
        .unwrap_or(0);
    step(&format!("c owns {with_c} of {} URLs", urls.len()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Remove etagate-c: a and b reload without it, then it stops.
    fleet.set_members(Some(&[0, 1]));
    fleet.reload(0).await;
    fleet.reload(1).await;
    step("a and b reloaded without c");
    tokio::time::sleep(PROBE_INTERVAL * 2).await;
    let without_c: Vec<String> = {
        let mut v = owners_via(&fleet, 0, &urls).await;
        v.extend(owners_via(&fleet, 1, &urls).await);
        v
    };
    fleet.kill9(2);
    step("etagate-c stopped");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.await.expect("load");
    let elapsed = t0.elapsed();
    let failed = failures(&outcomes);
    eprintln!(
        "(h) {} requests to a and b in {:.1} s ({:.0}/s), {} failed; steps: {steps:?}",
        outcomes.len(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64(),
        failed.len()
    );
    for f in failed.iter().take(5) {
        eprintln!("  {}", f.describe_failure());
    }
    assert!(
        with_c > 0,
        "after the reloads that add it, etagate-c owns keys"
    );
    assert!(
        without_c.iter().all(|o| o != NAMES[2]),
        "after the reloads that remove it, etagate-c owns nothing: {:?}",
        tally(&without_c)
    );
    assert!(
        failed.is_empty(),
        "no request fails across the membership changes"
    );
}
