//! The network a fleet runs on: one network namespace per node, joined by a bridge in the root
//! namespace, or (without root or `ip`) distinct loopback addresses in the root namespace.
//!
//! Namespace layout for fleet number K (1..=254, unique among all fleets on the machine):
//!
//! ```text
//! root namespace:  bridge etf<K>br 10.77.K.1/24 (the origin and the test client live here)
//!                  veth etf<K>h<i>  (enslaved to the bridge)
//! netns etf<K>n<i>: veth etf<K>p<i> 10.77.K.(11+i)/24, lo up   (node i, from 0: a is .11)
//! ```
//!
//! K is claimed with a lock file in [`LOCK_DIR`] holding the claiming process id, so fleets of
//! parallel test threads and of concurrent test processes never share a subnet or a name. A lock
//! left by a process that no longer runs (a crashed run) is taken over, and everything named after
//! its K is deleted first (processes still running in its namespaces included).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where fleets claim their K (shared by every test process on the machine).
pub const LOCK_DIR: &str = "/tmp/etagate-fleet-net";

/// Set to force the loopback fallback (to exercise it, or where namespaces misbehave).
pub const NO_NETNS_ENV: &str = "ETAGATE_FLEET_NO_NETNS";

/// The network of one fleet.
pub enum Net {
    Namespaces(Namespaces),
    /// Nodes at 127.0.0.(2+i) in the root namespace; the origin at 127.0.0.1.
    Loopback,
}

impl Net {
    /// Namespaces for `nodes` nodes, or the loopback fallback (announced on standard error) when
    /// they cannot be made or `force_loopback` is set.
    pub fn create(nodes: usize, force_loopback: bool) -> Net {
        if force_loopback || std::env::var_os(NO_NETNS_ENV).is_some() {
            eprintln!(
                "fleet: loopback mode requested; nodes on 127.0.0.2.. in the root namespace (partition tests are skipped)"
            );
            return Net::Loopback;
        }
        match Namespaces::create(nodes) {
            Ok(ns) => Net::Namespaces(ns),
            Err(why) => {
                eprintln!(
                    "fleet: NETWORK NAMESPACES UNAVAILABLE ({why}); falling back to 127.0.0.2.. loopback addresses in the root namespace; partition tests are skipped"
                );
                Net::Loopback
            }
        }
    }

    /// The address the origin binds.
    pub fn origin_ip(&self) -> IpAddr {
        match self {
            Net::Namespaces(ns) => IpAddr::V4(Ipv4Addr::new(10, 77, ns.k, 1)),
            Net::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> IpAddr {
        match self {
            Net::Namespaces(ns) => IpAddr::V4(Ipv4Addr::new(10, 77, ns.k, 11 + i as u8)),
            Net::Loopback => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)),
        }
    }

    /// Node `i`'s namespace, if nodes have their own.
    pub fn netns(&self, i: usize) -> Option<&str> {
        match self {
            Net::Namespaces(ns) => Some(ns.nodes[i].netns.as_str()),
            Net::Loopback => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Net::Namespaces(ns) => format!(
                "namespaces, K={} (bridge {} 10.77.{}.1, nodes 10.77.{}.11..)",
                ns.k, ns.bridge, ns.k, ns.k
            ),
            Net::Loopback => "loopback fallback (127.0.0.2..)".to_string(),
        }
    }
}

/// Which end of a node's veth pair a partition takes down.
#[derive(Clone, Copy, Debug)]
pub enum End {
    /// The end enslaved to the bridge, in the root namespace.
    Bridge,
    /// The end inside the node's namespace.
    Node,
}

pub struct NsNode {
    pub netns: String,
    /// The veth end in the root namespace, on the bridge.
    pub host_veth: String,
    /// The veth end in the node's namespace.
    pub node_veth: String,
}

pub struct Namespaces {
    pub k: u8,
    pub bridge: String,
    pub nodes: Vec<NsNode>,
    lock: PathBuf,
}

/// Run `ip` with `args`; its standard error on failure.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn names(k: u8, nodes: usize) -> (String, Vec<NsNode>) {
    let bridge = format!("etf{k}br");
    let nodes = (0..nodes)
        .map(|i| NsNode {
            netns: format!("etf{k}n{i}"),
            host_veth: format!("etf{k}h{i}"),
            node_veth: format!("etf{k}p{i}"),
        })
        .collect();
    (bridge, nodes)
}

/// Delete whatever carries fleet K's names: processes in its namespaces, the namespaces, the
/// veths and the bridge. Errors (nothing there) are ignored.
fn delete_names(k: u8, max_nodes: usize) {
    let (bridge, nodes) = names(k, max_nodes);
    for n in &nodes {
        if let Ok(pids) = ip(&["netns", "pids", &n.netns]) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = ip(&["netns", "del", &n.netns]);
        let _ = ip(&["link", "del", &n.host_veth]);
    }
    let _ = ip(&["link", "del", &bridge]);
}

/// Nodes a fleet may have at most (names of leftovers are deleted up to this many).
const MAX_NODES: usize = 8;

/// Once per process: delete what fleets of crashed runs left (their lock names a process that
/// no longer runs), whichever K they had.
fn sweep_dead_fleets() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(dir) = std::fs::read_dir(LOCK_DIR) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(k) = name
                .strip_prefix('k')
                .and_then(|n| n.strip_suffix(".lock"))
                .and_then(|n| n.parse::<u8>().ok())
            else {
                continue;
            };
            let owner = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if owner.is_some_and(|o| !process_alive(o)) {
                eprintln!("fleet: removing the leftovers of a crashed run (K={k})");
                delete_names(k, MAX_NODES);
                // Unless another process took the K over meanwhile.
                let still = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if still == owner {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    });
}

