//! Property tests of the RFC invariants etagate's HTTP semantics rest on (RFC 9110 §8.8.3,
//! §13, §14; RFC 9111), over the library's public API with generated inputs.
//!
//! Freshness (`http::freshness`) has no properties here yet: that module is being split into
//! others, and its properties belong with the new modules.
//!
//! Inputs are drawn from small alphabets (a few opaque tags, dates a second apart) so that
//! matches, ties and duplicates are common rather than astronomically rare. A failure prints
//! the shrunk input; proptest keeps it in `tests/properties.proptest-regressions` to replay it
//! first on the next run (commit that file along with the fix).

use etagate::http::authority::Authority;
use etagate::http::date::fmt_http_date;
use etagate::http::etag::EntityTag;
use etagate::http::preconditions::{evaluate, Outcome, Validators};
use etagate::http::range::{parse_range, RangeRequest};
use etagate::proxy::respond::{decide, precondition_decision, Decision, Origin};
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pingora_http::{RequestHeader, ResponseHeader};
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

// ---- generators ---------------------------------------------------------------------------

/// An entity-tag as written: `"x"` or `W/"x"`. Mostly from a tiny alphabet so that two tags
/// often share their opaque part; sometimes any etagc characters (commas included).
fn tag() -> impl Strategy<Value = String> {
    let opaque = prop_oneof![4 => "[ab]{0,2}", 1 => "[!#-~]{0,8}"];
    (any::<bool>(), opaque).prop_map(|(weak, o)| {
        if weak {
            format!("W/\"{o}\"")
        } else {
            format!("\"{o}\"")
        }
    })
}

fn strong_tag() -> impl Strategy<Value = String> {
    "[ab]{0,2}".prop_map(|o| format!("\"{o}\""))
}

fn weak_tag() -> impl Strategy<Value = String> {
    "[ab]{0,2}".prop_map(|o| format!("W/\"{o}\""))
}

/// An HTTP-date within a few seconds of a fixed instant, so comparisons often tie.
fn date() -> impl Strategy<Value = String> {
    (0u64..6).prop_map(|s| fmt_http_date(UNIX_EPOCH + Duration::from_secs(784_111_774 + s)))
}

/// A tag-list field value: `*`, or tags joined by commas (with optional whitespace).
fn tag_list() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("*".to_string()),
        6 => prop::collection::vec(tag(), 1..5).prop_map(|t| t.join(", ")),
    ]
}

/// The validators of the selected representation: ETag, Last-Modified, Date.
#[derive(Debug, Clone)]
struct Stored {
    etag: Option<String>,
    last_modified: Option<String>,
    date: Option<String>,
}

fn stored() -> impl Strategy<Value = Stored> {
    (
        prop::option::weighted(0.9, tag()),
        prop::option::of(date()),
        prop::option::of(date()),
    )
        .prop_map(|(etag, last_modified, date)| Stored {
            etag,
            last_modified,
            date,
        })
}

impl Stored {
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, v) in [
            (ETAG, &self.etag),
            (LAST_MODIFIED, &self.last_modified),
            (DATE, &self.date),
        ] {
            if let Some(v) = v {
                h.insert(name, HeaderValue::from_str(v).expect("generated value"));
            }
        }
        h
    }

    fn response(&self, status: u16) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("status");
        for (name, v) in self.headers().iter() {
            r.append_header(name.clone(), v.clone()).expect("header");
        }
        r
    }
}

/// The precondition fields of a request, each optional.
#[derive(Debug, Clone, Default)]
struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    if_unmodified_since: Option<String>,
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        prop::option::of(tag_list()),
        prop::option::of(tag_list()),
        prop::option::of(date()),
        prop::option::of(date()),
    )
        .prop_map(|(im, inm, ims, ius)| Conditions {
            if_match: im,
            if_none_match: inm,
            if_modified_since: ims,
            if_unmodified_since: ius,
        })
}

impl Conditions {
    fn pairs(&self) -> Vec<(HeaderName, String)> {
        [
            (IF_MATCH, &self.if_match),
            (IF_NONE_MATCH, &self.if_none_match),
            (IF_MODIFIED_SINCE, &self.if_modified_since),
            (IF_UNMODIFIED_SINCE, &self.if_unmodified_since),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n, v)))
        .collect()
    }

    fn headers(&self) -> HeaderMap {
        map(&self.pairs())
    }

    fn request(&self, method: &Method) -> RequestHeader {
        let mut r = RequestHeader::build(method.clone(), b"/", None).expect("request");
        for (n, v) in self.pairs() {
            r.append_header(n, v).expect("header");
        }
        r
    }
}

