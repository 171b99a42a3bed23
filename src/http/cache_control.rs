//! `Cache-Control` (and `Surrogate-Control`) directives, parsed without allocating.
//!
//! pingora-cache ships a parser, but it allocates per directive and lets the last duplicate
//! win; RFC 9111 §4.2.1 wants the first occurrence (or "stale"), and request directives are
//! parsed on the cache-hit path, so etagate walks the bytes itself:
//! `cache-directive = token [ "=" ( token / quoted-string ) ]`, comma separated over all field
//! lines, names case-insensitive, commas inside quoted strings ignored.

use http::header::GetAll;
use http::HeaderValue;

/// delta-seconds beyond this are clamped (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u32 = 2_147_483_648;

/// One directive: its name (as written) and raw value (quotes removed, escapes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl Directive<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The value of a delta-seconds directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    Seconds(u32),
    /// Present but not a non-negative integer (`-1`, `1.5`, `'3600'`, missing value): RFC 9111
    /// §4.2.1 encourages treating such freshness information as stale.
    Invalid,
}

/// Parse delta-seconds: digits only (leading zeros allowed), clamped; a quoted-string holding
/// digits is accepted as senders sometimes quote.
pub fn delta_seconds(value: Option<&[u8]>) -> Delta {
    let Some(v) = value else {
        return Delta::Invalid;
    };
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Delta::Invalid;
    }
    let mut n: u64 = 0;
    for d in v {
        n = n * 10 + u64::from(d - b'0');
        if n > u64::from(DELTA_SECONDS_MAX) {
            return Delta::Seconds(DELTA_SECONDS_MAX);
        }
    }
    Delta::Seconds(n as u32)
}

/// Iterate the directives of every field line in order.
pub fn directives<'a>(lines: GetAll<'a, HeaderValue>) -> impl Iterator<Item = Directive<'a>> {
    lines
        .into_iter()
        .flat_map(|v| DirectiveIter { rest: v.as_bytes() })
}

/// Directives of one field value.
pub fn directives_of(value: &[u8]) -> DirectiveIter<'_> {
    DirectiveIter { rest: value }
}

pub struct DirectiveIter<'a> {
    rest: &'a [u8],
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'a> Iterator for DirectiveIter<'a> {
    type Item = Directive<'a>;

    fn next(&mut self) -> Option<Directive<'a>> {
        loop {
            // skip separators
            while let Some((&b, tail)) = self.rest.split_first() {
                if is_ows(b) || b == b',' {
                    self.rest = tail;
                } else {
                    break;
                }
            }
            if self.rest.is_empty() {
                return None;
            }
            let name_end = self
                .rest
                .iter()
                .position(|&b| b == b'=' || b == b',' || is_ows(b))
                .unwrap_or(self.rest.len());
            let name = &self.rest[..name_end];
            let mut after = &self.rest[name_end..];
            // tolerate spaces before '=' (seen in the wild)
            let trimmed = trim_start(after);
            let value = if trimmed.first() == Some(&b'=') {
                let v = trim_start(&trimmed[1..]);
                if v.first() == Some(&b'"') {
                    // quoted-string: up to the closing quote, honouring backslash escapes
                    let mut i = 1;
                    let mut end = None;
                    while i < v.len() {
                        match v[i] {
                            b'\\' => i += 2,
                            b'"' => {
                                end = Some(i);
                                break;
                            }
                            _ => i += 1,
                        }
                    }
                    match end {
                        Some(e) => {
                            after = &v[e + 1..];
                            Some(&v[1..e])
                        }
                        None => {
                            after = &[];
                            Some(&v[1..])
                        }
                    }
                } else {
                    let end = v
                        .iter()
                        .position(|&b| b == b',' || is_ows(b))
                        .unwrap_or(v.len());
                    after = &v[end..];
                    Some(&v[..end])
                }
            } else {
                after = trimmed;
                None
            };
            // drop whatever trails before the next comma (garbage after a value)
            self.rest = match after.iter().position(|&b| b == b',') {
                Some(p) => &after[p..],
                None => &[],
            };
            if name.is_empty() {
                continue;
            }
            return Some(Directive { name, value });
        }
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_ows(b)).count();
    &s[n..]
}

/// The response directives a shared cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub max_age: Option<Delta>,
    pub s_maxage: Option<Delta>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<u32>,
    pub stale_if_error: Option<u32>,
}

