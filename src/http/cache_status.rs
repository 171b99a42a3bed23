//! The `Cache-Status` response header (RFC 9211), naming etagate.

/// What etagate did with one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Answered from the cache without going forward.
    pub hit: bool,
    /// Why it went forward: `uri-miss`, `vary-miss`, `miss`, `stale`, `bypass`.
    pub fwd: Option<&'static str>,
    /// The status the origin answered the forwarded request with.
    pub fwd_status: Option<u16>,
    /// Remaining freshness of the response used, seconds (negative when stale).
    pub ttl: Option<i64>,
    /// The response was stored.
    pub stored: bool,
    /// The request waited for another request's fill instead of going forward itself.
    pub collapsed: bool,
    /// The cache key (only when the route's debug headers are on: it reveals key composition).
    pub key: Option<String>,
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// The header value, e.g. `etagate; fwd=uri-miss; fwd-status=200; stored`.
    pub fn render(&self) -> String {
        self.render_as("etagate")
    }

    /// The header value with the cache named `name` (a fleet member names itself).
    pub fn render_as(&self, name: &str) -> String {
        let mut s = String::with_capacity(48);
        s.push_str(name);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            s.push_str("; fwd=");
            s.push_str(f);
        }
        if let Some(st) = self.fwd_status {
            s.push_str(&format!("; fwd-status={st}"));
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!("; ttl={t}"));
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(k) = &self.key {
            s.push_str("; key=\"");
            for c in k.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                // sf-string allows printable ASCII only
                if (' '..='~').contains(&c) {
                    s.push(c);
                } else {
                    s.push('?');
                }
            }
            s.push('"');
        }
        if let Some(d) = self.detail {
            s.push_str("; detail=");
            s.push_str(d);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_parameters() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(42),
            ..Default::default()
        };
        assert_eq!(hit.render(), "etagate; hit; ttl=42");
        let miss = CacheStatus {
            fwd: Some("uri-miss"),
            fwd_status: Some(200),
            stored: true,
            key: Some("http://a/\"x\"".into()),
            ..Default::default()
        };
        assert_eq!(
            miss.render(),
            "etagate; fwd=uri-miss; fwd-status=200; stored; key=\"http://a/\\\"x\\\"\""
        );
    }
}
