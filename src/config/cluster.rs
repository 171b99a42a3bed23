//! Validation of `cluster:` (fleet membership), without I/O: the secret file is read and DNS
//! names are resolved when the runtime instantiates the config.

use super::error::Reporter;
use super::model::{AdminSpec, ClusterDns, ClusterSpec, Listener, PeerSpec};
use super::schema::ClusterConf;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest node name: a DNS label, so a name can double as a pod or host name.
const MAX_NODE_NAME: usize = 63;
/// Members at most; the ring and the purge fan-out are sized for a fleet, not a swarm.
pub const MAX_MEMBERS: usize = 256;
/// Largest weight: each unit is 160 ring points, and a ring is rebuilt on every change.
const MAX_WEIGHT: u32 = 100;

fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NODE_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn address(s: &str, path: &str, r: &mut Reporter) -> Option<SocketAddr> {
    match s.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.at_value(
                path,
                format!("'{s}' is not an IP:port address; write it like 10.0.0.1:8471"),
            );
            None
        }
    }
}

fn weight(w: u32, path: &str, r: &mut Reporter) {
    if w == 0 || w > MAX_WEIGHT {
        r.at_value(
            path,
            format!("weight {w} is out of range; use 1 to {MAX_WEIGHT}"),
        );
    }
}

fn positive(d: Duration, path: &str, example: &str, r: &mut Reporter) {
    if d.is_zero() {
        r.at_value(path, format!("must be longer than 0; use e.g. {example}"));
    }
}

