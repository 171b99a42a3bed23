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
use std::sync::Arc;

/// A primary key: its 128-bit hash and, when asked for, its readable form (for `X-Cache-Key`,
/// purge reports and the URL a stored response keeps for prefix purges; building it costs an
/// allocation a request that never reaches the cache does not need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey {
    pub hash: HashBinary,
    text: Option<Arc<str>>,
}

/// The host and non-default port of an authority, as keyed, without allocating.
fn host_parts<'a>(authority: &'a str, scheme: &str) -> (&'a str, Option<&'a str>) {
    let a = authority.trim();
    let (host, port) = if a.starts_with('[') {
        match a.find(']') {
            Some(end) => (&a[..=end], a[end + 1..].strip_prefix(':')),
            None => (a, None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
            _ => (a, None),
        }
    };
    let default = if scheme == "https" { "443" } else { "80" };
    (host.trim_end_matches('.'), port.filter(|p| *p != default))
}

/// Host as keyed: lowercase, no trailing dot, the port only when it is not the scheme's
/// default.
pub fn key_host(authority: &str, scheme: &str) -> String {
    let (host, port) = host_parts(authority, scheme);
    match port {
        Some(p) => format!("{}:{p}", host.to_ascii_lowercase()),
        None => host.to_ascii_lowercase(),
    }
}

/// The readable form of a key, `scheme://host[:port]/path?query`, host as keyed. A URL prefix
/// written the same way is a prefix of the readable form of every key it covers.
pub fn url_text(scheme: &str, authority: &str, path_and_query: &str) -> String {
    format!("{scheme}://{}{path_and_query}", key_host(authority, scheme))
}

impl PrimaryKey {
    /// The key of a request, hash only.
    pub fn new(scheme: &str, authority: &str, path_and_query: &str) -> PrimaryKey {
        let (host, port) = host_parts(authority, scheme);
        let host_len = host.len() + port.map(|p| p.len() + 1).unwrap_or(0);
        let mut h = blake3::Hasher::new();
        h.update(&(scheme.len() as u64).to_le_bytes());
        h.update(scheme.as_bytes());
        h.update(&(host_len as u64).to_le_bytes());
        let mut buf = [0u8; 64];
        for chunk in host.as_bytes().chunks(buf.len()) {
            let lower = &mut buf[..chunk.len()];
            lower.copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            h.update(lower);
        }
        if let Some(p) = port {
            h.update(b":");
            h.update(p.as_bytes());
        }
        h.update(&(path_and_query.len() as u64).to_le_bytes());
        h.update(path_and_query.as_bytes());
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&h.finalize().as_bytes()[..16]);
        PrimaryKey { hash, text: None }
    }

    /// The key with its readable form, `scheme://host[:port]/path?query`.
    pub fn with_text(scheme: &str, authority: &str, path_and_query: &str) -> PrimaryKey {
        let mut k = PrimaryKey::new(scheme, authority, path_and_query);
        k.text = Some(Arc::from(url_text(scheme, authority, path_and_query)));
        k
    }

    /// The readable form, when the key was built with it.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The readable form, shared (a stored response keeps it without another copy).
    pub fn url(&self) -> Option<&Arc<str>> {
        self.text.as_ref()
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
        assert_eq!(
            PrimaryKey::with_text("http", "Example.com:80", "/a?x=1").text(),
            Some("http://example.com/a?x=1")
        );
        assert_eq!(
            PrimaryKey::with_text("http", "Ex.com:8080", "/").hash,
            PrimaryKey::new("http", "ex.com:8080", "/").hash
        );
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
