//! Proof that a request comes from a fleet member: a MAC, keyed by the shared secret, over the
//! sending node's name and the time. The secret itself never travels.
//!
//! A captured header stays valid for [`MAX_SKEW_SECS`] (clocks of members differ a little);
//! peer traffic belongs on a private network, and the window bounds what a capture is worth.
//! The MAC does not cover the request itself: what a member may ask a peer for, any client
//! may ask any node for, so binding the URL would protect nothing worth the cost.

use std::time::{SystemTime, UNIX_EPOCH};

/// The sending member's node name. Only honoured on the peer listener, with a valid
/// [`AUTH_HEADER`].
pub const PEER_HEADER: &str = "etagate-peer";
/// `<unix seconds>.<hex MAC>`.
pub const AUTH_HEADER: &str = "etagate-peer-auth";
/// The scheme the client used at the edge (the key includes it; the hop itself is plain).
pub const SCHEME_HEADER: &str = "etagate-peer-scheme";
/// An operation between members instead of a forwarded request: `health`, `purge`.
pub const OP_HEADER: &str = "etagate-peer-op";
/// Every header of the peer protocol: removed from client requests on the public listeners.
pub const ALL_HEADERS: [&str; 4] = [PEER_HEADER, AUTH_HEADER, SCHEME_HEADER, OP_HEADER];

/// How far a MAC's time may be from the receiver's clock.
pub const MAX_SKEW_SECS: u64 = 300;

const CONTEXT: &str = "etagate 2026-12 peer authentication v1";

pub struct PeerKey([u8; 32]);

impl PeerKey {
    pub fn new(secret: &[u8]) -> PeerKey {
        PeerKey(blake3::derive_key(CONTEXT, secret))
    }

    fn mac(&self, node: &str, secs: u64) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(node.len() as u64).to_le_bytes());
        h.update(node.as_bytes());
        h.update(&secs.to_le_bytes());
        h.finalize()
    }

    /// The [`AUTH_HEADER`] value for a request sent by `node` at `now`.
    pub fn sign(&self, node: &str, now: SystemTime) -> String {
        let secs = unix_secs(now);
        format!("{secs}.{}", self.mac(node, secs).to_hex())
    }

    /// Whether `value` proves that `node` sent the request within the allowed skew of `now`.
    pub fn verify(&self, node: &str, value: &[u8], now: SystemTime) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let Some((secs, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(secs) = secs.parse::<u64>() else {
            return false;
        };
        if unix_secs(now).abs_diff(secs) > MAX_SKEW_SECS {
            return false;
        }
        let Ok(given) = blake3::Hash::from_hex(mac) else {
            return false;
        };
        // blake3::Hash compares in constant time.
        given == self.mac(node, secs)
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_right_secret_node_and_time_verify() {
        let key = PeerKey::new(b"0123456789abcdef-shared");
        let now = SystemTime::now();
        let v = key.sign("etagate-a", now);
        assert!(key.verify("etagate-a", v.as_bytes(), now));
        assert!(key.verify("etagate-a", v.as_bytes(), now + Duration::from_secs(60)));
        let cases: [(&str, &PeerKey, &str, SystemTime); 4] = [
            ("another node's name", &key, "etagate-b", now),
            (
                "too late",
                &key,
                "etagate-a",
                now + Duration::from_secs(MAX_SKEW_SECS + 5),
            ),
            (
                "too early",
                &key,
                "etagate-a",
                now - Duration::from_secs(MAX_SKEW_SECS + 5),
            ),
            (
                "another secret",
                &PeerKey::new(b"0123456789abcdef-other"),
                "etagate-a",
                now,
            ),
        ];
        for (why, k, node, at) in cases {
            assert!(!k.verify(node, v.as_bytes(), at), "{why}");
        }
        for junk in ["", ".", "1.", "x.00", "12", "1.zz", "\u{ff}"] {
            assert!(!key.verify("etagate-a", junk.as_bytes(), now), "{junk:?}");
        }
    }
}
