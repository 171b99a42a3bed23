//! Targeted cache control (RFC 9213): response fields that direct only some caches.
//!
//! etagate's target list (§2.2), most specific first: its own field (`Etagate-Cache-Control`,
//! renamed by `cache.targeted_field`), which only etagate obeys, then `CDN-Cache-Control` (§3),
//! which etagate obeys as the CDN-like shared cache in front of an origin that it is. The first
//! field on the list whose value is a valid, non-empty Structured Fields Dictionary (RFC 8941
//! §3.2, §2.1) decides what etagate stores and for how long, and `Cache-Control` and `Expires`
//! are then ignored for that (§2.2); with none, they decide as before. An invalid field is
//! ignored as a whole (§2.1), never partly read.
//!
//! What is forwarded (§2.2 leaves it to the cache that consumes a field): etagate's own field
//! is removed from responses to clients (nobody past etagate is its target, and it describes
//! the origin's policy for this fleet), while `CDN-Cache-Control` goes on, since a CDN in front
//! of the fleet is a target too (the public suite's `cdn-remove-header` check expects it
//! forwarded). A fleet member answering another member keeps its own field too, so that the
//! edge learns from it what the owner did (`cache::pass_through`).
//!
//! `Cache-Control` still governs what clients are told and whether a response to a client
//! gets a content ETag: targeted fields only change this cache's storage.

use super::cache_control::{Delta, ResponseDirectives, DELTA_SECONDS_MAX};
use http::header::{HeaderMap, HeaderName};

/// The field RFC 9213 §3 defines for CDN caches.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The name of etagate's own targeted field when the config does not rename it.
pub const DEFAULT_FIELD: &str = "Etagate-Cache-Control";

/// etagate's target list: its own field, then `CDN-Cache-Control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    own: HeaderName,
}

impl Targets {
    pub fn new(own: HeaderName) -> Targets {
        Targets { own }
    }

    /// The field only etagate obeys: removed from responses to clients.
    pub fn own(&self) -> &HeaderName {
        &self.own
    }

    fn in_order(&self) -> [&HeaderName; 2] {
        [&self.own, &CDN_CACHE_CONTROL]
    }
}

impl Default for Targets {
    fn default() -> Targets {
        Targets::new(HeaderName::from_static("etagate-cache-control"))
    }
}

/// The directives this cache stores a response by: those of the first targeted field with a
/// valid, non-empty value, with `true`; else `Cache-Control`'s, with `false`.
pub fn effective(resp: &HeaderMap, targets: &Targets) -> (ResponseDirectives, bool) {
    for name in targets.in_order() {
        if let Some(d) = parse(resp, name) {
            return (d, true);
        }
    }
    (
        ResponseDirectives::parse(resp.get_all(http::header::CACHE_CONTROL)),
        false,
    )
}

/// One targeted field's directives, or `None` when it is absent, empty or not a valid
/// Dictionary. Several lines are one value joined by commas (RFC 8941 §4.2).
fn parse(resp: &HeaderMap, name: &HeaderName) -> Option<ResponseDirectives> {
    let lines: Vec<&[u8]> = resp.get_all(name).iter().map(|v| v.as_bytes()).collect();
    if lines.is_empty() {
        return None;
    }
    let dict = sfv::Parser::parse_dictionary(&lines.join(&b", "[..])).ok()?;
    if dict.is_empty() {
        return None;
    }
    let mut d = ResponseDirectives::default();
    for (key, member) in &dict {
        // Parameters and inner lists carry nothing for these directives (§2.1): an inner list
        // where a value is expected is a value of the wrong type.
        let item = match member {
            sfv::ListEntry::Item(i) => Some(&i.bare_item),
            sfv::ListEntry::InnerList(_) => None,
        };
        // Keys are lower case by the Dictionary syntax itself.
        match key.as_str() {
            "max-age" => d.max_age = Some(delta(item)),
            "s-maxage" => d.s_maxage = Some(delta(item)),
            "stale-while-revalidate" => d.stale_while_revalidate = seconds(item),
            "stale-if-error" => d.stale_if_error = seconds(item),
            "no-store" => d.no_store = present(item),
            "no-cache" => d.no_cache = present(item),
            "private" => d.private = present(item),
            "public" => d.public = item.and_then(|i| i.as_bool()) == Some(true),
            "must-revalidate" => d.must_revalidate = present(item),
            "proxy-revalidate" => d.proxy_revalidate = present(item),
            "immutable" => d.immutable = item.and_then(|i| i.as_bool()) == Some(true),
            _ => {}
        }
    }
    Some(d)
}

/// A delta-seconds directive's value: an Integer (§2.1); anything else (a String, a Decimal, a
/// negative number) is invalid, which like an invalid `Cache-Control` max-age makes the response
/// stale (RFC 9111 §4.2.1).
fn delta(item: Option<&sfv::BareItem>) -> Delta {
    match item.and_then(|i| i.as_int()) {
        Some(n) if n >= 0 => Delta::Seconds(n.min(i64::from(DELTA_SECONDS_MAX)) as u32),
        _ => Delta::Invalid,
    }
}

fn seconds(item: Option<&sfv::BareItem>) -> Option<u32> {
    match delta(item) {
        Delta::Seconds(s) => Some(s),
        Delta::Invalid => None,
    }
}

