//! A fleet of `etagate` processes, one per network namespace (see [`crate::net`]), in front of
//! one origin in the test process, and a client in the root namespace.
//!
//! Each node has its own temporary directory (config, stderr, access log, pid file, upgrade
//! socket); the fleet's directory holds the admin token and the peer secret all nodes share.
//! A node listens on `<ip>:8080` (public), `<ip>:9901` (admin) and, in a cluster, `<ip>:8471`
//! (peers); in the loopback fallback the ports are free ports instead, since concurrent test
//! processes share 127.0.0.x.

use crate::common::{self, ADMIN_TOKEN};
use crate::net::{End, Net};
use crate::origin::FleetOrigin;
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Node names, by index.
pub const NAMES: [&str; 3] = ["etagate-a", "etagate-b", "etagate-c"];
/// The `Host` every client request carries (the purge URLs name it).
pub const HOST: &str = "fleet.test";
/// Shared by all nodes of a fleet (at least 16 bytes).
pub const PEER_SECRET: &str = "fleet-peer-secret-0123456789abcdef";

/// `cluster.connect_timeout`, `request_timeout` and `probe_interval` of every node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

pub const PUBLIC_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9901;
pub const PEER_PORT: u16 = 8471;

/// How long a client waits for one response at most (longer than any bound a test asserts,
/// so a slow answer is measured rather than cut off).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// `http://fleet.test<path>`: a URL as purges name it.
pub fn purge_url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// What a fleet looks like.
#[derive(Clone, Debug)]
pub struct Spec {
    pub size: usize,
    /// Indexes of the cluster members (`cluster:` in their configs); `None`: no `cluster:`
    /// section anywhere (unsharded, independent caches).
    pub members: Option<Vec<usize>>,
    /// `cache.budget` of every node.
    pub budget: String,
    /// Use the loopback fallback even where namespaces work.
    pub force_loopback: bool,
}

impl Spec {
    /// `size` independent nodes (no `cluster:`).
    pub fn unsharded(size: usize) -> Spec {
        Spec {
            size,
            members: None,
            budget: "64MiB".to_string(),
            force_loopback: false,
        }
    }

    /// `size` nodes, all members of one cluster.
    pub fn cluster(size: usize) -> Spec {
        Spec {
            members: Some((0..size).collect()),
            ..Spec::unsharded(size)
        }
    }

    pub fn budget(mut self, budget: &str) -> Spec {
        self.budget = budget.to_string();
        self
    }

    pub fn members(mut self, members: &[usize]) -> Spec {
        self.members = Some(members.to_vec());
        self
    }
}

pub struct Node {
    pub name: &'static str,
    pub ip: IpAddr,
    pub port: u16,
    pub admin_port: u16,
    pub peer_port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Node {
    pub fn public(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.admin_port)
    }

    pub fn peer(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.peer_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("node log file");
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the gateway in the namespace: the child's pid is etagate's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, common::etagate_bin()]);
                c
            }
            None => Command::new(common::etagate_bin()),
        };
        cmd.arg("-c")
            .arg(&self.config_path)
            .env(
                "RUST_LOG",
                std::env::var("ETAGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn etagate"));
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What one request got.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// One `Cache-Status` entry: the cache's name and its parameters (`hit`, `fwd=miss`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub name: String,
    pub params: Vec<String>,
}

impl CacheEntry {
    pub fn hit(&self) -> bool {
        self.params.iter().any(|p| p == "hit")
    }
}

/// `Cache-Status` entries in order (RFC 9211: the cache closest to the origin first).
pub fn cache_status(value: &str) -> Vec<CacheEntry> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut parts = e.split(';').map(str::trim);
            CacheEntry {
                name: parts.next().unwrap_or_default().to_string(),
                params: parts
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every `Cache-Status` field line, entries in order.
    pub fn cache_status(&self) -> Vec<CacheEntry> {
        let joined: Vec<&str> = self
            .headers
            .get_all("cache-status")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        cache_status(&joined.join(", "))
    }

    /// The name in the first `Cache-Status` entry: the owner of the key in a cluster.
    pub fn owner(&self) -> Option<String> {
        self.cache_status().first().map(|e| e.name.clone())
    }

    /// The first line of the body (`<path> v<version>`).
    pub fn version_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_string()
    }
}

/// The client side of a fleet: cheap to clone, usable from spawned tasks.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub publics: Arc<Vec<SocketAddr>>,
    pub admins: Arc<Vec<SocketAddr>>,
    pub peers: Arc<Vec<SocketAddr>>,
}

pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .pool_max_idle_per_host(32)
        .build()
        .expect("client")
}

impl Client {
    /// GET `path` from node `node`'s public listener with `Host: fleet.test`.
    pub async fn get(&self, node: usize, path: &str) -> Result<Resp, String> {
        self.get_with(node, path, &[]).await
    }

    pub async fn get_with(
        &self,
        node: usize,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let url = format!("http://{}{path}", self.publics[node]);
        self.send(self.http.get(url), headers).await
    }

    /// GET `path` from node `node`'s peer listener.
    pub async fn get_peer(
        &self,
        node: usize,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let url = format!("http://{}{path}", self.peers[node]);
        self.send(self.http.get(url), headers).await
    }

    async fn send(
        &self,
        mut req: reqwest::RequestBuilder,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        req = req.header("host", HOST);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let r = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.map_err(|e| format!("body: {e:?}"))?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// GET that must succeed with 200.
    pub async fn get_ok(&self, node: usize, path: &str) -> Resp {
        match self.get(node, path).await {
            Ok(r) if r.status == 200 => r,
            Ok(r) => panic!(
                "GET {path} from {} answered {}: {}",
                NAMES[node],
                r.status,
                r.text()
            ),
            Err(e) => panic!("GET {path} from {} failed: {e}", NAMES[node]),
        }
    }

    /// `POST /purge` with `body` (JSON) on node `node`'s admin listener.
    pub async fn purge(&self, node: usize, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("http://{}/purge", self.admins[node]))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("purge");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }

    /// `POST /reload` on node `node`'s admin listener.
    pub async fn reload(&self, node: usize) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("http://{}/reload", self.admins[node]))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("reload");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }

    /// `GET /metrics` text of node `node`.
    pub async fn scrape(&self, node: usize) -> String {
        self.http
            .get(format!("http://{}/metrics", self.admins[node]))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn metric(&self, node: usize, name: &str, labels: &[(&str, &str)]) -> f64 {
        common::metric_value(&self.scrape(node).await, name, labels)
    }
}

pub struct Fleet {
    pub nodes: Vec<Node>,
    pub origin: FleetOrigin,
    pub client: Client,
    members: Option<Vec<usize>>,
    budget: String,
    dir: tempfile::TempDir,
    /// Dropped last: the nodes are stopped before their namespaces go.
    pub net: Net,
}

impl Fleet {
    /// The network, the origin and every node's config; no node started.
    pub async fn new(spec: Spec) -> Fleet {
        assert!(spec.size <= NAMES.len(), "at most {} nodes", NAMES.len());
        let net = Net::create(spec.size, spec.force_loopback);
        let origin = FleetOrigin::start(net.origin_ip()).await;
        let dir = tempfile::tempdir().expect("fleet dir");
        std::fs::write(dir.path().join("token"), ADMIN_TOKEN).expect("token");
        std::fs::write(dir.path().join("peer-secret"), PEER_SECRET).expect("peer secret");
        let loopback = matches!(net, Net::Loopback);
        let nodes: Vec<Node> = (0..spec.size)
            .map(|i| {
                let ports = if loopback {
                    (
                        common::free_port(),
                        common::free_port(),
                        common::free_port(),
                    )
                } else {
                    (PUBLIC_PORT, ADMIN_PORT, PEER_PORT)
                };
                let ndir = tempfile::tempdir().expect("node dir");
                Node {
                    name: NAMES[i],
                    ip: net.node_ip(i),
                    port: ports.0,
                    admin_port: ports.1,
                    peer_port: ports.2,
                    config_path: ndir.path().join("etagate.yaml"),
                    log_path: ndir.path().join("stderr.log"),
                    netns: net.netns(i).map(str::to_string),
                    child: None,
                    dir: ndir,
                }
            })
            .collect();
        let client = Client {
            http: http_client(CLIENT_TIMEOUT),
            publics: Arc::new(nodes.iter().map(Node::public).collect()),
            admins: Arc::new(nodes.iter().map(Node::admin).collect()),
            peers: Arc::new(nodes.iter().map(Node::peer).collect()),
        };
        let fleet = Fleet {
            nodes,
            origin,
            client,
            members: spec.members,
            budget: spec.budget,
            dir,
            net,
        };
        for i in 0..fleet.nodes.len() {
            fleet.write_config(i);
        }
        eprintln!(
            "fleet: {} nodes on {}, origin {}, cluster {}",
            fleet.nodes.len(),
            fleet.net.describe(),
            fleet.origin.addr,
            match &fleet.members {
                Some(m) => format!("{:?}", m.iter().map(|&i| NAMES[i]).collect::<Vec<_>>()),
                None => "none (unsharded)".to_string(),
            }
        );
        fleet
    }