fn map(pairs: &[(HeaderName, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            n.clone(),
            HeaderValue::from_str(v).expect("generated value"),
        );
    }
    h
}

/// Every method but the two a 304 may answer: the unsafe ones, the other safe ones, and an
/// extension method.
fn other_method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
        Method::from_bytes(b"PURGE").expect("method"),
    ])
}

fn get_or_head() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![Method::GET, Method::HEAD])
}

fn any_method() -> impl Strategy<Value = Method> {
    prop_oneof![get_or_head(), other_method()]
}

fn eval(method: &Method, req: &HeaderMap, stored: &Stored) -> Outcome {
    let resp = stored.headers();
    evaluate(method, req, &Validators::of_stored(&resp))
}

// ---- preconditions (RFC 9110 §13) ----------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// §13.1.2, §15.4.5: 304 answers only GET and HEAD; any other method gets 412 or proceeds.
    #[test]
    fn no_304_for_a_method_other_than_get_or_head(
        method in other_method(),
        c in conditions(),
        s in stored(),
    ) {
        prop_assert_ne!(eval(&method, &c.headers(), &s), Outcome::NotModified);
        let decision = precondition_decision(&c.request(&method), &s.response(200), Origin::Stored)
            .expect("decision");
        prop_assert!(!matches!(decision, Some(Decision::NotModified(_))));
    }

    /// §13.1.2: If-None-Match does not depend on the order of its tags nor on duplicates, nor
    /// on how they are split across field lines.
    #[test]
    fn if_none_match_ignores_order_duplicates_and_lines(
        (tags, shuffled) in prop::collection::vec(tag(), 1..6)
            .prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        duplicated in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        split in any::<prop::sample::Index>(),
        method in any_method(),
        s in stored(),
    ) {
        let one = map(&[(IF_NONE_MATCH, tags.join(", "))]);
        let mut other = shuffled.clone();
        for i in &duplicated {
            other.push(i.get(&shuffled).clone());
        }
        let at = split.index(other.len() + 1);
        let (a, b) = other.split_at(at);
        let mut lines = Vec::new();
        for part in [a, b] {
            if !part.is_empty() {
                lines.push((IF_NONE_MATCH, part.join(",")));
            }
        }
        prop_assert_eq!(eval(&method, &one, &s), eval(&method, &map(&lines), &s));
    }

    /// §13.1.1, §13.1.2: `*` matches any current representation (etagate gives every
    /// representation it serves an entity-tag, so "current representation" is one with a tag).
    #[test]
    fn star_matches_any_current_representation(
        current in tag(),
        lm in prop::option::of(date()),
        method in get_or_head(),
        other in other_method(),
    ) {
        let s = Stored { etag: Some(current), last_modified: lm, date: None };
        let inm = map(&[(IF_NONE_MATCH, "*".to_string())]);
        prop_assert_eq!(eval(&method, &inm, &s), Outcome::NotModified);
        prop_assert_eq!(eval(&other, &inm, &s), Outcome::PreconditionFailed);
        let im = map(&[(IF_MATCH, "*".to_string())]);
        prop_assert_eq!(eval(&method, &im, &s), Outcome::Proceed);
        prop_assert_eq!(eval(&other, &im, &s), Outcome::Proceed);
    }

    /// §8.8.3.2: weak comparison is symmetric, strong comparison is symmetric and implies weak
    /// comparison, and strong comparison never holds for a weak tag.
    #[test]
    fn comparison_functions(a in tag(), b in tag()) {
        let (a, b) = (
            EntityTag::parse(a.as_bytes()).expect("tag"),
            EntityTag::parse(b.as_bytes()).expect("tag"),
        );
        prop_assert_eq!(a.weak_eq(&b), b.weak_eq(&a));
        prop_assert_eq!(a.strong_eq(&b), b.strong_eq(&a));
        prop_assert!(!a.strong_eq(&b) || a.weak_eq(&b));
        prop_assert!(a.weak_eq(&a));
        prop_assert_eq!(a.strong_eq(&a), !a.weak);
    }

    /// §13.1.1: If-Match uses strong comparison, so a list of tags never passes against a weak
    /// validator, and a weak tag in it never matches anything.
    #[test]
    fn if_match_is_strong(
        list in prop::collection::vec(tag(), 1..5),
        current_weak in weak_tag(),
        weak_list in prop::collection::vec(weak_tag(), 1..5),
        current in prop_oneof![strong_tag(), weak_tag()],
        method in any_method(),
        rest in conditions(),
    ) {
        let with_if_match = |list: &[String]| {
            let mut c = rest.clone();
            c.if_match = Some(list.join(", "));
            c.headers()
        };
        let s = Stored { etag: Some(current_weak), last_modified: None, date: None };
        prop_assert_eq!(eval(&method, &with_if_match(&list), &s), Outcome::PreconditionFailed);
        let s = Stored { etag: Some(current), last_modified: None, date: None };
        prop_assert_eq!(eval(&method, &with_if_match(&weak_list), &s), Outcome::PreconditionFailed);
    }

    /// §13.1.3: a recipient ignores If-Modified-Since when the request has If-None-Match.
    #[test]
    fn if_modified_since_is_ignored_beside_if_none_match(
        c in conditions(),
        inm in tag_list(),
        ims in date(),
        method in any_method(),
        s in stored(),
    ) {
        let mut with = c.clone();
        with.if_none_match = Some(inm);
        with.if_modified_since = Some(ims);
        let mut without = with.clone();
        without.if_modified_since = None;
        prop_assert_eq!(eval(&method, &with.headers(), &s), eval(&method, &without.headers(), &s));
    }

    /// §13.2.1: preconditions are not evaluated when the response would not be 2xx: the
    /// response goes out with its own status, never as 304 or 412.
    #[test]
    fn preconditions_are_ignored_for_non_2xx(
        status in prop_oneof![100u16..200, 300u16..600],
        c in conditions(),
        method in any_method(),
        s in stored(),
        from in prop::sample::select(vec![Origin::Stored, Origin::Fetched]),
    ) {
        let req = c.request(&method);
        prop_assert!(precondition_decision(&req, &s.response(status), from)
            .expect("decision")
            .is_none());
        let d = decide(&req, s.response(status), Some(10), from).expect("decision");
        prop_assert_eq!(d.status(), status);
    }
}