/// Claim a K: create its lock file, taking over locks of dead processes.
fn claim_k() -> Result<(u8, PathBuf), String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| format!("cannot create {LOCK_DIR}: {e}"))?;
    sweep_dead_fleets();
    let pid = std::process::id();
    let start = pid.wrapping_mul(37) + COUNTER.fetch_add(1, Ordering::Relaxed) * 11;
    let in_use = ip(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    for j in 0..250u32 {
        let k = (1 + (start + j) % 250) as u8;
        let lock = PathBuf::from(format!("{LOCK_DIR}/k{k}.lock"));
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock);
        let claimed = match claimed {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                let fresh = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < std::time::Duration::from_secs(5));
                match owner {
                    Some(o) if process_alive(o) => None,
                    // Being claimed right now: its owner has not written its id yet.
                    None if fresh => None,
                    // A crashed run's lock.
                    _ => {
                        let _ = std::fs::remove_file(&lock);
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&lock)
                            .ok()
                    }
                }
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock.display())),
        };
        let Some(mut f) = claimed else { continue };
        use std::io::Write;
        f.write_all(pid.to_string().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", lock.display()))?;
        // Leftovers of a crashed run that had this K.
        delete_names(k, MAX_NODES);
        let after = ip(&["-o", "-4", "addr", "show"]).unwrap_or_default();
        let subnet = format!(" 10.77.{k}.");
        if after.contains(&subnet) || in_use.contains(&subnet) {
            // Someone else (not a fleet) uses this subnet.
            let _ = std::fs::remove_file(&lock);
            continue;
        }
        return Ok((k, lock));
    }
    Err("no free 10.77.K.0/24 subnet".to_string())
}

impl Namespaces {
    pub fn create(nodes: usize) -> Result<Namespaces, String> {
        assert!(nodes <= MAX_NODES, "at most {MAX_NODES} nodes");
        if !running_as_root() {
            return Err("not running as root".to_string());
        }
        ip(&["-V"])?;
        let (k, lock) = claim_k()?;
        let (bridge, ns_nodes) = names(k, nodes);
        let made = Namespaces {
            k,
            bridge,
            nodes: ns_nodes,
            lock,
        };
        // On error, dropping `made` deletes what was made.
        made.build()?;
        Ok(made)
    }

    fn build(&self) -> Result<(), String> {
        let k = self.k;
        ip(&["link", "add", &self.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.77.{k}.1/24"),
            "dev",
            &self.bridge,
        ])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for (i, n) in self.nodes.iter().enumerate() {
            ip(&["netns", "add", &n.netns])?;
            ip(&[
                "link",
                "add",
                &n.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &n.node_veth,
            ])?;
            ip(&["link", "set", &n.node_veth, "netns", &n.netns])?;
            ip(&["link", "set", &n.host_veth, "master", &self.bridge])?;
            ip(&["link", "set", &n.host_veth, "up"])?;
            ip(&[
                "-n",
                &n.netns,
                "addr",
                "add",
                &format!("10.77.{k}.{}/24", 11 + i),
                "dev",
                &n.node_veth,
            ])?;
            ip(&["-n", &n.netns, "link", "set", &n.node_veth, "up"])?;
            ip(&["-n", &n.netns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Take one end of node `i`'s veth pair down: the node can reach no one, no one reaches it
    /// (packets are dropped, connections time out rather than being refused).
    pub fn partition(&self, i: usize, end: End) {
        let n = &self.nodes[i];
        let r = match end {
            End::Bridge => ip(&["link", "set", &n.host_veth, "down"]),
            End::Node => ip(&["-n", &n.netns, "link", "set", &n.node_veth, "down"]),
        };
        r.expect("partition");
    }

    /// Both ends of node `i`'s veth pair up again.
    pub fn heal(&self, i: usize) {
        let n = &self.nodes[i];
        ip(&["-n", &n.netns, "link", "set", &n.node_veth, "up"]).expect("heal (node end)");
        ip(&["link", "set", &n.host_veth, "up"]).expect("heal (bridge end)");
    }

    /// Names of everything this fleet made that still exists (empty after the drop).
    pub fn leftovers(k: u8, nodes: usize) -> Vec<String> {
        let (bridge, ns_nodes) = names(k, nodes);
        let netns = ip(&["netns", "list"]).unwrap_or_default();
        let mut left = Vec::new();
        for n in &ns_nodes {
            if netns.split_whitespace().any(|w| w == n.netns) {
                left.push(n.netns.clone());
            }
            if ip(&["link", "show", &n.host_veth]).is_ok() {
                left.push(n.host_veth.clone());
            }
        }
        if ip(&["link", "show", &bridge]).is_ok() {
            left.push(bridge);
        }
        if std::path::Path::new(&format!("{LOCK_DIR}/k{k}.lock")).exists() {
            left.push(format!("{LOCK_DIR}/k{k}.lock"));
        }
        left
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.nodes {
            // The fleet killed its nodes already; anything still in there goes too.
            if let Ok(pids) = ip(&["netns", "pids", &n.netns]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = ip(&["netns", "del", &n.netns]);
            // Deleted with its peer when the namespace goes; this catches a half-built pair.
            let _ = ip(&["link", "del", &n.host_veth]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
        let _ = std::fs::remove_file(&self.lock);
    }
}
