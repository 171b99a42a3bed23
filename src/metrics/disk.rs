//! Metrics of the disk tier (`cache.disk`); zero without one.

use super::{counter, counter_vec, gauge};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Registry};

pub struct DiskMetrics {
    pub objects: IntGauge,
    pub bytes: IntGauge,
    pub budget_bytes: IntGauge,
    /// 1 while this process holds the store.
    pub open: IntGauge,
    pub recovery_seconds: Gauge,
    /// Stored responses used from memory, and from disk (children of `etagate_cache_hits_total`,
    /// resolved once: a hit does not look a label up).
    pub hits_memory: IntCounter,
    pub hits_disk: IntCounter,
    pub reads: IntCounter,
    pub streamed_reads: IntCounter,
    /// Responses too large for the memory tier written to disk as they arrived.
    pub spilled: IntCounter,
    pub read_errors: IntCounter,
    pub write_errors: IntCounter,
    pub writes_skipped: IntCounterVec,
    pub evictions: IntCounter,
}

#[allow(clippy::expect_used)]
impl DiskMetrics {
    pub(super) fn new(r: &Registry) -> DiskMetrics {
        let recovery_seconds = Gauge::new(
            "etagate_cache_disk_recovery_seconds",
            "Time the last recovery of the disk tier's index took at start.",
        )
        .expect("static metric definition");
        r.register(Box::new(recovery_seconds.clone()))
            .expect("metric registered once");
        let hits = counter_vec(
            r,
            "etagate_cache_hits_total",
            "Stored responses used to answer requests, by the tier they came from (memory, disk).",
            &["tier"],
        );
        let m = DiskMetrics {
            hits_memory: hits.with_label_values(&["memory"]),
            hits_disk: hits.with_label_values(&["disk"]),
            objects: gauge(r, "etagate_cache_disk_objects", "Responses stored in the disk tier."),
            bytes: gauge(
                r,
                "etagate_cache_disk_bytes",
                "Bytes of the disk tier's entry files (metadata, head, body and checksum).",
            ),
            budget_bytes: gauge(r, "etagate_cache_disk_budget_bytes", "The disk tier's budget."),
            open: gauge(
                r,
                "etagate_cache_disk_open",
                "1 while this process holds the disk tier (0: none configured, or another process holds it).",
            ),
            recovery_seconds,
            reads: counter(
                r,
                "etagate_cache_disk_reads_total",
                "Responses read back from the disk tier (promoted to memory when small enough).",
            ),
            streamed_reads: counter(
                r,
                "etagate_cache_disk_streamed_reads_total",
                "Responses too large for the memory tier served from the disk tier in chunks, never whole in memory.",
            ),
            spilled: counter(
                r,
                "etagate_cache_disk_spilled_total",
                "Responses too large for the memory tier written to the disk tier as they arrived.",
            ),
            read_errors: counter(
                r,
                "etagate_cache_disk_read_errors_total",
                "Disk tier entries that could not be read or failed their checks (removed; the request went to the origin).",
            ),
            write_errors: counter(
                r,
                "etagate_cache_disk_write_errors_total",
                "Writes to the disk tier that failed (disk full, I/O errors).",
            ),
            writes_skipped: counter_vec(
                r,
                "etagate_cache_disk_writes_skipped_total",
                "Responses not written to the disk tier, by reason (too_large, queue_full).",
                &["reason"],
            ),
            evictions: counter(
                r,
                "etagate_cache_disk_evictions_total",
                "Entries removed from the disk tier to stay within its budget.",
            ),
        };
        for reason in ["too_large", "queue_full"] {
            m.writes_skipped.with_label_values(&[reason]);
        }
        m
    }
}
