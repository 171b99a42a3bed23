//! Request authorities (`etagate::http::authority::Authority::parse`). Input: the raw
//! authority, optionally prefixed by `https://` (scheme https) or `http://` (scheme http, the
//! default).
//!
//! Asserts: a canonical authority re-parses to itself (idempotence, so routing, cache key and
//! forwarded `Host` agree), Display equals `as_str`, the host is a lowercase prefix without a
//! trailing dot, at most one port follows it, written in digits without leading zeros, never
//! the scheme's default and never above 65535.
#![no_main]

use etagate::http::authority::Authority;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (scheme, raw) = if let Some(r) = data.strip_prefix(b"https://") {
        ("https", r)
    } else if let Some(r) = data.strip_prefix(b"http://") {
        ("http", r)
    } else {
        ("http", data)
    };
    let Ok(a) = Authority::parse(raw, scheme) else {
        return;
    };
    let canonical = a.as_str();
    assert_eq!(a.to_string(), canonical);
    assert_eq!(
        Authority::parse(canonical.as_bytes(), scheme).as_ref(),
        Ok(&a),
        "{:?} -> {canonical:?} is not canonical",
        String::from_utf8_lossy(raw)
    );
    let host = a.host();
    assert!(canonical.starts_with(host));
    assert!(!host.is_empty());
    assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{host}");
    assert!(!host.ends_with('.'), "trailing dot kept: {host}");
    if !host.starts_with('[') {
        assert!(!host.contains(':'), "a colon in a reg-name host: {host}");
    }
    let rest = &canonical[host.len()..];
    if !rest.is_empty() {
        let port = rest.strip_prefix(':').expect("a port follows the host");
        assert!(
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
            "{canonical}"
        );
        assert!(
            port == "0" || !port.starts_with('0'),
            "leading zero: {canonical}"
        );
        let n: u16 = port.parse().expect("port fits u16");
        let default = if scheme == "https" { 443 } else { 80 };
        assert_ne!(n, default, "default port kept: {canonical}");
    }
});
