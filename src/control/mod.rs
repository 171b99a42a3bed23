//! Operator controls and readiness, shared by the lifecycle (SIGHUP, drain), the admin
//! endpoints and the proxy (which closes connections while draining). It sits below all three
//! so none of them needs to import another.
//!
//! - [`purge`]: the purge request (URLs, prefixes, tags; hard or soft), its JSON form and the
//!   report.

pub mod purge;

pub use purge::{PurgeMode, PurgeReport, PurgeRequest, PurgeRequestError, TargetReport};

use crate::access_log::AccessLogger;
use crate::cache::SharedCache;
use crate::cluster::{peer, Fleet};
use crate::config::ConfigErrors;
use crate::metrics::METRICS;
use crate::runtime::tls::ListenerCerts;
use crate::runtime::{LiveConfig, ReloadReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness facts that are not part of the config.
#[derive(Default)]
pub struct ProcessState {
    /// Every public listener accepted a connection once.
    listeners_bound: AtomicBool,
    /// The process is handing its sockets to a new process or shutting down: finish what is in
    /// flight, close connections after their current response, report not ready.
    draining: AtomicBool,
}

impl ProcessState {
    pub fn set_listeners_bound(&self) {
        self.listeners_bound.store(true, Ordering::Release);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn ready(&self) -> bool {
        self.listeners_bound.load(Ordering::Acquire) && !self.draining()
    }
}

pub struct Control {
    pub live: Arc<LiveConfig>,
    pub access_log: AccessLogger,
    pub state: Arc<ProcessState>,
    pub cache: Arc<SharedCache>,
    /// The fleet, when this node is a member (set once at start).
    pub fleet: Option<Arc<Fleet>>,
    /// The TLS listeners' certificates, replaced by reloads.
    pub listener_certs: ListenerCerts,
}

impl Control {
    pub fn new(
        live: Arc<LiveConfig>,
        access_log: AccessLogger,
        state: Arc<ProcessState>,
        cache: Arc<SharedCache>,
    ) -> Self {
        Control {
            live,
            access_log,
            state,
            cache,
            fleet: None,
            listener_certs: ListenerCerts::default(),
        }
    }

    pub fn with_fleet(mut self, fleet: Arc<Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    pub fn with_listener_certs(mut self, certs: ListenerCerts) -> Self {
        self.listener_certs = certs;
        self
    }

    /// Re-read and apply the config file; on error the running config stays. The cache and
    /// its contents survive; a changed budget applies at once (evicting down when lowered).
    pub fn reload(&self) -> Result<ReloadReport, ConfigErrors> {
        let result = self.live.reload(|new| {
            self.access_log.reconfigure(&new.access_log);
            self.listener_certs.install(&new.listener_certs);
            let c = &new.config;
            self.cache
                .store
                .set_limits(c.cache.budget, c.cache.max_object_size);
            if let (Some(disk), Some(d)) = (self.cache.disk, &c.cache.disk) {
                disk.set_limits(crate::cache::disk::Limits {
                    budget: d.budget,
                    max_object: d.max_object_size,
                });
            }
            METRICS
                .etag_buffer_budget_bytes
                .set(c.etag_buffer_budget as i64);
            if let (Some(fleet), Some(spec), Some(secret)) =
                (&self.fleet, &c.cluster, &new.cluster_secret)
            {
                fleet.reconfigure(spec, secret);
            }
        });
        match &result {
            Ok(r) => {
                log::info!("configuration reloaded: generation {}", r.generation);
                if !r.needs_upgrade.is_empty() {
                    log::warn!(
                        "these changed settings take effect only after a binary upgrade (etagate -u, then SIGQUIT to the old process): {}",
                        r.needs_upgrade.join(", ")
                    );
                }
            }
            Err(e) => log::error!(
                "configuration reload rejected, the previous configuration stays in use:\n{e}"
            ),
        }
        result
    }
}

impl Control {
    /// Purge what `req` names on this node, in order: URLs, then prefixes, then tags. Each
    /// target is counted in `etagate_purges_total` and `etagate_purged_entries_total`.
    pub fn purge(&self, req: &PurgeRequest) -> PurgeReport {
        purge::apply(self.cache.store, req)
    }
}

impl Control {
    /// Apply a purge request body (the admin format: JSON, or absolute URLs one per line) on
    /// this node; the report as JSON. A prefix purge visits every stored URL: call it off the
    /// async threads.
    pub fn purge_request(&self, body: &[u8]) -> Result<serde_json::Value, String> {
        let req = PurgeRequest::from_body(body).map_err(|e| e.to_string())?;
        serde_json::to_value(self.purge(&req))
            .map_err(|e| format!("purged, but the report could not be written: {e}"))
    }

    /// Send a purge to every other member; each member's answer, with how long it took.
    pub async fn purge_fleet(&self, body: bytes::Bytes) -> Vec<serde_json::Value> {
        let Some(fleet) = self
            .fleet
            .as_ref()
            .filter(|_| self.live.snapshot().config.cluster.is_some())
        else {
            return Vec::new();
        };
        peer::fan_out(fleet, "purge", body)
            .await
            .into_iter()
            .map(|r| {
                let seconds = (r.seconds * 1e6).round() / 1e6;
                match r.result {
                    Ok(a) if a.status == 200 => serde_json::json!({
                        "node": r.node,
                        "ok": true,
                        "seconds": seconds,
                        "report": serde_json::from_slice::<serde_json::Value>(&a.body).unwrap_or(serde_json::Value::Null),
                    }),
                    Ok(a) => serde_json::json!({
                        "node": r.node,
                        "ok": false,
                        "seconds": seconds,
                        "error": format!("answered {}: {}", a.status, String::from_utf8_lossy(&a.body).trim()),
                    }),
                    Err(e) => serde_json::json!({
                        "node": r.node, "ok": false, "seconds": seconds, "error": e,
                    }),
                }
            })
            .collect()
    }

    /// A successful unsafe request invalidated `urls` here: invalidate them on every other
    /// member too, in the background (the client's response does not wait for the fleet).
    pub fn invalidate_fleet(self: &Arc<Self>, urls: Vec<String>) {
        if urls.is_empty() || self.fleet.is_none() {
            return;
        }
        let control = self.clone();
        let body = serde_json::json!({ "urls": urls }).to_string();
        tokio::spawn(async move {
            for r in control.purge_fleet(bytes::Bytes::from(body)).await {
                if r.get("ok") != Some(&serde_json::Value::Bool(true)) {
                    log::warn!("cluster: invalidation not applied on a member: {r}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_listeners_bound_and_not_while_draining() {
        let s = ProcessState::default();
        assert!(!s.ready(), "starting");
        s.set_listeners_bound();
        assert!(s.ready());
        s.set_draining();
        assert!(!s.ready() && s.draining());
    }
}
