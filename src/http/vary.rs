//! `Vary` and the variance of a request (RFC 9111 §4.1).
//!
//! Two requests select the same stored response when the header fields its `Vary` names match
//! after the normalizations §4.1 allows: field lines combined, whitespace around list commas
//! removed, and for `Accept-Encoding`, `Accept-Language` and `Accept-Charset` (lists whose
//! member order carries no meaning once q-values are kept, with case-insensitive tokens) members
//! lowercased and sorted. A header absent from a request only matches an absent header.

use http::header::{HeaderMap, HeaderName, VARY};

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarySpec {
    /// No `Vary`, or only empty members.
    None,
    /// `*` anywhere: the response can never be selected for another request.
    Star,
    /// The nominated request headers, lowercase, sorted, without duplicates.
    Headers(Vec<HeaderName>),
}

impl VarySpec {
    pub fn of(headers: &HeaderMap) -> VarySpec {
        let mut names: Vec<HeaderName> = Vec::new();
        for line in headers.get_all(VARY) {
            for member in line.as_bytes().split(|&b| b == b',') {
                let m = trim(member);
                if m.is_empty() {
                    continue;
                }
                if m == b"*" {
                    return VarySpec::Star;
                }
                match HeaderName::from_bytes(m) {
                    Ok(n) => names.push(n),
                    // a nominated name that is not a token can never match a request header
                    Err(_) => return VarySpec::Star,
                }
            }
        }
        if names.is_empty() {
            return VarySpec::None;
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        VarySpec::Headers(names)
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map(|p| p + 1)
        .unwrap_or(start);
    &v[start..end.max(start)]
}

fn order_free(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "accept-encoding" | "accept-language" | "accept-charset"
    )
}

/// The normalized value of one nominated header in a request, `None` when absent.
pub fn normalized_value(name: &HeaderName, req: &HeaderMap) -> Option<Vec<u8>> {
    let mut lines = req.get_all(name).iter().peekable();
    lines.peek()?;
    let mut members: Vec<Vec<u8>> = Vec::new();
    for line in lines {
        for m in line.as_bytes().split(|&b| b == b',') {
            let m = trim(m);
            if m.is_empty() {
                continue;
            }
            if order_free(name) {
                // "gzip ;q=0.5" and "GZIP;q=0.5" are the same member
                let compact: Vec<u8> = m
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .map(u8::to_ascii_lowercase)
                    .collect();
                members.push(compact);
            } else {
                members.push(m.to_vec());
            }
        }
    }
    if order_free(name) {
        members.sort();
        members.dedup();
    }
    Some(members.join(&b","[..]))
}

/// The variance of a request for a response that varies on `names`: a 16-byte hash, stable
/// across processes, that distinguishes every combination of normalized values.
pub fn variance(names: &[HeaderName], req: &HeaderMap) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    for n in names {
        h.update(n.as_str().as_bytes());
        match normalized_value(n, req) {
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(&v);
            }
            None => {
                h.update(&[0]);
            }
        }
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn spec(lines: &[&str]) -> VarySpec {
        VarySpec::of(&map(&lines
            .iter()
            .map(|l| ("vary", *l))
            .collect::<Vec<_>>()))
    }

    #[test]
    fn star_anywhere_is_star() {
        for lines in [
            &["*"][..],
            &["*, *"],
            &[", *"],
            &["*, Foo"],
            &["Foo, *"],
            &["*", "*"],
            &["", "*"],
        ] {
            assert_eq!(spec(lines), VarySpec::Star, "{lines:?}");
        }
    }

    #[test]
    fn names_are_lowercased_sorted_and_deduplicated() {
        assert_eq!(
            spec(&["Foo, bar", "FOO"]),
            VarySpec::Headers(vec![
                HeaderName::from_static("bar"),
                HeaderName::from_static("foo")
            ])
        );
        assert_eq!(spec(&["", " , "]), VarySpec::None);
    }

    fn same(a: &[(&str, &str)], b: &[(&str, &str)], names: &[&str]) -> bool {
        let names: Vec<HeaderName> = names
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("name"))
            .collect();
        variance(&names, &map(a)) == variance(&names, &map(b))
    }

    #[test]
    fn normalization_combines_lines_and_strips_whitespace() {
        assert!(same(
            &[("foo", "1, 2")],
            &[("foo", "1"), ("foo", "2")],
            &["foo"]
        ));
        assert!(same(&[("foo", "1,2")], &[("foo", "  1, 2 ")], &["foo"]));
        assert!(!same(&[("foo", "1")], &[("foo", "2")], &["foo"]));
        assert!(
            !same(&[("foo", "a")], &[("foo", "A")], &["foo"]),
            "unknown headers keep case"
        );
    }

    #[test]
    fn accept_lists_ignore_order_and_case() {
        assert!(same(
            &[("accept-language", "en, de")],
            &[("accept-language", "De, EN")],
            &["accept-language"]
        ));
        assert!(same(
            &[("accept-encoding", "gzip, br")],
            &[("accept-encoding", "br,GZIP")],
            &["accept-encoding"]
        ));
        assert!(!same(
            &[("accept-encoding", "gzip")],
            &[("accept-encoding", "br")],
            &["accept-encoding"]
        ));
    }

    #[test]
    fn absent_matches_only_absent() {
        assert!(!same(&[], &[("foo", "")], &["foo"]));
        assert!(same(&[("other", "1")], &[("other", "2")], &["foo"]));
        assert!(!same(
            &[("foo", "1"), ("bar", "2")],
            &[("foo", "1")],
            &["bar", "foo"]
        ));
    }
}
