//! Operations on the running process, shared by SIGHUP and the admin endpoints.

use crate::config::live::ReloadReport;
use crate::config::{ConfigErrors, LiveConfig};
use crate::metrics::access_log::AccessLogger;
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
}

impl Control {
    pub fn new(live: Arc<LiveConfig>, access_log: AccessLogger, state: Arc<ProcessState>) -> Self {
        Control {
            live,
            access_log,
            state,
        }
    }

    /// Re-read and apply the config file; on error the running config stays.
    pub fn reload(&self) -> Result<ReloadReport, ConfigErrors> {
        let result = self.live.reload(|new| {
            self.access_log.reconfigure(&new.access_log);
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
