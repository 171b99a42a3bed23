//! Operator controls and readiness, shared by the lifecycle (SIGHUP, drain), the admin
//! endpoints and the proxy (which closes connections while draining). It sits below all three
//! so none of them needs to import another.

use crate::access_log::AccessLogger;
use crate::cache::SharedCache;
use crate::config::ConfigErrors;
use crate::http::authority::Authority;
use crate::metrics::METRICS;
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
        }
    }

    /// Re-read and apply the config file; on error the running config stays. The cache and
    /// its contents survive; a changed budget applies at once (evicting down when lowered).
    pub fn reload(&self) -> Result<ReloadReport, ConfigErrors> {
        let result = self.live.reload(|new| {
            self.access_log.reconfigure(&new.access_log);
            let c = &new.config;
            self.cache
                .store
                .set_limits(c.cache.budget, c.cache.max_object_size);
            METRICS
                .etag_buffer_budget_bytes
                .set(c.etag_buffer_budget as i64);
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

/// Parse a purge request body: one absolute URL per line.
pub fn purge_urls(body: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let uri: http::Uri = line
            .parse()
            .map_err(|e| format!("'{line}' is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => {
                return Err(format!(
                    "'{line}' must be an absolute http:// or https:// URL"
                ))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("'{line}' has no host"))
            .and_then(|a| {
                Authority::parse(a.as_str().as_bytes(), &scheme)
                    .map_err(|why| format!("'{line}': {why}"))
            })?
            .to_string();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        out.push((scheme, authority, path));
    }
    if out.is_empty() {
        return Err("send the URLs to purge in the body, one per line".to_string());
    }
    Ok(out)
}

impl Control {
    /// Remove every stored variant of each URL. Returns (URL, variants removed).
    pub fn purge(&self, urls: &[(String, String, String)]) -> Vec<(String, usize)> {
        urls.iter()
            .map(|(scheme, authority, path)| {
                let key = crate::cache::key::PrimaryKey::with_text(scheme, authority, path);
                let n = self.cache.store.purge_primary(&key.hash);
                (key.text().unwrap_or_default().to_string(), n)
            })
            .collect()
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

    #[test]
    fn purge_bodies_need_absolute_http_urls() {
        let ok = purge_urls("http://a.test/x?y=1\n\n https://b.test \n").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[1],
            ("https".to_string(), "b.test".to_string(), "/".to_string())
        );
        assert!(purge_urls("/relative").is_err());
        assert!(purge_urls("ftp://a.test/").is_err());
        assert!(purge_urls("  \n").is_err());
    }
}