// ---- ranges (RFC 9110 §14) -----------------------------------------------------------------

/// A decimal number, often small, sometimes far beyond `usize`.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..40).prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{19,30}",
        1 => "0{1,3}[0-9]{1,3}",
    ]
}

/// A `Range` value: one or several specs, well-formed or not.
fn range_value() -> impl Strategy<Value = String> {
    let spec = prop_oneof![
        (number(), number()).prop_map(|(a, b)| format!("{a}-{b}")),
        number().prop_map(|a| format!("{a}-")),
        number().prop_map(|n| format!("-{n}")),
        "[-0-9a ]{0,6}",
    ];
    (
        prop::sample::select(vec!["bytes=", "bytes= ", "items=", ""]),
        prop::collection::vec(spec, 1..3),
    )
        .prop_map(|(unit, specs)| format!("{unit}{}", specs.join(",")))
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..40, 1 => any::<usize>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// §14.1.2: a served range never addresses bytes outside the representation, and a
    /// satisfiable range is never empty.
    #[test]
    fn ranges_stay_inside_the_representation(value in range_value(), len in length()) {
        if let RangeRequest::Partial(r) = parse_range(value.as_bytes(), len) {
            prop_assert!(r.start < r.end, "empty range {:?}", r);
            prop_assert!(r.end <= len, "{:?} beyond {}", r, len);
        }
    }

    /// §14.1.2: `first-last` selects `first..=min(last, len - 1)` when `first` is inside the
    /// representation and nothing otherwise; `-n` selects the last `n` bytes.
    #[test]
    fn single_ranges_select_what_the_rfc_says(a in 0u64..60, b in 0u64..60, len in 0usize..50) {
        let (a, b) = (a.min(b), a.max(b));
        let got = parse_range(format!("bytes={a}-{b}").as_bytes(), len);
        if (a as usize) < len {
            prop_assert_eq!(got, RangeRequest::Partial(a as usize..(b as usize + 1).min(len)));
        } else {
            prop_assert_eq!(got, RangeRequest::Unsatisfiable);
        }
        let got = parse_range(format!("bytes=-{b}").as_bytes(), len);
        if b > 0 && len > 0 {
            prop_assert_eq!(got, RangeRequest::Partial(len - (b as usize).min(len)..len));
        } else {
            prop_assert_eq!(got, RangeRequest::Unsatisfiable);
        }
    }

    /// The 206 etagate writes: its Content-Range and Content-Length describe bytes that exist.
    #[test]
    fn partial_responses_describe_existing_bytes(value in range_value(), len in 0usize..40) {
        let mut req = RequestHeader::build(Method::GET, b"/", None).expect("request");
        req.append_header(RANGE, value.as_str()).expect("header");
        let resp = ResponseHeader::build(200, None).expect("response");
        match decide(&req, resp, Some(len), Origin::Stored).expect("decision") {
            Decision::Send { header, range: Some(r), .. } => {
                prop_assert_eq!(header.status.as_u16(), 206);
                prop_assert!(r.start < r.end && r.end <= len);
                let cr = header.headers.get(CONTENT_RANGE).expect("content-range");
                let want = format!("bytes {}-{}/{}", r.start, r.end - 1, len);
                prop_assert_eq!(cr.to_str().ok(), Some(want.as_str()));
                let cl = header.headers.get(CONTENT_LENGTH).expect("content-length");
                let n = r.len().to_string();
                prop_assert_eq!(cl.to_str().ok(), Some(n.as_str()));
            }
            Decision::Send { header, range: None, .. } => {
                prop_assert_eq!(header.status.as_u16(), 200);
            }
            Decision::Unsatisfiable(header) => {
                let cr = header.headers.get(CONTENT_RANGE).expect("content-range");
                let want = format!("bytes */{len}");
                prop_assert_eq!(cr.to_str().ok(), Some(want.as_str()));
            }
            other => {
                return Err(TestCaseError::fail(format!("unexpected {}", other.status())));
            }
        }
    }
}

