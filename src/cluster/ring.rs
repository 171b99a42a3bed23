//! Who owns a key: a ketama ring (`pingora-ketama`) over the members' peer addresses, and the
//! walk along it past members that are down. Pure: health is a predicate the caller passes.
//!
//! Every member builds the same ring from the same member list (addresses and weights, not
//! names, are hashed), so every node agrees on the owner of a key while they agree on
//! membership; while they disagree, a request forwarded by a peer is answered where it
//! arrives and never forwarded again, so disagreement costs a duplicate fetch, never a loop.

use pingora_ketama::{Bucket, Continuum};
use std::net::SocketAddr;

/// Ring points per unit of weight, in units of ketama's 160. ketama's own 160 points leave a
/// member of three owning anywhere from about 28 % to 40 % of the keys, depending on the
/// addresses; with a fleet sized to hold its working set, the busiest member then evicts what
/// the others have room for. Eight times as many points keep every share within a few percent
/// of its weight for the cost of a larger ring (3,840 points for three members, rebuilt only
/// when membership changes).
const POINTS_SCALE: u32 = 8;

/// One member as the ring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub addr: SocketAddr,
    pub weight: u32,
}

pub struct Ring {
    continuum: Continuum,
    /// Members in the order given; owners are reported as indexes into it.
    addrs: Vec<SocketAddr>,
    points: usize,
}

impl Ring {
    pub fn new(members: &[Point]) -> Ring {
        let buckets: Vec<Bucket> = members
            .iter()
            .map(|m| Bucket::new(m.addr, m.weight.max(1) * POINTS_SCALE))
            .collect();
        Ring {
            continuum: Continuum::new(&buckets),
            addrs: members.iter().map(|m| m.addr).collect(),
            // ketama places 160 points per unit of (scaled) weight.
            points: members
                .iter()
                .map(|m| (m.weight.max(1) * POINTS_SCALE) as usize * 160)
                .sum(),
        }
    }

    /// The first member on the ring from `key` on for which `usable` holds (an index into the
    /// members given to [`Ring::new`]); `None` when none does.
    pub fn owner(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        let mut tried: Vec<usize> = Vec::new();
        for addr in self.continuum.node_iter(key).take(self.points) {
            let Some(i) = self.addrs.iter().position(|a| a == addr) else {
                continue;
            };
            if tried.contains(&i) {
                continue;
            }
            if usable(i) {
                return Some(i);
            }
            tried.push(i);
            if tried.len() == self.addrs.len() {
                break;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u8) -> Vec<Point> {
        (1..=n)
            .map(|i| Point {
                addr: SocketAddr::from(([10, 0, 0, i], 8471)),
                weight: 1,
            })
            .collect()
    }

    fn owners(ring: &Ring, members: &[Point], keys: u32) -> Vec<SocketAddr> {
        (0..keys)
            .map(|k| {
                let i = ring.owner(&k.to_le_bytes(), |_| true).expect("owner");
                members[i].addr
            })
            .collect()
    }

    #[test]
    fn keys_spread_over_members_and_a_leaving_member_moves_only_its_own() {
        let three = members(3);
        let ring3 = Ring::new(&three);
        let before = owners(&ring3, &three, 30_000);
        for m in &three {
            let share = before.iter().filter(|a| **a == m.addr).count() as f64 / 30_000.0;
            assert!((0.3..0.37).contains(&share), "{}: {share}", m.addr);
        }
        let two = members(2);
        let after = owners(&Ring::new(&two), &two, 30_000);
        let gone = three[2].addr;
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let owned_by_gone = before.iter().filter(|a| **a == gone).count();
        assert_eq!(moved, owned_by_gone, "only the leaving member's keys move");
    }

    #[test]
    fn a_joining_member_takes_about_a_quarter_of_the_keys() {
        let three = members(3);
        let four = members(4);
        let before = owners(&Ring::new(&three), &three, 20_000);
        let after = owners(&Ring::new(&four), &four, 20_000);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        assert!(
            moved.iter().all(|(_, a)| **a == four[3].addr),
            "moved only to the new member"
        );
        let share = moved.len() as f64 / 20_000.0;
        assert!((0.15..0.35).contains(&share), "{share}");
    }

    #[test]
    fn a_down_owner_fails_over_to_the_next_member_and_back() {
        let three = members(3);
        let ring = Ring::new(&three);
        for k in 0u32..500 {
            let key = k.to_le_bytes();
            let first = ring.owner(&key, |_| true).expect("owner");
            let next = ring.owner(&key, |i| i != first).expect("failover");
            assert_ne!(first, next);
            assert_eq!(ring.owner(&key, |_| true), Some(first));
            assert_eq!(ring.owner(&key, |_| false), None);
        }
    }

    #[test]
    fn weights_shift_the_share() {
        let mut m = members(2);
        m[1].weight = 3;
        let ring = Ring::new(&m);
        let heavy = owners(&ring, &m, 20_000)
            .iter()
            .filter(|a| **a == m[1].addr)
            .count() as f64
            / 20_000.0;
        assert!((0.65..0.85).contains(&heavy), "{heavy}");
    }
}

#[cfg(test)]
mod balance {
    use super::*;

    /// Over many three-member fleets (addresses as a test or a deployment would pick them),
    /// the busiest member's share stays close to a third.
    #[test]
    fn shares_stay_close_to_the_weights_across_addresses() {
        let mut worst: f64 = 0.0;
        for k in 0u8..40 {
            let members: Vec<Point> = (0..3)
                .map(|i| Point {
                    addr: SocketAddr::from(([10, 77, k, 11 + i], 8471)),
                    weight: 1,
                })
                .collect();
            let ring = Ring::new(&members);
            let mut counts = [0usize; 3];
            for key in 0u32..20_000 {
                let h = blake3::hash(&key.to_le_bytes());
                counts[ring.owner(&h.as_bytes()[..16], |_| true).expect("owner")] += 1;
            }
            let max = *counts.iter().max().expect("three") as f64 / 20_000.0;
            worst = worst.max(max);
        }
        assert!(worst < 0.375, "busiest member's share {worst}");
    }
}