    /// A fleet with every node started and ready; a cluster also had time to probe its peers.
    pub async fn start(spec: Spec) -> Fleet {
        let mut fleet = Fleet::new(spec).await;
        let all: Vec<usize> = (0..fleet.nodes.len()).collect();
        fleet.start_nodes(&all).await;
        fleet
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    pub fn clustered(&self) -> bool {
        self.members.is_some()
    }

    pub fn supports_partition(&self) -> bool {
        matches!(self.net, Net::Namespaces(_))
    }

    /// Node `i`'s config text for the current membership.
    pub fn config(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let nd = n.dir.path().display();
        let fd = self.dir.path().display();
        let mut c = format!(
            r#"listeners:
  - address: "{public}"
admin:
  address: "{admin}"
  token_file: {fd}/token
upstreams:
  app:
    servers: ["{origin}"]
    timeout: {{ connect: 1s, read: 5s }}
routes:
  - name: site
    hosts: ["*"]
    upstream: app
cache:
  budget: {budget}
server:
  threads: 2
  pid_file: {nd}/etagate.pid
  upgrade_socket: {nd}/upgrade.sock
  grace_period: 1s
  shutdown_timeout: 1s
access_log:
  path: {nd}/access.log
"#,
            public = n.public(),
            admin = n.admin(),
            origin = self.origin.addr,
            budget = self.budget,
        );
        if let Some(members) = self.members.as_ref().filter(|m| m.contains(&i)) {
            c.push_str(&format!(
                "cluster:\n  node: {}\n  listen: \"{}\"\n  secret_file: {fd}/peer-secret\n  peers:\n",
                n.name,
                n.peer()
            ));
            for &p in members.iter().filter(|&&p| p != i) {
                c.push_str(&format!(
                    "    - {{ name: {}, address: \"{}\" }}\n",
                    self.nodes[p].name,
                    self.nodes[p].peer()
                ));
            }
            c.push_str(&format!(
                "  connect_timeout: {}ms\n  request_timeout: {}s\n  probe_interval: {}ms\n",
                CONNECT_TIMEOUT.as_millis(),
                REQUEST_TIMEOUT.as_secs(),
                PROBE_INTERVAL.as_millis()
            ));
        }
        c
    }

    pub fn write_config(&self, i: usize) {
        std::fs::write(&self.nodes[i].config_path, self.config(i)).expect("write node config");
    }

    /// Change the cluster membership and rewrite every node's config (nothing reloads).
    pub fn set_members(&mut self, members: Option<&[usize]>) {
        self.members = members.map(<[usize]>::to_vec);
        for i in 0..self.nodes.len() {
            self.write_config(i);
        }
    }

    /// Start nodes (their current config) together and wait until all are ready; in a cluster,
    /// then wait two probe intervals so that the members have seen each other.
    pub async fn start_nodes(&mut self, which: &[usize]) {
        for &i in which {
            self.nodes[i].spawn();
        }
        for &i in which {
            self.wait_ready(i).await;
        }
        if self.clustered() {
            tokio::time::sleep(PROBE_INTERVAL * 2 + CONNECT_TIMEOUT).await;
        }
    }

    /// Wait until node `i`'s `/readyz` answers 200 (20 s at most).
    pub async fn wait_ready(&mut self, i: usize) {
        let http = http_client(Duration::from_secs(2));
        let url = format!("http://{}/readyz", self.nodes[i].admin());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            let node = &mut self.nodes[i];
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} exited ({status}) before becoming ready; its config:\n{}\nits log:\n{}",
                    node.name,
                    std::fs::read_to_string(&node.config_path).unwrap_or_default(),
                    node.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become ready within 20 s; its log:\n{}",
                node.name,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Start node `i` again with its config file as it is.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        self.wait_ready(i).await;
    }

    /// `kill -<sig>` node `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.nodes[i].pid().expect("node running");
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// `POST /reload` on node `i`, which must apply the file.
    pub async fn reload(&self, i: usize) -> serde_json::Value {
        let (status, report) = self.client.reload(i).await;
        assert_eq!(
            (status, report["result"].as_str()),
            (200, Some("applied")),
            "{} did not apply its config: {report}\nconfig:\n{}",
            NAMES[i],
            self.config(i)
        );
        report
    }

    /// Cut node `i` off the network (one end of its veth pair down).
    pub fn partition(&self, i: usize, end: End) {
        match &self.net {
            Net::Namespaces(ns) => ns.partition(i, end),
            Net::Loopback => panic!("no partitions in loopback mode"),
        }
    }

