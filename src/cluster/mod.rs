//! The fleet: which member owns a key, which members are up, and the calls members make to
//! each other (health probes, purge fan-out). Off unless the config has `cluster:`.
//!
//! - [`ring`]: the consistent-hash ring and the walk past members that are down;
//! - [`auth`]: the proof that a request comes from a member;
//! - [`peer`]: the HTTP calls to other members.
//!
//! Membership is the configured peers, the members a DNS name resolves to, and this node. A
//! member is down from the first failed request or probe until a probe succeeds; its keys go to
//! the next member on the ring meanwhile, and come back when it is up again. The state lives
//! here, outside the config snapshots, so a reload keeps the health of members it keeps.

pub mod auth;
pub mod peer;
pub mod ring;

use crate::config::model::ClusterSpec;
use crate::metrics::METRICS;
use arc_swap::ArcSwap;
use auth::PeerKey;
use parking_lot::Mutex;
use pingora_core::connectors::http::Connector;
use ring::{Point, Ring};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The outcomes `etagate_peer_requests_total` counts, per member.
pub const PEER_OUTCOMES: [&str; 5] = ["ok", "owner_error", "refused", "timeout", "error"];

/// One member of the fleet (this node included).
pub struct Member {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub weight: u32,
    /// This node: always usable by itself, never probed.
    pub local: bool,
    up: AtomicBool,
}

impl Member {
    pub fn is_up(&self) -> bool {
        self.local || self.up.load(Ordering::Acquire)
    }
}

/// The settings of a config snapshot that the fleet uses between requests.
pub struct Settings {
    pub spec: ClusterSpec,
    pub key: PeerKey,
}

struct Membership {
    ring: Ring,
    members: Vec<Arc<Member>>,
}

pub struct Fleet {
    /// This node's name; fixed for the life of the process (a rename needs a restart or a
    /// binary upgrade: peers and dashboards know the node by it).
    node: Arc<str>,
    settings: ArcSwap<Settings>,
    membership: ArcSwap<Membership>,
    /// Members by address, kept across membership changes so health survives a reload.
    known: Mutex<HashMap<SocketAddr, Arc<Member>>>,
    /// Addresses the DNS name resolved to last.
    discovered: Mutex<Vec<SocketAddr>>,
    pub(crate) connector: Connector,
}