// ---- authority (RFC 3986 §3.2, §6.2) -------------------------------------------------------

/// Something shaped like an authority: a (possibly malformed) host, trailing dots, ports.
fn authority_like() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9_~-]{1,6}|%[0-9a-fA-F]{2}|[!$&'()*+,;=]";
    let reg_name = prop::collection::vec(label, 1..4).prop_map(|l| l.join("."));
    let ipv6 = prop::sample::select(vec![
        "[::1]",
        "[0:0::1]",
        "[::FFFF:1.2.3.4]",
        "[2001:DB8::0:1]",
        "[fe80::1%25eth0]",
        "[]",
        "[v1.x]",
    ])
    .prop_map(str::to_string);
    let host = prop_oneof![3 => reg_name, 1 => ipv6, 1 => Just(String::new())];
    let dots = prop::sample::select(vec!["", "", ".", ".."]);
    let port = prop_oneof![
        3 => Just(String::new()),
        1 => Just(":".to_string()),
        3 => "0{0,2}[0-9]{1,5}".prop_map(|p| format!(":{p}")),
        1 => prop::sample::select(vec![":80", ":443", ":080", ":0443"]).prop_map(str::to_string),
        1 => ("[0-9]{1,4}", "[0-9]{1,4}").prop_map(|(a, b)| format!(":{a}:{b}")),
    ];
    let structured = (host, dots, port).prop_map(|(h, d, p)| format!("{h}{d}{p}"));
    prop_oneof![4 => structured, 1 => "[a-zA-Z0-9.:\\[\\]%@_~-]{0,16}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// §6.2: the canonical form is a fixed point (routing, the cache key and the forwarded
    /// Host agree), and it never carries two ports.
    #[test]
    fn canonical_authorities_are_idempotent_with_one_port(
        raw in authority_like(),
        scheme in prop::sample::select(vec!["http", "https"]),
    ) {
        let Ok(a) = Authority::parse(raw.as_bytes(), scheme) else {
            return Ok(());
        };
        let again = Authority::parse(a.as_str().as_bytes(), scheme);
        prop_assert_eq!(again.as_ref(), Ok(&a), "{:?} -> {}", raw, a);
        let rest = &a.as_str()[a.host().len()..];
        prop_assert!(
            rest.is_empty() || (rest.starts_with(':') && rest[1..].bytes().all(|b| b.is_ascii_digit())),
            "{:?} -> {}", raw, a
        );
        if !a.host().starts_with('[') {
            prop_assert!(!a.host().contains(':'), "{:?} -> {}", raw, a);
        }
    }
}
