//! Conditional requests, evaluated in RFC 9110 §13.2.2 order.
//!
//! Only safe methods reach this evaluator: etagate forwards unsafe methods (PUT, DELETE, ...)
//! with their preconditions untouched, because only the origin knows the current state of the
//! resource it is about to change; answering them from a possibly stale copy would let a lost
//! update through.

use super::date::parse_http_date;
use super::etag::{EntityTag, TagList};
use http::header::{
    HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Method};
use std::time::SystemTime;

/// The precondition fields (RFC 9110 §13.1), answered with 304 or 412.
pub const PRECONDITION_FIELDS: [HeaderName; 4] = [
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
];

/// Every field that makes a request conditional or partial: the preconditions, `Range` and
/// `If-Range` (§14.2, §13.1.5).
pub const CONDITIONAL_FIELDS: [HeaderName; 6] = [
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_RANGE,
    RANGE,
];

/// Whether a request carries any precondition.
pub fn has_preconditions(req: &HeaderMap) -> bool {
    PRECONDITION_FIELDS.iter().any(|h| req.contains_key(h))
}

/// Whether a request is conditional or partial in any way.
pub fn is_conditional(req: &HeaderMap) -> bool {
    CONDITIONAL_FIELDS.iter().any(|h| req.contains_key(h))
}

/// The selected representation's validators.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    pub etag: Option<EntityTag<'a>>,
    pub last_modified: Option<SystemTime>,
    /// For `If-Modified-Since` only, when there is no `Last-Modified`: the stored response's
    /// `Date` (RFC 9111 §4.3.2, for a cache answering from a stored response).
    pub modified_fallback: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    /// Read `ETag` and `Last-Modified` from a response's headers (malformed ones count as
    /// absent).
    pub fn of(headers: &'a HeaderMap) -> Validators<'a> {
        Validators {
            etag: headers
                .get(http::header::ETAG)
                .and_then(|v| EntityTag::parse(v.as_bytes())),
            last_modified: headers
                .get(http::header::LAST_MODIFIED)
                .and_then(|v| parse_http_date(v.as_bytes())),
            modified_fallback: None,
        }
    }

    /// Validators of a stored response: `Date` stands in for a missing `Last-Modified` when
    /// judging `If-Modified-Since`.
    pub fn of_stored(headers: &'a HeaderMap) -> Validators<'a> {
        let mut v = Validators::of(headers);
        if v.last_modified.is_none() {
            v.modified_fallback = headers
                .get(http::header::DATE)
                .and_then(|d| parse_http_date(d.as_bytes()));
        }
        v
    }
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the selected representation (200, or 206 when a Range applies).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

fn single_date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<SystemTime> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        // more than one field line: not a valid HTTP-date
        return None;
    }
    parse_http_date(first.as_bytes())
}