    pub fn heal(&self, i: usize) {
        match &self.net {
            Net::Namespaces(ns) => ns.heal(i),
            Net::Loopback => panic!("no partitions in loopback mode"),
        }
    }

    /// `K` of the namespaces, if any.
    pub fn k(&self) -> Option<u8> {
        match &self.net {
            Net::Namespaces(ns) => Some(ns.k),
            Net::Loopback => None,
        }
    }

    pub fn netns_name(&self, i: usize) -> Option<&str> {
        self.net.netns(i)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                let log = n.log();
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(60);
                eprintln!(
                    "--- {} ({}) stderr, last {} of {} lines ---",
                    n.name,
                    n.ip,
                    lines.len() - from,
                    lines.len()
                );
                for l in &lines[from..] {
                    eprintln!("{l}");
                }
            }
        }
        for n in &mut self.nodes {
            n.kill9();
        }
    }
}

/// What one request of a load run got.
#[derive(Debug)]
pub struct Outcome {
    pub node: usize,
    pub path: String,
    /// Since the run's reference instant.
    pub started: Duration,
    pub elapsed: Duration,
    pub result: Result<Resp, String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(&self.result, Ok(r) if r.status == 200)
    }

    pub fn owner(&self) -> Option<String> {
        self.result.as_ref().ok().and_then(Resp::owner)
    }

    pub fn describe_failure(&self) -> String {
        match &self.result {
            Ok(r) => format!(
                "{} {} at {:?}: status {} ({})",
                NAMES[self.node],
                self.path,
                self.started,
                r.status,
                r.text().chars().take(120).collect::<String>()
            ),
            Err(e) => format!(
                "{} {} at {:?}: {}",
                NAMES[self.node],
                self.path,
                self.started,
                e.chars().take(200).collect::<String>()
            ),
        }
    }
}

/// Limits of a load run: it stops at whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Requests at most (the whole plan once when it equals the plan's length).
    pub max_requests: usize,
    /// Until this instant at most.
    pub deadline: Instant,
}

/// Send the plan's requests (node, path) with `workers` concurrent clients, each taking the
/// next item, cycling through the plan, until `bounds` or `stop` end it. Outcomes in the order
/// their requests were taken.
pub async fn run(
    client: &Client,
    plan: &[(usize, String)],
    workers: usize,
    bounds: Bounds,
    reference: Instant,
    stop: Option<Arc<AtomicBool>>,
) -> Vec<Outcome> {
    let plan = Arc::new(plan.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, plan, next, stop) = (client.clone(), plan.clone(), next.clone(), stop.clone());
        tasks.spawn(async move {
            let mut got = Vec::new();
            loop {
                if Instant::now() >= bounds.deadline
                    || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bounds.max_requests || plan.is_empty() {
                    break;
                }
                let (node, path) = &plan[i % plan.len()];
                let t = Instant::now();
                let result = client.get(*node, path).await;
                got.push((
                    i,
                    Outcome {
                        node: *node,
                        path: path.clone(),
                        started: t.duration_since(reference),
                        elapsed: t.elapsed(),
                        result,
                    },
                ));
            }
            got
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("load worker"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

/// The plan once through, with `workers` clients and a generous time limit.
pub async fn run_once(client: &Client, plan: &[(usize, String)], workers: usize) -> Vec<Outcome> {
    let bounds = Bounds {
        max_requests: plan.len(),
        deadline: Instant::now() + Duration::from_secs(90),
    };
    let out = run(client, plan, workers, bounds, Instant::now(), None).await;
    assert_eq!(
        out.len(),
        plan.len(),
        "the plan of {} requests did not finish within 90 s",
        plan.len()
    );
    out
}

/// Outcomes that were not a 200.
pub fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| !o.ok()).collect()
}

/// Panic listing (the first 10) failures, if any.
pub fn assert_all_ok(what: &str, outcomes: &[Outcome]) {
    let failed = failures(outcomes);
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed; first ones:\n{}",
        failed.len(),
        outcomes.len(),
        failed
            .iter()
            .take(10)
            .map(|o| o.describe_failure())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Round-robin plan: request `i` of `paths` goes to node `nodes[i % nodes.len()]`.
pub fn round_robin(paths: &[String], nodes: &[usize]) -> Vec<(usize, String)> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| (nodes[i % nodes.len()], p.clone()))
        .collect()
}

/// Paths `<prefix><i>` for i in 0..n.
pub fn paths(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}
