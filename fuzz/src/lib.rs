//! Helpers shared by the fuzz targets: turning fuzzer bytes into the inputs etagate's parsers
//! take, in readable formats so the seed corpus under `corpus/` can be written by hand.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Field lines of one header: each `\n`-separated line that is a valid field value (what a
/// real request could carry: `http` refuses CR, LF and other controls).
pub fn field_lines(data: &[u8]) -> Vec<HeaderValue> {
    data.split(|&b| b == b'\n')
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect()
}

/// A header map from `name: value` lines (lines that are not a valid field are skipped).
pub fn header_map(data: &[u8]) -> HeaderMap {
    header_map_from(data.split(|&b| b == b'\n'))
}

/// A header map from `name: value` lines.
pub fn header_map_from<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = header_line(line) {
            map.append(name, value);
        }
    }
    map
}

/// One `name: value` line; the value's leading whitespace is dropped, as a parser would.
pub fn header_line(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = HeaderName::from_bytes(&line[..colon]).ok()?;
    let mut value = &line[colon + 1..];
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    let value = HeaderValue::from_bytes(value).ok()?;
    Some((name, value))
}

/// The same map with the field lines of `name` in reverse order.
pub fn with_lines_reversed(map: &HeaderMap, name: &HeaderName) -> HeaderMap {
    let mut out = map.clone();
    let lines: Vec<HeaderValue> = map.get_all(name).iter().rev().cloned().collect();
    out.remove(name);
    for v in lines {
        out.append(name.clone(), v);
    }
    out
}

/// The same map with every field line of `name` appended a second time (duplicates).
pub fn with_lines_doubled(map: &HeaderMap, name: &HeaderName) -> HeaderMap {
    let mut out = map.clone();
    for v in map.get_all(name) {
        out.append(name.clone(), v.clone());
    }
    out
}

/// The same map with the field lines of `name` combined into one, comma separated (RFC 9110
/// §5.3: a recipient may combine them, and the meaning must not change). `None` when the
/// header is absent.
pub fn with_lines_combined(map: &HeaderMap, name: &HeaderName) -> Option<HeaderMap> {
    let lines: Vec<&[u8]> = map.get_all(name).iter().map(|v| v.as_bytes()).collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(&b", "[..]);
    let mut out = map.clone();
    out.remove(name);
    out.insert(
        name.clone(),
        HeaderValue::from_bytes(&joined).expect("valid field values joined by a comma are valid"),
    );
    Some(out)
}

/// A decimal number at the start of `data` (leading digits only, saturating), and the rest
/// after the first `\n`: how the `range` target reads a representation length.
pub fn leading_number(data: &[u8]) -> (u64, &[u8]) {
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &[][..]),
    };
    let n = head
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
    (n, rest)
}
