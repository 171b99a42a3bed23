//! Cache keys.
//!
//! The primary key is scheme, normalized host (lowercase, default port dropped), and the
//! path with query exactly as requested. Each part is length-prefixed before hashing so no two
//! different requests can produce the same input (`http://a/bc` vs a host `a/b`). The variance
//! (which stored variant a request selects) comes from [`crate::http::vary`]; nothing else a
//! client sends reaches the key, and headers that could change an origin's response without
//! being keyed are stripped before the request leaves (see `proxy::forward`).

use pingora_cache::key::HashBinary;
use pingora_cache::CacheKey;

/// A primary key: the readable form (for `X-Cache-Key`) and its 128-bit hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey {
    pub text: String,
    pub hash: HashBinary,
}

/// Host as keyed: lowercase, no trailing dot, the port only when it is not the scheme's
/// default.
pub fn key_host(authority: &str, scheme: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':').map(str::to_string)),
            None => (a.clone(), None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h.to_string(), Some(p.to_string()))
            }
            _ => (a.clone(), None),
        }
    };
    let host = host.trim_end_matches('.').to_string();
    let default = if scheme == "https" { "443" } else { "80" };
    match port {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host,
    }
}

impl PrimaryKey {
    pub fn new(scheme: &str, authority: &str, path_and_query: &str) -> PrimaryKey {
        let host = key_host(authority, scheme);
        let mut h = blake3::Hasher::new();
        for part in [
            scheme.as_bytes(),
            host.as_bytes(),
            path_and_query.as_bytes(),
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&h.finalize().as_bytes()[..16]);
        PrimaryKey {
            text: format!("{scheme}://{host}{path_and_query}"),
            hash,
        }
    }

    /// The pingora-cache key, with this hash as its primary and the variance if any.
    pub fn to_cache_key(&self, variance: Option<HashBinary>) -> CacheKey {
        let mut k = CacheKey::new("", "");
        k.set_primary_bin_override(self.hash);
        if let Some(v) = variance {
            k.set_variance_key(v);
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case_do_not_split_the_key() {
        let a = PrimaryKey::new("http", "Example.com:80", "/a?x=1");
        let b = PrimaryKey::new("http", "example.com", "/a?x=1");
        assert_eq!(a, b);
        assert_eq!(a.text, "http://example.com/a?x=1");
        assert_ne!(a, PrimaryKey::new("http", "example.com:8080", "/a?x=1"));
        assert_ne!(a, PrimaryKey::new("https", "example.com", "/a?x=1"));
        assert_ne!(a, PrimaryKey::new("http", "example.com", "/a?x=2"));
    }

    #[test]
    fn parts_cannot_run_into_each_other() {
        assert_ne!(
            PrimaryKey::new("http", "a", "/bc").hash,
            PrimaryKey::new("http", "a/b", "c").hash
        );
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(key_host("[::1]:8080", "http"), "[::1]:8080");
        assert_eq!(key_host("[::1]:80", "http"), "[::1]");
    }

    #[test]
    fn pingora_keys_carry_our_hash_and_variance() {
        use pingora_cache::key::CacheHashKey;
        let p = PrimaryKey::new("http", "h", "/");
        let k = p.to_cache_key(Some([7; 16]));
        assert_eq!(k.primary_bin(), p.hash);
        assert_eq!(k.variance_bin(), Some([7; 16]));
    }
}
