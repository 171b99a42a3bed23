//! The fleet's origin: the shared test origin (`common::Origin`) bound on the fleet's origin
//! address, answering from a small content model the tests change as they go.
//!
//! Every path has a content version (1 until a test sets another for a prefix); the body is
//! `"<path> v<version>\n"`, padded with `.` to the size of the path's rule. Responses never
//! carry `ETag` or `Last-Modified` (etagate gives them content ETags); their `Cache-Control`,
//! `Surrogate-Key` and `Cache-Tag` come from the longest-prefix [`Rule`]. The origin counts the
//! requests it answered per path (with query), and can be taken down (connections refused, and
//! kept-alive ones closed unanswered) and brought up again on the same address.

use crate::common::{Origin, Reply, Seen};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the origin answers for paths under a prefix.
#[derive(Clone, Debug)]
pub struct Rule {
    pub prefix: String,
    pub cache_control: String,
    pub surrogate_key: Option<String>,
    pub cache_tag: Option<String>,
    /// Body size in bytes (at least the version line).
    pub size: usize,
}

impl Rule {
    pub fn new(prefix: &str) -> Rule {
        Rule {
            prefix: prefix.to_string(),
            cache_control: "max-age=600".to_string(),
            surrogate_key: None,
            cache_tag: None,
            size: 0,
        }
    }

    pub fn cache_control(mut self, v: &str) -> Rule {
        self.cache_control = v.to_string();
        self
    }

    /// `Surrogate-Key: <space separated tags>`.
    pub fn surrogate_key(mut self, v: &str) -> Rule {
        self.surrogate_key = Some(v.to_string());
        self
    }

    /// `Cache-Tag: <comma separated tags>`.
    pub fn cache_tag(mut self, v: &str) -> Rule {
        self.cache_tag = Some(v.to_string());
        self
    }

    pub fn size(mut self, bytes: usize) -> Rule {
        self.size = bytes;
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// (prefix, version), later entries win.
    versions: Vec<(String, u32)>,
    counts: HashMap<String, usize>,
    total: usize,
    /// Requests that arrived on a kept-alive connection while down (closed unanswered).
    refused: usize,
    down: bool,
    /// `Host` of the last request.
    last_host: Option<String>,
}

impl State {
    fn rule(&self, path: &str) -> Rule {
        self.rules
            .iter()
            .filter(|r| path.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .cloned()
            .unwrap_or_else(|| Rule::new("/"))
    }

    fn version(&self, path: &str) -> u32 {
        self.versions
            .iter()
            .rev()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map(|(_, v)| *v)
            .unwrap_or(1)
    }
}

/// The body the origin sends for `path` at `version` under `rule`.
pub fn body_for(path: &str, version: u32, size: usize) -> String {
    let mut b = format!("{path} v{version}\n");
    while b.len() < size {
        b.push('.');
    }
    b
}

pub struct FleetOrigin {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<Origin>>,
}

impl FleetOrigin {
    /// Start on `ip` (an ephemeral port).
    pub async fn start(ip: IpAddr) -> FleetOrigin {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind the origin on {ip}: {e}"));
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(Mutex::new(State::default()));
        let server = Origin::serve(listener, handler(state.clone()));
        FleetOrigin {
            addr,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a rule (the longest matching prefix applies).
    pub fn rule(&self, rule: Rule) {
        self.state().rules.push(rule);
    }

    /// Paths under `prefix` have content version `version` from now on.
    pub fn set_version(&self, prefix: &str, version: u32) {
        self.state().versions.push((prefix.to_string(), version));
    }

    /// The body the origin answers `path` with now.
    pub fn body(&self, path: &str) -> String {
        let s = self.state();
        body_for(path, s.version(path), s.rule(path).size)
    }

    /// Requests answered for `path` (with its query).
    pub fn count(&self, path: &str) -> usize {
        self.state().counts.get(path).copied().unwrap_or(0)
    }

    /// Requests answered in all.
    pub fn total(&self) -> usize {
        self.state().total
    }

    /// Requests answered per path.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state().counts.clone()
    }

    /// Requests closed unanswered while down.
    pub fn refused(&self) -> usize {
        self.state().refused
    }

    pub fn last_host(&self) -> Option<String> {
        self.state().last_host.clone()
    }

    /// Stop answering: the listener closes (new connections are refused) and requests on
    /// connections already open are closed unanswered.
    pub fn down(&self) {
        self.state().down = true;
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(server);
    }

    /// Listen again on the same address (retrying while the old listener is still closing).
    pub async fn up(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the origin cannot listen on {} again: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let server = Origin::serve(listener, handler(self.state.clone()));
        self.state().down = false;
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }
}

fn handler(state: Arc<Mutex<State>>) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.down {
            s.refused += 1;
            return Reply::drop_connection();
        }
        let path = seen.uri.clone();
        s.total += 1;
        *s.counts.entry(path.clone()).or_insert(0) += 1;
        s.last_host = seen.header("host").map(str::to_string);
        let rule = s.rule(&path);
        let body = body_for(&path, s.version(&path), rule.size);
        let mut reply = Reply::ok(body)
            .header("content-type", "text/plain")
            .header("cache-control", &rule.cache_control);
        if let Some(k) = &rule.surrogate_key {
            reply = reply.header("surrogate-key", k);
        }
        if let Some(t) = &rule.cache_tag {
            reply = reply.header("cache-tag", t);
        }
        reply
    }
}