impl ResponseDirectives {
    /// Parse all `Cache-Control` lines; the first occurrence of a directive wins.
    pub fn parse(lines: GetAll<'_, HeaderValue>) -> ResponseDirectives {
        let mut d = ResponseDirectives::default();
        for dir in directives(lines) {
            let n = dir.name;
            let eq = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
            if eq("max-age") {
                d.max_age.get_or_insert(delta_seconds(dir.value));
            } else if eq("s-maxage") {
                d.s_maxage.get_or_insert(delta_seconds(dir.value));
            } else if eq("no-store") {
                d.no_store = true;
            } else if eq("no-cache") {
                d.no_cache = true;
            } else if eq("private") {
                d.private = true;
            } else if eq("public") {
                d.public = true;
            } else if eq("must-revalidate") {
                d.must_revalidate = true;
            } else if eq("proxy-revalidate") {
                d.proxy_revalidate = true;
            } else if eq("must-understand") {
                d.must_understand = true;
            } else if eq("immutable") {
                d.immutable = true;
            } else if eq("stale-while-revalidate") {
                if let Delta::Seconds(s) = delta_seconds(dir.value) {
                    d.stale_while_revalidate.get_or_insert(s);
                }
            } else if eq("stale-if-error") {
                if let Delta::Seconds(s) = delta_seconds(dir.value) {
                    d.stale_if_error.get_or_insert(s);
                }
            }
        }
        d
    }

    /// Whether a stale copy may never be served without validation (RFC 9111 §4.2.4 and
    /// §5.2.2: must-revalidate, and for a shared cache proxy-revalidate and s-maxage; no-cache
    /// means every use needs validation).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some() || self.no_cache
    }
}

/// The request directives a shared cache honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub max_age: Option<u32>,
    /// `Some(None)`: any staleness is acceptable.
    pub max_stale: Option<Option<u32>>,
    pub min_fresh: Option<u32>,
    pub no_cache: bool,
    pub no_store: bool,
    pub only_if_cached: bool,
    pub stale_if_error: Option<u32>,
}

impl RequestDirectives {
    /// Parse all `Cache-Control` lines of a request. Unknown directives mean nothing.
    pub fn parse(lines: GetAll<'_, HeaderValue>) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        for dir in directives(lines) {
            let n = dir.name;
            let eq = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
            if eq("max-age") {
                if let Delta::Seconds(s) = delta_seconds(dir.value) {
                    d.max_age.get_or_insert(s);
                }
            } else if eq("max-stale") {
                if d.max_stale.is_none() {
                    d.max_stale = match dir.value {
                        None => Some(None),
                        Some(_) => match delta_seconds(dir.value) {
                            Delta::Seconds(s) => Some(Some(s)),
                            Delta::Invalid => None,
                        },
                    };
                }
            } else if eq("min-fresh") {
                if let Delta::Seconds(s) = delta_seconds(dir.value) {
                    d.min_fresh.get_or_insert(s);
                }
            } else if eq("no-cache") {
                d.no_cache = true;
            } else if eq("no-store") {
                d.no_store = true;
            } else if eq("only-if-cached") {
                d.only_if_cached = true;
            } else if eq("stale-if-error") {
                if let Delta::Seconds(s) = delta_seconds(dir.value) {
                    d.stale_if_error.get_or_insert(s);
                }
            }
        }
        d
    }

    /// Whether nothing here changes what the cache may do.
    pub fn is_empty(&self) -> bool {
        *self == RequestDirectives::default()
    }
}

/// `Surrogate-Control` directives that apply to this cache (Edge Architecture 1.0): those
/// without a target, or targeted at `device` with `;device`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SurrogateDirectives {
    pub max_age: Option<Delta>,
    pub no_store: bool,
}

impl SurrogateDirectives {
    pub fn parse(lines: GetAll<'_, HeaderValue>, device: &str) -> SurrogateDirectives {
        let mut d = SurrogateDirectives::default();
        for line in lines {
            for dir in directives_of(line.as_bytes()) {
                // a directive's target follows `;` inside its value or name
                let (name, value, target) = split_target(dir);
                if let Some(t) = target {
                    if !t.eq_ignore_ascii_case(device.as_bytes()) {
                        continue;
                    }
                }
                if name.eq_ignore_ascii_case(b"max-age") {
                    d.max_age.get_or_insert(delta_seconds(value));
                } else if name.eq_ignore_ascii_case(b"no-store") {
                    d.no_store = true;
                }
            }
        }
        d
    }
}