pub fn check(
    c: &ClusterConf,
    listeners: &[Listener],
    admin: &AdminSpec,
    r: &mut Reporter,
) -> Option<ClusterSpec> {
    if !valid_node_name(&c.node) {
        r.at_value(
            "cluster.node",
            format!("'{}' is not a node name; use 1 to {MAX_NODE_NAME} letters, digits, '-', '_' or '.', e.g. etagate-a", c.node),
        );
    }
    let listen = address(&c.listen, "cluster.listen", r);
    if let Some(l) = listen {
        let clash = |a: SocketAddr| {
            a.port() == l.port()
                && (a.ip() == l.ip() || a.ip().is_unspecified() || l.ip().is_unspecified())
        };
        if listeners.iter().any(|p| clash(p.address)) || clash(admin.address) {
            r.at_value(
                "cluster.listen",
                format!("{l} is also a public or the admin listener; peer traffic needs its own address"),
            );
        }
    }
    let advertise = match &c.advertise {
        Some(a) => address(a, "cluster.advertise", r),
        None => match listen {
            Some(l) if l.ip().is_unspecified() => {
                r.at_value(
                    "cluster.listen",
                    format!("{l} is an unspecified address, which the other nodes cannot reach; add cluster.advertise with this node's reachable IP:port"),
                );
                None
            }
            l => l,
        },
    };
    if advertise.is_some_and(|a| a.ip().is_unspecified()) {
        r.at_value(
            "cluster.advertise",
            "an unspecified address cannot be reached; give this node's IP",
        );
    }
    if c.secret_file.trim().is_empty() {
        r.at_value(
            "cluster.secret_file",
            "empty path; name a file holding the shared secret",
        );
    }
    weight(c.weight, "cluster.weight", r);
    let mut names = HashSet::from([c.node.as_str()]);
    let mut addresses: HashSet<SocketAddr> = advertise.into_iter().collect();
    let mut peers = Vec::new();
    for (i, p) in c.peers.iter().enumerate() {
        let base = format!("cluster.peers[{i}]");
        if !valid_node_name(&p.name) {
            r.at_value(
                &format!("{base}.name"),
                format!(
                    "'{}' is not a node name; use letters, digits, '-', '_' or '.'",
                    p.name
                ),
            );
        } else if !names.insert(p.name.as_str()) {
            r.at_value(
                &format!("{base}.name"),
                format!(
                    "'{}' names two members (or this node); each member needs its own name",
                    p.name
                ),
            );
        }
        weight(p.weight, &format!("{base}.weight"), r);
        let Some(a) = address(&p.address, &format!("{base}.address"), r) else {
            continue;
        };
        if a.ip().is_unspecified() {
            r.at_value(
                &format!("{base}.address"),
                "an unspecified address cannot be reached; give the member's IP",
            );
        } else if !addresses.insert(a) {
            r.at_value(
                &format!("{base}.address"),
                format!("{a} is listed twice (or is this node's own address); remove one"),
            );
        }
        peers.push(PeerSpec {
            name: p.name.clone(),
            address: a,
            weight: p.weight,
        });
    }
    if c.peers.len() + 1 > MAX_MEMBERS {
        r.at_value(
            "cluster.peers",
            format!(
                "{} members; at most {MAX_MEMBERS} are supported",
                c.peers.len() + 1
            ),
        );
    }
    let dns = c.dns.as_ref().map(|d| {
        if d.name.trim().is_empty() {
            r.at_value("cluster.dns.name", "empty; give the members' DNS name");
        }
        if d.port == 0 {
            r.at_value("cluster.dns.port", "must be the members' peer port, not 0");
        }
        positive(d.interval, "cluster.dns.interval", "10s", r);
        ClusterDns {
            name: d.name.trim().to_string(),
            port: d.port,
            interval: d.interval,
        }
    });
    positive(c.connect_timeout, "cluster.connect_timeout", "250ms", r);
    positive(c.request_timeout, "cluster.request_timeout", "10s", r);
    positive(c.probe_interval, "cluster.probe_interval", "1s", r);
    positive(c.purge_timeout, "cluster.purge_timeout", "2s", r);
    Some(ClusterSpec {
        node: c.node.clone(),
        listen: listen?,
        advertise: advertise?,
        secret_file: c.secret_file.clone(),
        weight: c.weight,
        peers,
        dns,
        connect_timeout: c.connect_timeout,
        request_timeout: c.request_timeout,
        probe_interval: c.probe_interval,
        purge_timeout: c.purge_timeout,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{self, ConfigSource};

    fn check(cluster: &str) -> Result<config::Config, String> {
        let text = format!(
            "listeners: [{{ address: 127.0.0.1:8080 }}]\nupstreams: {{ app: {{ servers: [127.0.0.1:8000] }} }}\nroutes: [{{ name: site, upstream: app }}]\ncluster:\n{cluster}"
        );
        config::parse("c.yaml", &text, ConfigSource::QuickMode).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_cluster_is_checked_into_its_spec() {
        let c = check("  node: etagate-a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  peers:\n    - { name: etagate-b, address: 10.0.0.2:8471, weight: 2 }\n")
            .expect("valid");
        let spec = c.cluster.expect("cluster");
        assert_eq!(spec.advertise, spec.listen);
        assert_eq!(spec.peers.len(), 1);
        assert_eq!(spec.peers[0].weight, 2);
    }

    #[test]
    fn invalid_clusters_are_located_errors() {
        let cases = [
            ("  node: 'a b'\n  listen: 10.0.0.1:8471\n  secret_file: /s\n", "not a node name"),
            ("  node: a\n  listen: 127.0.0.1:8080\n  secret_file: /s\n", "also a public"),
            ("  node: a\n  listen: 0.0.0.0:8471\n  secret_file: /s\n", "cluster.advertise"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  peers: [{ name: a, address: 10.0.0.2:8471 }]\n", "names two members"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  peers: [{ name: b, address: 10.0.0.1:8471 }]\n", "listed twice"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  peers: [{ name: b, address: nowhere }]\n", "not an IP:port"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  weight: 0\n", "out of range"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  probe_interval: 0s\n", "longer than 0"),
            ("  node: a\n  listen: 10.0.0.1:8471\n  secret_file: /s\n  surprise: 1\n", "unknown key"),
        ];
        for (cluster, why) in cases {
            let err = check(cluster).expect_err(cluster);
            assert!(
                err.contains("c.yaml:") && err.contains(why),
                "{cluster}: {err}"
            );
        }
    }
}
