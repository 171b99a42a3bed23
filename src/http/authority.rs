//! The authority a request is for (RFC 9110 §7.2, RFC 3986 §3.2), checked and in one canonical
//! form.
//!
//! The canonical form is what etagate routes on, keys the cache on and forwards as `Host`, so
//! the three can never disagree: a request whose `Host` would be keyed as one authority but
//! reach the origin as another could store a response built from a `Host` nobody else sent
//! (cache poisoning). Anything that is not a valid authority is refused, not repaired.
//!
//! Canonical means RFC 3986 §6.2.2-6.2.3 normalization: the host in lower case, one trailing
//! dot of a domain name dropped (`example.com.` names the same host, and an origin that treated
//! it differently would split the cache), an empty port or the scheme's default port dropped,
//! and the port written without leading zeros.

use std::fmt;
use std::net::Ipv6Addr;

/// Longest authority accepted: a DNS name is at most 253 characters, plus brackets and a port.
const MAX_AUTHORITY_LEN: usize = 300;

/// A valid authority in canonical form: `host` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    canonical: String,
    /// Length of the host part of `canonical` (IPv6 literals keep their brackets).
    host_len: usize,
}

/// Why an authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Empty,
    TooLong,
    /// `user@host`: RFC 9110 §4.2.4 forbids userinfo in http(s) URIs.
    UserInfo,
    /// A character outside RFC 3986's `reg-name`, or a second `:`.
    BadHost,
    /// An IP literal that is not an IPv6 address in brackets.
    BadIpLiteral,
    /// A port that is not 0-65535 written in digits.
    BadPort,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::Empty => "the host is empty",
            Invalid::TooLong => "the host is too long",
            Invalid::UserInfo => "the host carries user information",
            Invalid::BadHost => "the host has characters a host name cannot have",
            Invalid::BadIpLiteral => "the host is not a valid IPv6 literal",
            Invalid::BadPort => "the port is not a number from 0 to 65535",
        })
    }
}

impl Authority {
    /// Check `raw` (a `Host` value or a request target's authority) for a request of `scheme`
    /// (`http` or `https`) and bring it to canonical form.
    pub fn parse(raw: &[u8], scheme: &str) -> Result<Authority, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::Empty);
        }
        if raw.len() > MAX_AUTHORITY_LEN {
            return Err(Invalid::TooLong);
        }
        if raw.contains(&b'@') {
            return Err(Invalid::UserInfo);
        }
        let (host, port) = split_port(raw)?;
        let mut canonical = String::with_capacity(raw.len());
        if host.first() == Some(&b'[') {
            let literal = host
                .strip_prefix(b"[")
                .and_then(|h| h.strip_suffix(b"]"))
                .and_then(|h| std::str::from_utf8(h).ok())
                .ok_or(Invalid::BadIpLiteral)?;
            // Zone identifiers (`%25eth0`) and IPvFuture have no meaning for a request target.
            let addr: Ipv6Addr = literal.parse().map_err(|_| Invalid::BadIpLiteral)?;
            canonical.push('[');
            canonical.push_str(&addr.to_string());
            canonical.push(']');
        } else {
            let host = host.strip_suffix(b".").unwrap_or(host);
            if host.is_empty() {
                return Err(Invalid::Empty);
            }
            // Only one trailing dot is dropped: a second one is an empty label, and keeping it
            // would give a canonical form (`example.com.`) that is not canonical.
            if host.ends_with(b".") || !is_reg_name(host) {
                return Err(Invalid::BadHost);
            }
            for &b in host {
                canonical.push(b.to_ascii_lowercase() as char);
            }
        }
        let host_len = canonical.len();
        let default = if scheme == "https" { 443 } else { 80 };
        if let Some(p) = port.filter(|&p| p != default) {
            canonical.push(':');
            canonical.push_str(&p.to_string());
        }
        Ok(Authority {
            canonical,
            host_len,
        })
    }

    /// `host[:port]`, as forwarded and keyed.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The host without the port, as routes match it.
    pub fn host(&self) -> &str {
        &self.canonical[..self.host_len]
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Split `host[:port]`; the port is `None` when absent or empty (RFC 3986 §3.2.3 allows
/// `host:`, equivalent to no port).
fn split_port(raw: &[u8]) -> Result<(&[u8], Option<u16>), Invalid> {
    let host_end = if raw.first() == Some(&b'[') {
        raw.iter()
            .position(|&b| b == b']')
            .map(|i| i + 1)
            .ok_or(Invalid::BadIpLiteral)?
    } else {
        // The first colon ends a reg-name: a second one makes the port invalid.
        raw.iter().position(|&b| b == b':').unwrap_or(raw.len())
    };
    let (host, rest) = raw.split_at(host_end);
    let port = match rest {
        [] | [b':'] => None,
        [b':', digits @ ..] => Some(parse_port(digits)?),
        _ => return Err(Invalid::BadIpLiteral),
    };
    Ok((host, port))
}

fn parse_port(digits: &[u8]) -> Result<u16, Invalid> {
    if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Invalid::BadPort);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Invalid::BadPort)
}