/// Evaluate the preconditions of a GET or HEAD request against a 2xx response's validators.
///
/// RFC 9110 §13.2.1: preconditions are ignored when the response would not be 2xx, so callers
/// pass only 2xx responses here.
pub fn evaluate(method: &Method, req: &HeaderMap, v: &Validators<'_>) -> Outcome {
    let get_or_head = method == Method::GET || method == Method::HEAD;

    // Step 1: If-Match (strong comparison).
    if req.contains_key(IF_MATCH) {
        let list = TagList::parse(req.get_all(IF_MATCH).iter().map(|h| h.as_bytes()));
        if !list.matches_strong(v.etag.as_ref()) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(ius) = single_date(req, IF_UNMODIFIED_SINCE) {
        // Step 2: If-Unmodified-Since, only without If-Match, ignored without Last-Modified.
        if let Some(lm) = v.last_modified {
            if lm > ius {
                return Outcome::PreconditionFailed;
            }
        }
    }

    // Step 3: If-None-Match (weak comparison).
    if req.contains_key(IF_NONE_MATCH) {
        let list = TagList::parse(req.get_all(IF_NONE_MATCH).iter().map(|h| h.as_bytes()));
        if list.matches_weak(v.etag.as_ref()) {
            return if get_or_head {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
        return Outcome::Proceed;
    }

    // Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match; invalid dates and
    // representations without a modification date mean it is ignored.
    if get_or_head {
        let lm = v.last_modified.or(v.modified_fallback);
        if let (Some(ims), Some(lm)) = (single_date(req, IF_MODIFIED_SINCE), lm) {
            if lm <= ims {
                return Outcome::NotModified;
            }
        }
    }
    Outcome::Proceed
}

/// RFC 9110 §13.1.5: whether a `Range` may be honoured. `true` without `If-Range`. With it,
/// an entity-tag must match the current one by strong comparison; a date must equal
/// `Last-Modified` exactly (a date validator is only trusted when it is strong, and an exact
/// match is the only comparison the RFC allows).
pub fn if_range_allows(req: &HeaderMap, v: &Validators<'_>) -> bool {
    let Some(ir) = req.get(IF_RANGE) else {
        return true;
    };
    let raw = ir.as_bytes();
    if let Some(tag) = EntityTag::parse(raw) {
        return v.etag.is_some_and(|cur| cur.strong_eq(&tag));
    }
    match (parse_http_date(raw), v.last_modified) {
        (Some(d), Some(lm)) => d == lm,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn validators<'a>(etag: Option<&'a str>, lm: Option<&str>) -> Validators<'a> {
        Validators {
            etag: etag.and_then(|e| EntityTag::parse(e.as_bytes())),
            last_modified: lm.and_then(|d| parse_http_date(d.as_bytes())),
            modified_fallback: None,
        }
    }

    fn eval(
        method: Method,
        pairs: &[(&str, &str)],
        etag: Option<&str>,
        lm: Option<&str>,
    ) -> Outcome {
        evaluate(&method, &req(pairs), &validators(etag, lm))
    }

    use Outcome::*;

    type Case<'a> = (
        &'a str,
        Method,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        Option<&'a str>,
        Outcome,
    );

    #[test]
    fn rfc_cases_table() {
        let e = Some("\"abc\"");
        let w = Some("W/\"abc\"");
        let lm = Some(LM);
        let g = Method::GET;
        let cases: Vec<Case> = vec![
            ("no preconditions", g.clone(), vec![], e, lm, Proceed),
            (
                "If-Match matches strong",
                g.clone(),
                vec![("if-match", "\"abc\"")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Match fails",
                g.clone(),
                vec![("if-match", "\"xyz\"")],
                e,
                lm,
                PreconditionFailed,
            ),
            (
                "If-Match against a weak tag fails",
                g.clone(),
                vec![("if-match", "W/\"abc\"")],
                w,
                lm,
                PreconditionFailed,
            ),
            (
                "If-Match * with a representation",
                g.clone(),
                vec![("if-match", "*")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Match list",
                g.clone(),
                vec![("if-match", "\"x\", \"abc\"")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Match without a current tag",
                g.clone(),
                vec![("if-match", "\"abc\"")],
                None,
                lm,
                PreconditionFailed,
            ),
            (
                "If-Unmodified-Since after LM",
                g.clone(),
                vec![("if-unmodified-since", AFTER)],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Unmodified-Since equal",
                g.clone(),
                vec![("if-unmodified-since", LM)],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Unmodified-Since before LM",
                g.clone(),
                vec![("if-unmodified-since", BEFORE)],
                e,
                lm,
                PreconditionFailed,
            ),
            (
                "If-Unmodified-Since ignored with If-Match",
                g.clone(),
                vec![("if-match", "\"abc\""), ("if-unmodified-since", BEFORE)],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Unmodified-Since ignored without LM",
                g.clone(),
                vec![("if-unmodified-since", BEFORE)],
                e,
                None,
                Proceed,
            ),
            (
                "If-Unmodified-Since invalid is ignored",
                g.clone(),
                vec![("if-unmodified-since", "yesterday")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-None-Match weak match",
                g.clone(),
                vec![("if-none-match", "W/\"abc\"")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-None-Match on a weak current tag",
                g.clone(),
                vec![("if-none-match", "\"abc\"")],
                w,
                lm,
                NotModified,
            ),
            (
                "If-None-Match list, last member",
                g.clone(),
                vec![("if-none-match", "\"1\", \"2\", \"abc\"")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-None-Match no match",
                g.clone(),
                vec![("if-none-match", "\"xyz\"")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-None-Match *",
                g.clone(),
                vec![("if-none-match", "*")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-None-Match * without a tag still matches a representation",
                g.clone(),
                vec![("if-none-match", "*")],
                e,
                None,
                NotModified,
            ),
            (
                "If-None-Match on HEAD",
                Method::HEAD,
                vec![("if-none-match", "\"abc\"")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-None-Match malformed matches nothing",
                g.clone(),
                vec![("if-none-match", "abc")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-None-Match beats If-Modified-Since",
                g.clone(),
                vec![("if-none-match", "\"abc\""), ("if-modified-since", BEFORE)],
                e,
                lm,
                NotModified,
            ),
            (
                "If-None-Match miss ignores If-Modified-Since",
                g.clone(),
                vec![("if-none-match", "\"x\""), ("if-modified-since", AFTER)],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Modified-Since equal",
                g.clone(),
                vec![("if-modified-since", LM)],
                e,
                lm,
                NotModified,
            ),
            (
                "If-Modified-Since later",
                g.clone(),
                vec![("if-modified-since", AFTER)],
                e,
                lm,
                NotModified,
            ),
            (
                "If-Modified-Since earlier",
                g.clone(),
                vec![("if-modified-since", BEFORE)],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Modified-Since RFC 850",
                g.clone(),
                vec![("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-Modified-Since asctime",
                g.clone(),
                vec![("if-modified-since", "Sun Nov  6 08:49:37 1994")],
                e,
                lm,
                NotModified,
            ),
            (
                "If-Modified-Since invalid is ignored",
                g.clone(),
                vec![("if-modified-since", "garbage")],
                e,
                lm,
                Proceed,
            ),
            (
                "If-Modified-Since without LM is ignored",
                g.clone(),
                vec![("if-modified-since", AFTER)],
                e,
                None,
                Proceed,
            ),
            (
                "If-Match fails before If-None-Match matches",
                g.clone(),
                vec![("if-match", "\"x\""), ("if-none-match", "\"abc\"")],
                e,
                lm,
                PreconditionFailed,
            ),
        ];
        for (name, m, pairs, etag, lm, want) in cases {
            assert_eq!(eval(m, &pairs, etag, lm), want, "{name}");
        }
    }

    #[test]
    fn if_none_match_on_other_methods_is_a_412() {
        assert_eq!(
            eval(
                Method::OPTIONS,
                &[("if-none-match", "\"abc\"")],
                Some("\"abc\""),
                None
            ),
            PreconditionFailed
        );
        assert_eq!(
            eval(
                Method::OPTIONS,
                &[("if-modified-since", LM)],
                Some("\"abc\""),
                Some(LM)
            ),
            Proceed,
            "If-Modified-Since applies to GET and HEAD only"
        );
    }

    #[test]
    fn if_range_needs_a_strong_match_or_an_exact_date() {
        let v = validators(Some("\"abc\""), Some(LM));
        assert!(if_range_allows(&req(&[]), &v));
        assert!(if_range_allows(&req(&[("if-range", "\"abc\"")]), &v));
        assert!(!if_range_allows(&req(&[("if-range", "W/\"abc\"")]), &v));
        assert!(!if_range_allows(&req(&[("if-range", "\"xyz\"")]), &v));
        assert!(if_range_allows(&req(&[("if-range", LM)]), &v));
        assert!(!if_range_allows(&req(&[("if-range", AFTER)]), &v));
        let weak = validators(Some("W/\"abc\""), None);
        assert!(!if_range_allows(&req(&[("if-range", "W/\"abc\"")]), &weak));
        let _ = UNIX_EPOCH + Duration::from_secs(1);
    }
}
