//! The configuration in use, and how a new one replaces it.
//!
//! Requests call [`LiveConfig::snapshot`] once and keep that `Arc` to their end; a reload
//! validates a complete new [`RuntimeConfig`] and swaps the pointer. There is no moment at which
//! a request can see half of two configs, and a rejected config never replaces the old one.

use super::instantiate::instantiate;
use super::RuntimeConfig;
use crate::config::{self, ConfigError, ConfigErrors, ConfigSource};
use crate::metrics::METRICS;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct LiveConfig {
    current: ArcSwap<RuntimeConfig>,
    /// Serializes reloads (SIGHUP and the admin endpoint may race).
    reloading: Mutex<()>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub generation: u64,
    /// Settings that changed in the file but only take effect after a binary upgrade (or a
    /// restart): listener addresses, thread counts, process paths.
    pub needs_upgrade: Vec<String>,
}

impl LiveConfig {
    pub fn new(mut first: RuntimeConfig) -> Arc<LiveConfig> {
        first.generation = 1;
        METRICS.config_generation.set(1);
        METRICS.config_last_reload_success.set(now_secs());
        Arc::new(LiveConfig {
            current: ArcSwap::from_pointee(first),
            reloading: Mutex::new(()),
        })
    }

    /// The config to use for one request, from its start to its end.
    pub fn snapshot(&self) -> Arc<RuntimeConfig> {
        self.current.load_full()
    }

    /// Re-read the config's source, validate it fully and swap it in. On error nothing changes.
    ///
    /// `apply` runs after validation and before the swap, for state that lives outside the
    /// snapshot (the cache budget, the access log); it sees the new config.
    pub fn reload(&self, apply: impl FnOnce(&RuntimeConfig)) -> Result<ReloadReport, ConfigErrors> {
        let _one_at_a_time = self.reloading.lock();
        let old = self.snapshot();
        let result = match &old.config.source {
            ConfigSource::File(path) => {
                config::load_file(path).and_then(|c| instantiate(c, Some(&old)))
            }
            ConfigSource::QuickMode => Err(ConfigErrors::single(ConfigError {
                file: "command line".to_string(),
                position: None,
                message: "etagate was started in quick mode (--listen/--upstream); there is no file to reload, start it with -c FILE".to_string(),
            })),
        };
        match result {
            Ok(mut new) => {
                new.generation = old.generation + 1;
                let report = ReloadReport {
                    generation: new.generation,
                    needs_upgrade: needs_upgrade(&old, &new),
                };
                apply(&new);
                forget_removed(&old, &new);
                self.current.store(Arc::new(new));
                METRICS.reload(true);
                METRICS.config_generation.set(report.generation as i64);
                METRICS.config_last_reload_success.set(now_secs());
                Ok(report)
            }
            Err(e) => {
                METRICS.reload(false);
                Err(e)
            }
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Drop the metric series of routes and upstreams the new config no longer has.
fn forget_removed(old: &RuntimeConfig, new: &RuntimeConfig) {
    let names = |c: &RuntimeConfig| -> std::collections::HashSet<String> {
        c.routes.iter().map(|r| r.name.to_string()).collect()
    };
    let kept = names(new);
    for gone in names(old).difference(&kept) {
        METRICS.forget_route(gone);
    }
    for name in old.upstreams.keys() {
        if !new.upstreams.contains_key(name) {
            METRICS.forget_upstream(name);
        }
    }
}

/// The settings a running process cannot change in place.
fn needs_upgrade(old: &RuntimeConfig, new: &RuntimeConfig) -> Vec<String> {
    let (old, new) = (&old.config, &new.config);
    let mut out = Vec::new();
    // Certificate and key paths are reloadable (runtime::tls); addresses and TLS on or off
    // are the sockets themselves.
    let bound = |c: &crate::config::Config| -> Vec<(std::net::SocketAddr, bool)> {
        c.listeners
            .iter()
            .map(|l| (l.address, l.tls.is_some()))
            .collect()
    };
    if bound(old) != bound(new) {
        out.push("listeners".to_string());
    }
    if old.admin.address != new.admin.address {
        out.push("admin.address".to_string());
    }
    let (o, n) = (&old.server, &new.server);
    if o.threads != n.threads {
        out.push("server.threads".to_string());
    }
    if o.pid_file != n.pid_file {
        out.push("server.pid_file".to_string());
    }
    if o.upgrade_socket != n.upgrade_socket {
        out.push("server.upgrade_socket".to_string());
    }
    if o.grace_period != n.grace_period || o.shutdown_timeout != n.shutdown_timeout {
        out.push("server.grace_period/shutdown_timeout".to_string());
    }
    if o.ca_file != n.ca_file {
        out.push("server.ca_file".to_string());
    }
    if o.watch_config != n.watch_config {
        out.push("server.watch_config".to_string());
    }
    // The peer listener is bound at start, and peers know this node by name and address.
    match (&old.cluster, &new.cluster) {
        (None, None) => {}
        (Some(o), Some(n)) => {
            if (&o.node, o.listen, o.advertise) != (&n.node, n.listen, n.advertise) {
                out.push("cluster.node/listen/advertise".to_string());
            }
        }
        _ => out.push("cluster".to_string()),
    }
    // The disk tier is opened once, at start (its budget is reloadable).
    if old.cache.disk.as_ref().map(|d| &d.path) != new.cache.disk.as_ref().map(|d| &d.path) {
        out.push("cache.disk.path".to_string());
    }
    // The lock's own expiry and the log queue are sized once, at start.
    if old.cache.lock_timeout != new.cache.lock_timeout {
        out.push("cache.lock_timeout".to_string());
    }
    if old.access_log.buffer != new.access_log.buffer {
        out.push("access_log.buffer".to_string());
    }
    out
}