/// RFC 3986 `reg-name` (which includes IPv4 addresses): unreserved, percent-encoded and
/// sub-delims characters.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_authorities_take_their_canonical_form() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // raw, scheme, canonical, host
            ("example.com", "http", "example.com", "example.com"),
            ("Example.COM", "http", "example.com", "example.com"),
            ("example.com.", "http", "example.com", "example.com"),
            ("example.com:80", "http", "example.com", "example.com"),
            ("example.com:080", "http", "example.com", "example.com"),
            ("example.com:", "http", "example.com", "example.com"),
            ("example.com:443", "http", "example.com:443", "example.com"),
            ("example.com:443", "https", "example.com", "example.com"),
            ("127.0.0.1:8080", "http", "127.0.0.1:8080", "127.0.0.1"),
            ("[::1]:8080", "http", "[::1]:8080", "[::1]"),
            ("[0:0::1]", "http", "[::1]", "[::1]"),
            ("[::1]:80", "http", "[::1]", "[::1]"),
            ("a_b-c~d", "http", "a_b-c~d", "a_b-c~d"),
            (
                "xn--bcher-kva.example",
                "http",
                "xn--bcher-kva.example",
                "xn--bcher-kva.example",
            ),
        ];
        for (raw, scheme, canonical, host) in cases {
            let a = Authority::parse(raw.as_bytes(), scheme)
                .unwrap_or_else(|e| panic!("{raw}: refused ({e})"));
            assert_eq!(a.as_str(), *canonical, "{raw}");
            assert_eq!(a.host(), *host, "{raw}");
        }
    }

    #[test]
    fn invalid_authorities_are_refused() {
        let cases: &[(&str, Invalid)] = &[
            ("", Invalid::Empty),
            (".", Invalid::Empty),
            (":80", Invalid::Empty),
            // A second trailing dot: an empty label (one trailing dot is dropped).
            ("..", Invalid::BadHost),
            ("example.com..", Invalid::BadHost),
            // The poisoning cases: a second port, a dot after the port.
            ("127.0.0.1:8080:80", Invalid::BadPort),
            ("127.0.0.1:8080.", Invalid::BadPort),
            ("example.com:8o", Invalid::BadPort),
            ("example.com:65536", Invalid::BadPort),
            ("example.com:000080", Invalid::BadPort),
            ("user@example.com", Invalid::UserInfo),
            ("example.com/path", Invalid::BadHost),
            ("exa mple.com", Invalid::BadHost),
            ("example.com\t", Invalid::BadHost),
            ("a%zz", Invalid::BadHost),
            ("[::1", Invalid::BadIpLiteral),
            ("[::1]x", Invalid::BadIpLiteral),
            ("[fe80::1%25eth0]", Invalid::BadIpLiteral),
            ("[v1.x]", Invalid::BadIpLiteral),
            ("[]:80", Invalid::BadIpLiteral),
        ];
        for (raw, why) in cases {
            assert_eq!(
                Authority::parse(raw.as_bytes(), "http"),
                Err(*why),
                "{raw:?}"
            );
        }
        let long = "a".repeat(MAX_AUTHORITY_LEN + 1);
        assert_eq!(
            Authority::parse(long.as_bytes(), "http"),
            Err(Invalid::TooLong)
        );
    }

    /// Found by the `authority` fuzz target: `..` canonicalized to `.`, which is refused, and
    /// `example.com..` to `example.com.`, which canonicalizes to `example.com`; a canonical
    /// form must re-parse to itself, or the cache key and the forwarded `Host` could differ.
    #[test]
    fn a_canonical_authority_reparses_to_itself() {
        for raw in ["..", "example.com..", "a...", "example.com..:8080"] {
            if let Ok(a) = Authority::parse(raw.as_bytes(), "http") {
                assert_eq!(
                    Authority::parse(a.as_str().as_bytes(), "http").as_ref(),
                    Ok(&a),
                    "{raw:?} -> {a}"
                );
            }
        }
    }

    #[test]
    fn a_malformed_port_never_collapses_onto_the_plain_key() {
        for raw in ["127.0.0.1:8080:80", "127.0.0.1:8080.", "127.0.0.1:8080:"] {
            assert!(Authority::parse(raw.as_bytes(), "http").is_err(), "{raw}");
        }
    }
}
