//! The harness itself, on fleets without `cluster:` (these pass whether or not the gateway
//! knows clusters): namespaces, nodes, the origin reachable from every namespace, kill -9 and
//! restart, reload by `POST /reload` and by SIGHUP, partitions at either end of a veth pair,
//! the loopback fallback, and that nothing is left behind.

use crate::fleet_lock;
use crate::harness::{http_client, Client, Fleet, Spec, HOST, NAMES};
use crate::net::{ip, End, Namespaces};
use std::time::{Duration, Instant};

/// Poll `GET path` on node `i` until it answers 200, for `limit` at most; how long it took.
async fn until_ok(client: &Client, i: usize, path: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if matches!(client.get(i, path).await, Ok(r) if r.status == 200) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{} did not answer {path} within {limit:?}",
            NAMES[i]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn generation(client: &Client, i: usize) -> f64 {
    client.metric(i, "etagate_config_generation", &[]).await
}

/// Every node reaches the origin (which sees the client's Host) and answers a repeat from its
/// own cache.
async fn check_nodes_serve(fleet: &Fleet) {
    let c = &fleet.client;
    for i in 0..fleet.size() {
        let p = format!("/h/{i}");
        let r = c.get_ok(i, &p).await;
        assert_eq!(r.version_line(), format!("{p} v1"));
        let again = c.get_ok(i, &p).await;
        let entries = again.cache_status();
        assert!(
            entries.len() == 1 && entries[0].hit(),
            "a repeat is a hit of the node's own cache: {:?}",
            again.header("cache-status")
        );
        assert_eq!(fleet.origin.count(&p), 1);
    }
    assert_eq!(fleet.origin.last_host().as_deref(), Some(HOST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_runs_an_unsharded_fleet_in_namespaces_and_cleans_up() {
    let _l = fleet_lock().await;
    let t = Instant::now();
    let mut fleet = Fleet::start(Spec::unsharded(3)).await;
    eprintln!(
        "harness: 3 nodes ready in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let c = fleet.client.clone();
    check_nodes_serve(&fleet).await;

    // Each node runs in its own namespace; its address exists only there.
    if let Some(k) = fleet.k() {
        for (i, name) in NAMES.iter().enumerate() {
            let pid = fleet.nodes[i].pid().expect("running").to_string();
            let ns = ip(&["netns", "identify", &pid]).expect("netns identify");
            assert_eq!(Some(ns.trim()), fleet.netns_name(i), "{name}'s namespace");
        }
        let root = ip(&["-o", "-4", "addr", "show"]).expect("addresses");
        assert!(
            root.contains(&format!(" 10.77.{k}.1/24")),
            "the bridge address"
        );
        assert!(
            !root.contains(&format!(" 10.77.{k}.11/")),
            "node addresses live in their namespaces"
        );
    } else {
        eprintln!("harness: loopback fallback, namespace checks skipped");
    }

    // kill -9, then a restart with the same config (an empty cache: the origin is asked again).
    fleet.kill9(1);
    assert!(
        c.get(1, "/h/1").await.is_err(),
        "a killed node does not answer"
    );
    let t = Instant::now();
    fleet.restart(1).await;
    eprintln!(
        "harness: {} restarted in {:.2} s",
        NAMES[1],
        t.elapsed().as_secs_f64()
    );
    c.get_ok(1, "/h/1").await;
    assert_eq!(
        fleet.origin.count("/h/1"),
        2,
        "the restarted node's cache was empty"
    );

    // Reload by POST /reload and by SIGHUP.
    assert_eq!(generation(&c, 2).await, 1.0);
    fleet.reload(2).await;
    assert_eq!(generation(&c, 2).await, 2.0);
    fleet.signal(0, "HUP");
    let t = Instant::now();
    while generation(&c, 0).await < 2.0 {
        assert!(t.elapsed() < Duration::from_secs(5), "SIGHUP reloads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Partitions: either end of node 2's veth pair down makes it unreachable (a timeout, not a
    // refusal); up again, it answers.
    if fleet.supports_partition() {
        let quick = Client {
            http: http_client(Duration::from_secs(1)),
            ..c.clone()
        };
        for end in [End::Bridge, End::Node] {
            fleet.partition(2, end);
            let t = Instant::now();
            let r = quick.get(2, "/h/2").await;
            let waited = t.elapsed();
            assert!(r.is_err(), "a partitioned node is unreachable ({end:?})");
            assert!(
                waited >= Duration::from_millis(900),
                "a partition drops packets (no quick refusal): {waited:?}"
            );
            fleet.heal(2);
            let back = until_ok(&quick, 2, "/h/2", Duration::from_secs(10)).await;
            eprintln!(
                "harness: partition at the {end:?} end: request timed out after {:.2} s; answering {:.2} s after healing",
                waited.as_secs_f64(),
                back.as_secs_f64()
            );
        }
    } else {
        eprintln!("harness: partition checks skipped (loopback fallback)");
    }

    // Everything goes with the fleet.
    let k = fleet.k();
    let pids: Vec<u32> = fleet.nodes.iter().filter_map(|n| n.pid()).collect();
    drop(fleet);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "node process {pid} is gone"
        );
    }
    if let Some(k) = k {
        let left = Namespaces::leftovers(k, 3);
        assert!(left.is_empty(), "left behind: {left:?}");
        eprintln!("harness: namespaces, veths, bridge and lock of K={k} removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_loopback_fallback_runs_an_unsharded_fleet() {
    let _l = fleet_lock().await;
    let mut spec = Spec::unsharded(3);
    spec.force_loopback = true;
    let mut fleet = Fleet::start(spec).await;
    assert!(!fleet.supports_partition());
    check_nodes_serve(&fleet).await;
    fleet.kill9(0);
    fleet.restart(0).await;
    fleet.client.get_ok(0, "/h/0").await;
    assert_eq!(fleet.origin.count("/h/0"), 2);
}
