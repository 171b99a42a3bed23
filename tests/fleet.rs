//! Fleet tests (issue #13, cache sharding across a 3-node fleet): real `etagate` processes,
//! each in its own network namespace, in front of one origin in this process.
//!
//! `cargo test --test fleet -- --nocapture` shows every test's numbers. As root with `ip`
//! (iproute2) the nodes get namespaces on a bridge (`fleet/net.rs`); otherwise they run on
//! 127.0.0.2.. and the partition test is skipped (the reason is printed). Set
//! `ETAGATE_FLEET_NO_NETNS=1` to force that fallback. `ETAGATE_TEST_LOG` sets the nodes'
//! `RUST_LOG` (default `info`); a failing test prints the tail of every node's stderr.
//!
//! Tests take [`fleet_lock`] so that one fleet runs at a time: three debug-build gateways and a
//! load loop already fill two cores, and timing assertions (failure detection, no hanging)
//! must not measure another test's load. The whole binary takes about a minute.
//!
//! | test | what |
//! |---|---|
//! | `harness_*` | the harness on unsharded fleets: namespaces, origin reachable, kill -9, restart, reload, partitions, cleanup, loopback fallback |
//! | `a0_*`, `b0_*` | the unsharded baselines of (a) and (b) |
//! | `a_*` | (a) 3,000 requests for 1,000 URLs over 3 nodes: at most 1,010 origin fetches, one owner per key, Cache-Status owner first |
//! | `b_*` | (b) working set 2.5 x the per-node budget: second pass at least 90 % hits |
//! | `c_*`, `d_*` | (c) kill -9 and (d) partition of an owner: failover, refetch once, keys move back |
//! | `e_*`, `f_*` | (e) purges by tag, prefix and URL reach every node; (f) soft purge, stale-if-error |
//! | `g_*` | (g) forged peer headers on the public listener, the peer listener without a proof |
//! | `ring_*`, `h_*` | membership 3 -> 2 moves only the removed member's keys; (h) reloads adding and removing a member under load |

#[path = "gateway/common/mod.rs"]
mod common;

mod fleet {
    pub mod baseline;
    pub mod failover;
    pub mod harness;
    pub mod membership;
    pub mod net;
    pub mod origin;
    pub mod purge;
    pub mod security;
    pub mod sharding;
}

pub(crate) use fleet::{harness, net, origin};

/// One fleet at a time (see the crate doc). Poisoning cannot happen: a Tokio mutex.
pub(crate) async fn fleet_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