/// A directive that restricts the cache: present unless written false (`no-store=?0`). A value
/// of another type (`no-cache="set-cookie"`) still restricts: the safe reading.
fn present(item: Option<&sfv::BareItem>) -> bool {
    item.and_then(|i| i.as_bool()) != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::headers;

    /// Response fields; then targeted?, max-age, no-store, private, no-cache.
    type Case = (
        &'static [(&'static str, &'static str)],
        bool,
        Option<Delta>,
        bool,
        bool,
        bool,
    );

    /// RFC 9213 §2.1-2.2 and the public suite's `cdn-*` cases: which field decides, and what
    /// it says.
    #[test]
    fn the_first_valid_targeted_field_decides_and_invalid_ones_are_ignored_whole() {
        let s = Delta::Seconds;
        // (response fields, targeted?, max-age, no-store, private, no-cache)
        let cases: &[Case] = &[
            (
                &[("cdn-cache-control", "max-age=3600")],
                true,
                Some(s(3600)),
                false,
                false,
                false,
            ),
            // §2.2: Cache-Control is ignored when a targeted field decides.
            (
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=10000"),
                ],
                true,
                Some(s(10000)),
                false,
                false,
                false,
            ),
            (
                &[
                    ("cache-control", "max-age=3600"),
                    ("cdn-cache-control", "max-age=1"),
                ],
                true,
                Some(s(1)),
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "private")],
                true,
                None,
                false,
                true,
                false,
            ),
            (
                &[("cdn-cache-control", "no-cache")],
                true,
                None,
                false,
                false,
                true,
            ),
            (
                &[("cdn-cache-control", "no-store")],
                true,
                None,
                true,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "no-store=?0")],
                true,
                None,
                false,
                false,
                false,
            ),
            // Values beyond 2^31 clamp (RFC 9111 §1.2.2); unknown members are ignored.
            (
                &[("cdn-cache-control", "max-age=99999999999")],
                true,
                Some(s(2_147_483_648)),
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "foobar, max-age=3600")],
                true,
                Some(s(3600)),
                false,
                false,
                false,
            ),
            // A wrongly typed value is invalid, as in Cache-Control.
            (
                &[("cdn-cache-control", "max-age=\"10000\"")],
                true,
                Some(Delta::Invalid),
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "max-age=1.5")],
                true,
                Some(Delta::Invalid),
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "max-age=-1")],
                true,
                Some(Delta::Invalid),
                false,
                false,
                false,
            ),
            // Not a Dictionary: the field is ignored, Cache-Control decides.
            (
                &[
                    ("cdn-cache-control", "max-age=10000, &&&&&"),
                    ("cache-control", "no-store"),
                ],
                false,
                None,
                true,
                false,
                false,
            ),
            (
                &[
                    ("cdn-cache-control", "max-age =100"),
                    ("cache-control", "max-age=1"),
                ],
                false,
                Some(s(1)),
                false,
                false,
                false,
            ),
            (
                &[
                    ("cdn-cache-control", "max-age= 100"),
                    ("cache-control", "max-age=1"),
                ],
                false,
                Some(s(1)),
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", "MaX-aGe=3600")],
                false,
                None,
                false,
                false,
                false,
            ),
            (
                &[("cdn-cache-control", ""), ("cache-control", "private")],
                false,
                None,
                false,
                true,
                false,
            ),
            // etagate's own field comes first on the list.
            (
                &[
                    ("cdn-cache-control", "no-store"),
                    ("etagate-cache-control", "max-age=60"),
                ],
                true,
                Some(s(60)),
                false,
                false,
                false,
            ),
            (
                &[
                    ("cdn-cache-control", "max-age=5"),
                    ("etagate-cache-control", "!"),
                ],
                true,
                Some(s(5)),
                false,
                false,
                false,
            ),
            // Several lines are one Dictionary; a later duplicate key wins (RFC 8941 §4.2.2).
            (
                &[
                    ("cdn-cache-control", "max-age=5"),
                    ("cdn-cache-control", "max-age=7, private"),
                ],
                true,
                Some(s(7)),
                false,
                true,
                false,
            ),
        ];
        for (fields, targeted, max_age, no_store, private, no_cache) in cases {
            let (d, t) = effective(&headers(fields), &Targets::default());
            assert_eq!(
                (t, d.max_age, d.no_store, d.private, d.no_cache),
                (*targeted, *max_age, *no_store, *private, *no_cache),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn stale_directives_and_revalidation_are_read() {
        let (d, _) = effective(
            &headers(&[(
                "cdn-cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=300, must-revalidate",
            )]),
            &Targets::default(),
        );
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert_eq!(d.stale_if_error, Some(300));
        assert!(d.must_revalidate);
    }

    #[test]
    fn a_renamed_own_field_replaces_the_default_one() {
        let t = Targets::new(HeaderName::from_static("acme-cache-control"));
        let h = headers(&[
            ("etagate-cache-control", "max-age=1"),
            ("acme-cache-control", "max-age=2"),
        ]);
        assert_eq!(effective(&h, &t).0.max_age, Some(Delta::Seconds(2)));
    }
}