fn split_target(dir: Directive<'_>) -> (&[u8], Option<&[u8]>, Option<&[u8]>) {
    match dir.value {
        Some(v) => match v.iter().position(|&b| b == b';') {
            Some(p) => (dir.name, Some(&v[..p]), Some(trim_start(&v[p + 1..]))),
            None => (dir.name, Some(v), None),
        },
        None => match dir.name.iter().position(|&b| b == b';') {
            Some(p) => (&dir.name[..p], None, Some(&dir.name[p + 1..])),
            None => (dir.name, None, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("cache-control", HeaderValue::from_str(l).expect("value"));
        }
        h
    }

    fn resp(lines: &[&str]) -> ResponseDirectives {
        ResponseDirectives::parse(headers(lines).get_all("cache-control"))
    }

    #[test]
    fn parses_names_case_insensitively_and_values() {
        let d = resp(&["MaX-aGe=3600, No-StOrE"]);
        assert_eq!(d.max_age, Some(Delta::Seconds(3600)));
        assert!(d.no_store);
    }

    #[test]
    fn the_first_occurrence_wins_across_lines() {
        assert_eq!(
            resp(&["max-age=1", "max-age=3600"]).max_age,
            Some(Delta::Seconds(1))
        );
        assert_eq!(
            resp(&["max-age=3600, max-age=1"]).max_age,
            Some(Delta::Seconds(3600))
        );
    }

    #[test]
    fn quoted_strings_hide_their_commas_and_directives() {
        let d = resp(&["extension=\"max-age=3600, public\", max-age=1"]);
        assert_eq!(d.max_age, Some(Delta::Seconds(1)));
        assert!(!d.public);
        let d = resp(&["max-age=\"1\", extension=\"max-age=3600\""]);
        assert_eq!(d.max_age, Some(Delta::Seconds(1)));
    }

    #[test]
    fn invalid_delta_seconds_are_invalid_not_absent() {
        assert_eq!(resp(&["max-age='3600'"]).max_age, Some(Delta::Invalid));
        assert_eq!(resp(&["max-age=-3600"]).max_age, Some(Delta::Invalid));
        assert_eq!(resp(&["max-age=1.5"]).max_age, Some(Delta::Invalid));
        assert_eq!(resp(&["max-age"]).max_age, Some(Delta::Invalid));
    }

    #[test]
    fn leading_zeros_and_huge_values_are_understood() {
        assert_eq!(
            resp(&["max-age=003600"]).max_age,
            Some(Delta::Seconds(3600))
        );
        assert_eq!(
            resp(&["max-age=99999999999"]).max_age,
            Some(Delta::Seconds(DELTA_SECONDS_MAX))
        );
        assert_eq!(
            resp(&["max-age=2147483647"]).max_age,
            Some(Delta::Seconds(2_147_483_647))
        );
    }

    #[test]
    fn unknown_directives_are_ignored() {
        let d = resp(&["foobar, max-age=3600"]);
        assert_eq!(d.max_age, Some(Delta::Seconds(3600)));
        let r =
            RequestDirectives::parse(headers(&["nothing-to-see-here"]).get_all("cache-control"));
        assert!(r.is_empty());
    }

    #[test]
    fn spaces_around_equals_are_tolerated() {
        assert_eq!(resp(&["max-age =3600"]).max_age, Some(Delta::Seconds(3600)));
        assert_eq!(resp(&["max-age= 3600"]).max_age, Some(Delta::Seconds(3600)));
    }

    #[test]
    fn request_directives() {
        let r = RequestDirectives::parse(
            headers(&["max-stale, min-fresh=10, no-cache, only-if-cached, stale-if-error=5"])
                .get_all("cache-control"),
        );
        assert_eq!(r.max_stale, Some(None));
        assert_eq!(r.min_fresh, Some(10));
        assert!(r.no_cache && r.only_if_cached);
        assert_eq!(r.stale_if_error, Some(5));
        let r = RequestDirectives::parse(headers(&["max-stale=30"]).get_all("cache-control"));
        assert_eq!(r.max_stale, Some(Some(30)));
    }

    #[test]
    fn surrogate_directives_honour_targets() {
        let mut h = HeaderMap::new();
        h.append(
            "surrogate-control",
            HeaderValue::from_static("max-age=3600;not-for-you"),
        );
        let d = SurrogateDirectives::parse(h.get_all("surrogate-control"), "etagate");
        assert_eq!(d.max_age, None);
        let mut h = HeaderMap::new();
        h.append(
            "surrogate-control",
            HeaderValue::from_static("max-age=10000;etagate, no-store;other"),
        );
        let d = SurrogateDirectives::parse(h.get_all("surrogate-control"), "etagate");
        assert_eq!(d.max_age, Some(Delta::Seconds(10000)));
        assert!(!d.no_store);
        let mut h = HeaderMap::new();
        h.append(
            "surrogate-control",
            HeaderValue::from_static("foobar, MaX-aGe=3600"),
        );
        let d = SurrogateDirectives::parse(h.get_all("surrogate-control"), "etagate");
        assert_eq!(d.max_age, Some(Delta::Seconds(3600)));
    }

    #[test]
    fn stale_forbidding_directives() {
        assert!(resp(&["max-age=2, must-revalidate"]).forbids_stale());
        assert!(resp(&["max-age=2, s-maxage=2"]).forbids_stale());
        assert!(!resp(&["max-age=2, stale-if-error=60"]).forbids_stale());
    }
}