impl Fleet {
    pub fn new(spec: &ClusterSpec, secret: &str) -> Fleet {
        let fleet = Fleet {
            node: Arc::from(spec.node.as_str()),
            settings: ArcSwap::from_pointee(Settings {
                spec: spec.clone(),
                key: PeerKey::new(secret.as_bytes()),
            }),
            membership: ArcSwap::from_pointee(Membership {
                ring: Ring::new(&[]),
                members: Vec::new(),
            }),
            known: Mutex::new(HashMap::new()),
            discovered: Mutex::new(Vec::new()),
            connector: Connector::new(None),
        };
        fleet.rebuild();
        fleet
    }

    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    pub fn settings(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// Apply a reloaded `cluster:` section: new peers join (assumed up until a probe or a
    /// request says otherwise), removed ones leave, kept ones keep their health.
    pub fn reconfigure(&self, spec: &ClusterSpec, secret: &str) {
        self.settings.store(Arc::new(Settings {
            spec: spec.clone(),
            key: PeerKey::new(secret.as_bytes()),
        }));
        if spec.dns.is_none() {
            self.discovered.lock().clear();
        }
        self.rebuild();
    }

    /// Replace the members found by DNS.
    pub fn set_discovered(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort();
        addrs.dedup();
        addrs.truncate(crate::config::cluster::MAX_MEMBERS);
        {
            let mut d = self.discovered.lock();
            if *d == addrs {
                return;
            }
            *d = addrs;
        }
        self.rebuild();
    }

    fn rebuild(&self) {
        let settings = self.settings.load();
        let spec = &settings.spec;
        let mut wanted: Vec<(Arc<str>, SocketAddr, u32, bool)> =
            vec![(self.node.clone(), spec.advertise, spec.weight, true)];
        for p in &spec.peers {
            wanted.push((Arc::from(p.name.as_str()), p.address, p.weight, false));
        }
        for a in self.discovered.lock().iter() {
            if !wanted.iter().any(|(_, addr, _, _)| addr == a) {
                wanted.push((Arc::from(a.to_string().as_str()), *a, 1, false));
            }
        }
        let mut known = self.known.lock();
        let members: Vec<Arc<Member>> = wanted
            .into_iter()
            .map(|(name, addr, weight, local)| {
                match known
                    .get(&addr)
                    .filter(|m| m.name == name && m.weight == weight && m.local == local)
                {
                    Some(m) => m.clone(),
                    None => Arc::new(Member {
                        name,
                        addr,
                        weight,
                        local,
                        up: AtomicBool::new(true),
                    }),
                }
            })
            .collect();
        known.clear();
        for m in &members {
            known.insert(m.addr, m.clone());
        }
        drop(known);
        let points: Vec<Point> = members
            .iter()
            .map(|m| Point {
                addr: m.addr,
                weight: m.weight,
            })
            .collect();
        let c = &METRICS.cluster;
        // A member that left takes its series along: with DNS discovery names are addresses,
        // and pods come and go, so keeping them would grow the metrics without bound.
        let before = self.membership.load();
        for gone in before
            .members
            .iter()
            .filter(|old| !members.iter().any(|m| m.name == old.name))
        {
            for outcome in PEER_OUTCOMES {
                let _ = c.peer_requests.remove_label_values(&[&gone.name, outcome]);
            }
            let _ = c.failovers.remove_label_values(&[&gone.name]);
        }
        c.members.set(members.len() as i64);
        c.member_up.reset();
        for m in &members {
            c.member_up
                .with_label_values(&[&m.name])
                .set(m.is_up() as i64);
        }
        log::info!(
            "cluster: {} members: {}",
            members.len(),
            members
                .iter()
                .map(|m| format!("{}@{}", m.name, m.addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.membership.store(Arc::new(Membership {
            ring: Ring::new(&points),
            members,
        }));
    }

    /// The member that owns a primary key: `None` when it is this node (or every other member
    /// that could own it is down).
    pub fn owner(&self, key: &[u8]) -> Option<Arc<Member>> {
        let m = self.membership.load();
        let i = m.ring.owner(key, |i| m.members[i].is_up())?;
        let member = &m.members[i];
        (!member.local).then(|| member.clone())
    }

    /// Every member but this node.
    pub fn peers(&self) -> Vec<Arc<Member>> {
        self.membership
            .load()
            .members
            .iter()
            .filter(|m| !m.local)
            .cloned()
            .collect()
    }

    /// Record that a member failed a request or a probe: its keys go elsewhere until a probe
    /// succeeds.
    pub fn mark_down(&self, member: &Member, why: &str) {
        if member.local || !member.up.swap(false, Ordering::AcqRel) {
            return;
        }
        log::warn!(
            "cluster: member {} ({}) is down: {why}; its keys go to the next member",
            member.name,
            member.addr
        );
        Self::publish_up(member, false);
    }

    fn mark_up(&self, member: &Member) {
        if member.up.swap(true, Ordering::AcqRel) {
            return;
        }
        log::info!(
            "cluster: member {} ({}) is up again; its keys return to it",
            member.name,
            member.addr
        );
        Self::publish_up(member, true);
    }

    fn publish_up(member: &Member, up: bool) {
        METRICS
            .cluster
            .member_up
            .with_label_values(&[&member.name])
            .set(up as i64);
    }

    /// The peer headers for a request this node sends: its name and the proof.
    pub fn credentials(&self) -> [(&'static str, String); 2] {
        let key = &self.settings.load().key;
        [
            (auth::PEER_HEADER, self.node.to_string()),
            (auth::AUTH_HEADER, key.sign(&self.node, SystemTime::now())),
        ]
    }

    /// The member name a request on the peer listener proves it comes from.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Option<String> {
        let node = headers.get(auth::PEER_HEADER)?.to_str().ok()?;
        let proof = headers.get(auth::AUTH_HEADER)?;
        self.settings
            .load()
            .key
            .verify(node, proof.as_bytes(), SystemTime::now())
            .then(|| node.to_string())
    }

    /// Probe every peer once, concurrently; each probe is bounded by the connect and request
    /// timeouts.
    pub async fn probe_all(self: &Arc<Self>) {
        let peers = self.peers();
        let mut tasks = Vec::with_capacity(peers.len());
        for m in peers {
            let fleet = self.clone();
            tasks.push(tokio::spawn(async move {
                match peer::probe(&fleet, &m).await {
                    Ok(()) => fleet.mark_up(&m),
                    Err(why) => fleet.mark_down(&m, &format!("health probe failed: {why}")),
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Resolve the DNS name once (when configured) and adopt the result. A failed resolution
    /// keeps the previous members: a DNS outage must not empty the ring.
    pub async fn resolve(&self) {
        let Some(dns) = self.settings.load().spec.dns.clone() else {
            return;
        };
        let lookup = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((dns.name.as_str(), dns.port)),
        )
        .await;
        match lookup {
            Ok(Ok(addrs)) => self.set_discovered(addrs.collect()),
            Ok(Err(e)) => log::warn!(
                "cluster: cannot resolve {}: {e}; keeping the members found before",
                dns.name
            ),
            Err(_) => log::warn!(
                "cluster: resolving {} took longer than 5s; keeping the members found before",
                dns.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ClusterSpec, PeerSpec};

    fn spec(peers: &[(&str, u8)]) -> ClusterSpec {
        ClusterSpec {
            node: "a".to_string(),
            listen: SocketAddr::from(([10, 0, 0, 1], 8471)),
            advertise: SocketAddr::from(([10, 0, 0, 1], 8471)),
            secret_file: "/s".to_string(),
            weight: 1,
            peers: peers
                .iter()
                .map(|(n, ip)| PeerSpec {
                    name: n.to_string(),
                    address: SocketAddr::from(([10, 0, 0, *ip], 8471)),
                    weight: 1,
                })
                .collect(),
            dns: None,
            connect_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_secs(1),
            probe_interval: Duration::from_secs(1),
            purge_timeout: Duration::from_secs(1),
        }
    }

    fn names(f: &Fleet) -> Vec<String> {
        let mut v: Vec<String> = f.peers().iter().map(|m| m.name.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn membership_follows_reloads_and_dns_and_keeps_the_health_of_members_it_keeps() {
        let fleet = Fleet::new(&spec(&[("b", 2), ("c", 3)]), "0123456789abcdef");
        assert_eq!(names(&fleet), ["b", "c"]);
        let b = fleet
            .peers()
            .into_iter()
            .find(|m| &*m.name == "b")
            .expect("b");
        fleet.mark_down(&b, "test");
        fleet.reconfigure(&spec(&[("b", 2), ("d", 4)]), "0123456789abcdef");
        assert_eq!(names(&fleet), ["b", "d"]);
        let b = fleet
            .peers()
            .into_iter()
            .find(|m| &*m.name == "b")
            .expect("b");
        assert!(!b.is_up(), "a kept member keeps its health");
        // DNS adds members by address; this node's own address and listed peers are not added
        // twice.
        fleet.set_discovered(vec![
            SocketAddr::from(([10, 0, 0, 1], 8471)),
            SocketAddr::from(([10, 0, 0, 4], 8471)),
            SocketAddr::from(([10, 0, 0, 9], 8471)),
        ]);
        assert_eq!(names(&fleet), ["10.0.0.9:8471", "b", "d"]);
        // Keys of a down member go to others, never to it.
        for k in 0u32..200 {
            let owner = fleet.owner(&k.to_le_bytes());
            assert!(owner.is_none_or(|m| &*m.name != "b"));
        }
    }

    #[test]
    fn a_member_that_leaves_takes_its_metric_series_along() {
        let f = Fleet::new(&spec(&[("leaving-b", 2), ("staying-c", 3)]), "secret");
        let c = &METRICS.cluster;
        for name in ["leaving-b", "staying-c"] {
            c.peer_requests.with_label_values(&[name, "ok"]).inc();
            c.failovers.with_label_values(&[name]).inc();
        }
        f.reconfigure(&spec(&[("staying-c", 3)]), "secret");
        let text = String::from_utf8(METRICS.render()).expect("utf-8");
        assert!(!text.contains("leaving-b"), "{text}");
        assert!(text.contains("staying-c"));
    }

    #[test]
    fn a_member_proof_names_the_sender_and_a_forged_one_is_refused() {
        let fleet = Fleet::new(&spec(&[("b", 2)]), "0123456789abcdef");
        let mut headers = http::HeaderMap::new();
        for (n, v) in fleet.credentials() {
            headers.insert(n, v.parse().expect("header value"));
        }
        assert_eq!(fleet.authenticate(&headers).as_deref(), Some("a"));
        headers.insert(auth::PEER_HEADER, "b".parse().expect("value"));
        assert_eq!(
            fleet.authenticate(&headers),
            None,
            "the proof is for another name"
        );
        let other = Fleet::new(&spec(&[("b", 2)]), "another secret, 16+");
        let mut forged = http::HeaderMap::new();
        for (n, v) in other.credentials() {
            forged.insert(n, v.parse().expect("header value"));
        }
        assert_eq!(fleet.authenticate(&forged), None, "another secret");
    }
}
