//! Metrics of the fleet (all zero on a node without `cluster:`). Member labels are node names
//! from the config or DNS-found addresses, bounded by the member limit.

use super::{counter_vec, histogram, LATENCY_BUCKETS};
use prometheus::{Histogram, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct ClusterMetrics {
    /// Requests forwarded to an owner, by member and outcome.
    pub peer_requests: IntCounterVec,
    /// Requests that could not use their owner and went to the next member or the origin.
    pub failovers: IntCounterVec,
    /// Requests received on the peer listener, by result (`accepted`, `rejected`).
    pub received: IntCounterVec,
    pub members: IntGauge,
    pub member_up: IntGaugeVec,
    /// Operations sent to other members (purges, invalidations), by op and result.
    pub fanout: IntCounterVec,
    pub fanout_seconds: Histogram,
}

#[allow(clippy::expect_used)]
impl ClusterMetrics {
    pub(super) fn new(r: &Registry) -> ClusterMetrics {
        let members = prometheus::IntGauge::new(
            "etagate_cluster_members",
            "Members of the fleet this node knows (itself included).",
        )
        .expect("static metric definition");
        r.register(Box::new(members.clone()))
            .expect("metric registered once");
        let member_up = IntGaugeVec::new(
            Opts::new(
                "etagate_cluster_member_up",
                "1 while a member is taking its keys, 0 while it is down (by member).",
            ),
            &["member"],
        )
        .expect("static metric definition");
        r.register(Box::new(member_up.clone()))
            .expect("metric registered once");
        ClusterMetrics {
            peer_requests: counter_vec(
                r,
                "etagate_peer_requests_total",
                "Requests forwarded to the member owning their key, by member and outcome (ok, owner_error, refused, timeout, error).",
                &["member", "outcome"],
            ),
            failovers: counter_vec(
                r,
                "etagate_peer_failovers_total",
                "Requests whose owner failed, retried at the next member or the origin, by the member that failed.",
                &["member"],
            ),
            received: counter_vec(
                r,
                "etagate_peer_received_total",
                "Requests on the peer listener, by result (accepted, rejected: no valid member proof).",
                &["result"],
            ),
            members,
            member_up,
            fanout: counter_vec(
                r,
                "etagate_peer_fanout_total",
                "Operations sent to other members, by op (purge) and result (ok, refused, error).",
                &["op", "result"],
            ),
            fanout_seconds: histogram(
                r,
                "etagate_peer_fanout_seconds",
                "Time for one member to answer a fanned-out operation.",
                LATENCY_BUCKETS,
            ),
        }
    }
}
