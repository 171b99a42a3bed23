//! Whether a shared cache may store an origin response, and with which [`Freshness`]
//! (RFC 9111 §3, with the lifetime and age rules of §4.2.1–§4.2.3 and the directives of §5.2.2;
//! Edge Architecture 1.0's `Surrogate-Control`).
//!
//! Decided once per origin response (and again for the header a 304 revalidation leaves): every
//! later use of the stored copy reads the [`Freshness`] fixed here, never these headers again.
//! Whether that copy may answer a given request is [`super::usability`]'s question.

use super::cache_control::{Delta, RequestDirectives, SurrogateDirectives};
use super::date::parse_http_date;
use super::etag::is_content_etag;
use super::freshness::Freshness;
use super::targeted::{self, Targets};
use super::vary::VarySpec;
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE,
};
use http::{HeaderMap, Method};
use std::time::{Duration, SystemTime};

/// The device name etagate answers to in `Surrogate-Control` targets, and announces in
/// `Surrogate-Capability`.
pub const SURROGATE_DEVICE: &str = "etagate";

/// Heuristic freshness is this fraction of the time since `Last-Modified` (RFC 9111 §4.2.2
/// suggests 10%)...
const HEURISTIC_FRACTION: u32 = 10;
/// ...and never more than a day, so a file untouched for years is still rechecked daily.
const HEURISTIC_MAX: Duration = Duration::from_secs(86_400);

/// Status codes that RFC 9110 §15.1 makes heuristically cacheable.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes etagate understands (defined by RFC 9110 and its registry), for
/// `must-understand` (RFC 9111 §5.2.2.3).
pub fn understood(status: u16) -> bool {
    matches!(
        status,
        200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451 | 500..=508 | 510 | 511
    )
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    RequestNoStore,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    MustUnderstand,
    NoFreshness,
    StaleWithoutValidator,
}

impl NotStored {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::RequestNoStore => "request no-store",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryStar => "vary *",
            NotStored::MustUnderstand => "must-understand",
            NotStored::NoFreshness => "no freshness information",
            NotStored::StaleWithoutValidator => "stale and no validator",
        }
    }
}

/// Storage choices of the route and the process.
#[derive(Debug, Clone, Copy)]
pub struct StorePolicy<'a> {
    /// Store responses that carry `Set-Cookie`.
    pub store_set_cookie: bool,
    /// The targeted fields (RFC 9213) that override `Cache-Control` and `Expires` here.
    pub targets: &'a Targets,
}

/// The moments a response was requested and received.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

fn single_line(h: &HeaderMap, name: http::header::HeaderName) -> Option<&[u8]> {
    let mut it = h.get_all(name).iter();
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(first.as_bytes())
}

/// `Age` (RFC 9111 §5.1) as the public suite's current version reads it (issue #14; 0.4.5
/// read it otherwise, `docs/conformance/README.md`): with several values, on one line as a
/// list or on several lines, the first one counts; a first value that is not a non-negative
/// integer (`abc`, `-7200`, `7200.0`, `7200;foo=bar`) is ignored as if the field were absent
/// (§1.2.2: a recipient that cannot parse a delta-seconds ignores it); 2^31 or more counts as
/// 2147483648 (§1.2.2).
fn age_value(h: &HeaderMap) -> Duration {
    let Some(line) = h.get_all(AGE).iter().next() else {
        return Duration::ZERO;
    };
    let first = line
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    match super::cache_control::delta_seconds(Some(first)) {
        Delta::Seconds(s) => Duration::from_secs(s.into()),
        Delta::Invalid => Duration::ZERO,
    }
}

/// RFC 9111 §4.2.3 corrected initial age.
pub fn initial_age(h: &HeaderMap, ex: &Exchange) -> Duration {
    let age = age_value(h);
    let date = single_line(h, DATE)
        .and_then(parse_http_date)
        .unwrap_or(ex.response_time);
    let apparent = ex.response_time.duration_since(date).unwrap_or_default();
    let delay = ex
        .response_time
        .duration_since(ex.request_time)
        .unwrap_or_default();
    apparent.max(age.saturating_add(delay))
}

/// Whether the response carries a validator the origin itself issued.
pub fn has_origin_validator(h: &HeaderMap) -> bool {
    h.get(LAST_MODIFIED).is_some() || h.get(ETAG).is_some_and(|e| !is_content_etag(e.as_bytes()))
}

/// Decide whether a shared cache may store a response to a GET, and with what freshness.
pub fn assess(
    method: &Method,
    req: &HeaderMap,
    status: u16,
    resp: &HeaderMap,
    ex: &Exchange,
    policy: &StorePolicy,
) -> Result<Freshness, NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    // A 304 or a 206 is not a complete response, and interim 1xx responses are not responses
    // to store at all.
    if !(200..=599).contains(&status) || status == 206 || status == 304 {
        return Err(NotStored::Status);
    }
    let reqd = RequestDirectives::parse(req.get_all(CACHE_CONTROL));
    if reqd.no_store {
        return Err(NotStored::RequestNoStore);
    }
    // RFC 9213 §2.2: a valid targeted field replaces Cache-Control and Expires for this cache.
    let (cc, targeted) = targeted::effective(resp, policy.targets);
    let sc = SurrogateDirectives::parse(resp.get_all("surrogate-control"), SURROGATE_DEVICE);
    // Surrogate-Control addressed to this cache overrides Cache-Control for it. An invalid
    // max-age says nothing, so it cannot lift Cache-Control's `private` or `no-store`.
    let surrogate_lifetime = sc.max_age.filter(|d| *d != Delta::Invalid);
    if sc.no_store {
        return Err(NotStored::NoStore);
    }
    if surrogate_lifetime.is_none() {
        if cc.must_understand {
            // `no-store` beside `must-understand` is only the fallback for caches that do not
            // know the status (RFC 9111 §5.2.2.3), so a known status may be stored regardless.
            if !understood(status) {
                return Err(NotStored::MustUnderstand);
            }
        } else if cc.no_store {
            return Err(NotStored::NoStore);
        }
        if cc.private {
            return Err(NotStored::Private);
        }
    }
    // An authenticated response is stored only when the origin says a shared cache may
    // (RFC 9111 §3.5).
    if req.contains_key(AUTHORIZATION)
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStored::Authorization);
    }
    if resp.contains_key(SET_COOKIE) && !policy.store_set_cookie {
        return Err(NotStored::SetCookie);
    }
    if VarySpec::of(resp) == VarySpec::Star {
        return Err(NotStored::VaryStar);
    }
    let has_expires = !targeted && resp.contains_key(EXPIRES);
    let explicit = surrogate_lifetime.is_some()
        || cc.s_maxage.is_some()
        || cc.max_age.is_some()
        || has_expires;
    let heuristic_allowed = heuristically_cacheable(status) || cc.public;
    if !explicit && !heuristic_allowed && !cc.no_cache {
        return Err(NotStored::NoFreshness);
    }

    let date = single_line(resp, DATE)
        .and_then(parse_http_date)
        .unwrap_or(ex.response_time);
    let seconds = |d: Delta| match d {
        Delta::Seconds(s) => Duration::from_secs(s.into()),
        Delta::Invalid => Duration::ZERO,
    };
    let mut heuristic = false;
    let lifetime = if let Some(d) = surrogate_lifetime {
        seconds(d)
    } else if cc.no_cache {
        Duration::ZERO
    } else if let Some(d) = cc.s_maxage {
        seconds(d)
    } else if let Some(d) = cc.max_age {
        seconds(d)
    } else if has_expires {
        match single_line(resp, EXPIRES).and_then(parse_http_date) {
            Some(exp) => exp.duration_since(date).unwrap_or_default(),
            // an invalid Expires means "already expired" (RFC 9111 §5.3)
            None => Duration::ZERO,
        }
    } else {
        match single_line(resp, LAST_MODIFIED).and_then(parse_http_date) {
            Some(lm) if heuristic_allowed => {
                heuristic = true;
                (date.duration_since(lm).unwrap_or_default() / HEURISTIC_FRACTION)
                    .min(HEURISTIC_MAX)
            }
            _ => Duration::ZERO,
        }
    };
    let initial_age = initial_age(resp, ex);
    let f = Freshness {
        lifetime,
        initial_age,
        response_time: ex.response_time,
        no_cache: cc.no_cache && surrogate_lifetime.is_none(),
        forbids_stale: surrogate_lifetime.is_none() && cc.forbids_stale(),
        immutable: cc.immutable,
        stale_while_revalidate: Duration::from_secs(cc.stale_while_revalidate.unwrap_or(0).into()),
        stale_if_error: Duration::from_secs(cc.stale_if_error.unwrap_or(0).into()),
        heuristic,
        invalidated: false,
    };
    // Stale on arrival, with no validator to revalidate it and no window to serve it stale:
    // every later request would fetch it again, so storing it only evicts something useful.
    let useful_later = f.is_fresh(ex.response_time)
        || has_origin_validator(resp)
        || !f.stale_if_error.is_zero()
        || !f.stale_while_revalidate.is_zero();
    if !useful_later {
        return Err(NotStored::StaleWithoutValidator);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::fmt_http_date;
    use crate::http::testing::headers;

    /// The moment every response in these cases arrives, so expectations are exact.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    // HTTP-dates around `t0()`, spelled out so that cases can be `&'static` tables
    // (`case_dates_are_the_instants_they_name` checks each against `t0()`).
    const T0: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const T0_MINUS_365D: &str = "Mon, 14 Nov 2022 22:13:20 GMT";
    const T0_MINUS_1D: &str = "Mon, 13 Nov 2023 22:13:20 GMT";
    const T0_MINUS_10S: &str = "Tue, 14 Nov 2023 22:13:10 GMT";
    const T0_MINUS_5S: &str = "Tue, 14 Nov 2023 22:13:15 GMT";
    const T0_PLUS_10S: &str = "Tue, 14 Nov 2023 22:13:30 GMT";
    const T0_PLUS_60S: &str = "Tue, 14 Nov 2023 22:14:20 GMT";
    const T0_PLUS_300S: &str = "Tue, 14 Nov 2023 22:18:20 GMT";
    const T0_PLUS_400S: &str = "Tue, 14 Nov 2023 22:20:00 GMT";

    /// A tag in etagate's own content-ETag format: etagate made it, the origin cannot validate it.
    const CONTENT_ETAG: &str = "\"b3-5Hd2Lx7mQ0aNf3d2Ybv4Sg\"";

    #[test]
    fn case_dates_are_the_instants_they_name() {
        let at = |offset: i64| {
            let d = Duration::from_secs(offset.unsigned_abs());
            fmt_http_date(if offset >= 0 { t0() + d } else { t0() - d })
        };
        for (name, text, offset) in [
            ("T0", T0, 0),
            ("T0_MINUS_365D", T0_MINUS_365D, -365 * 86_400),
            ("T0_MINUS_1D", T0_MINUS_1D, -86_400),
            ("T0_MINUS_10S", T0_MINUS_10S, -10),
            ("T0_MINUS_5S", T0_MINUS_5S, -5),
            ("T0_PLUS_10S", T0_PLUS_10S, 10),
            ("T0_PLUS_60S", T0_PLUS_60S, 60),
            ("T0_PLUS_300S", T0_PLUS_300S, 300),
            ("T0_PLUS_400S", T0_PLUS_400S, 400),
        ] {
            assert_eq!(text, at(offset), "{name}");
        }
        assert!(is_content_etag(CONTENT_ETAG.as_bytes()), "CONTENT_ETAG");
    }

    /// One exchange with the origin.
    struct Given {
        method: Method,
        req: &'static [(&'static str, &'static str)],
        status: u16,
        resp: &'static [(&'static str, &'static str)],
        /// Seconds between sending the request and `t0()`, when the response arrives.
        delay: u64,
        store_set_cookie: bool,
    }

    /// A plain GET answered with 200 at once; cases override what they are about.
    const GET_200: Given = Given {
        method: Method::GET,
        req: &[],
        status: 200,
        resp: &[],
        delay: 0,
        store_set_cookie: false,
    };

    struct Case {
        name: &'static str,
        given: Given,
        expect: Result<Freshness, NotStored>,
    }

    fn run(cases: &[Case]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                let g = &c.given;
                let got = assess(
                    &g.method,
                    &headers(g.req),
                    g.status,
                    &headers(g.resp),
                    &Exchange {
                        request_time: t0() - Duration::from_secs(g.delay),
                        response_time: t0(),
                    },
                    &StorePolicy {
                        store_set_cookie: g.store_set_cookie,
                        targets: &Targets::default(),
                    },
                );
                (got != c.expect)
                    .then(|| format!("{}:\n   got {got:?}\n  want {:?}", c.name, c.expect))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Stored with `lifetime` seconds, received at `t0()` with no `Age`, no directives.
    fn stored(lifetime: u64) -> Freshness {
        Freshness::plain(secs(lifetime), t0())
    }

    /// RFC 9213 §2.2: the first valid targeted field replaces `Cache-Control` and `Expires`
    /// for this cache (the public suite's `cdn-*` cases); an invalid one changes nothing.
    #[test]
    fn targeted_fields_override_cache_control_and_expires() {
        run(&[
            Case {
                name: "CDN-Cache-Control max-age stores what Cache-Control no-store forbids",
                given: Given {
                    resp: &[
                        ("cache-control", "no-store"),
                        ("cdn-cache-control", "max-age=10000"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(10000)),
            },
            Case {
                name: "a short CDN-Cache-Control max-age wins over a long Cache-Control one",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=3600"),
                        ("cdn-cache-control", "max-age=1"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(1)),
            },
            Case {
                name: "CDN-Cache-Control no-store forbids what Cache-Control and Expires allow",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=10000"),
                        ("cdn-cache-control", "no-store"),
                        ("expires", T0_PLUS_300S),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "CDN-Cache-Control private forbids it too",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=10000"),
                        ("cdn-cache-control", "private"),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::Private),
            },
            Case {
                name: "a past Expires is ignored beside a CDN-Cache-Control max-age",
                given: Given {
                    resp: &[
                        ("cdn-cache-control", "max-age=3600"),
                        ("expires", T0_MINUS_1D),
                        ("date", T0),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(3600)),
            },
            Case {
                name: "an invalid CDN-Cache-Control is ignored whole: Cache-Control no-store holds",
                given: Given {
                    resp: &[
                        ("cdn-cache-control", "max-age=10000, &&&&&"),
                        ("cache-control", "no-store"),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "etagate's own field comes before CDN-Cache-Control",
                given: Given {
                    resp: &[
                        ("cdn-cache-control", "no-store"),
                        ("etagate-cache-control", "max-age=60"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "an authenticated request's response needs public or s-maxage in the field",
                given: Given {
                    req: &[("authorization", "Bearer x")],
                    resp: &[
                        ("cache-control", "public, max-age=60"),
                        ("cdn-cache-control", "max-age=60"),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::Authorization),
            },
        ]);
    }

    #[test]
    fn refusals_and_their_exceptions() {
        run(&[
            Case {
                name: "only a GET response is stored (a HEAD was already turned into a GET)",
                given: Given {
                    method: Method::HEAD,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Method),
            },
            Case {
                name: "a POST response is not stored, even with explicit freshness",
                given: Given {
                    method: Method::POST,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Method),
            },
            Case {
                name: "the method is judged before the status",
                given: Given {
                    method: Method::HEAD,
                    status: 206,
                    ..GET_200
                },
                expect: Err(NotStored::Method),
            },
            Case {
                name: "a 206 partial response is not stored",
                given: Given {
                    status: 206,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Status),
            },
            Case {
                name: "a 304 is not a complete response: not stored (it is merged instead)",
                given: Given {
                    status: 304,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Status),
            },
            Case {
                name: "an interim 1xx response is not stored",
                given: Given {
                    status: 103,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Status),
            },
            Case {
                name: "a status above 599 is not stored",
                given: Given {
                    status: 600,
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Status),
            },
            Case {
                name: "request no-store forbids storing the response (RFC 9111 §5.2.1.5)",
                given: Given {
                    req: &[("cache-control", "no-store")],
                    resp: &[("cache-control", "max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::RequestNoStore),
            },
            Case {
                name: "response no-store forbids storing, directive names case-insensitive \
                       (RFC 9111 §5.2.2.5)",
                given: Given {
                    resp: &[("cache-control", "No-StOrE, max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "private forbids a shared cache to store (RFC 9111 §5.2.2.7)",
                given: Given {
                    resp: &[("cache-control", "private, max-age=10")],
                    ..GET_200
                },
                expect: Err(NotStored::Private),
            },
            Case {
                name: "must-understand with a status etagate does not know refuses \
                       (RFC 9111 §5.2.2.3)",
                given: Given {
                    status: 599,
                    resp: &[("cache-control", "max-age=3600, must-understand")],
                    ..GET_200
                },
                expect: Err(NotStored::MustUnderstand),
            },
            Case {
                name: "must-understand with a known status overrides no-store (RFC 9111 §5.2.2.3)",
                given: Given {
                    resp: &[("cache-control", "max-age=3600, no-store, must-understand")],
                    ..GET_200
                },
                expect: Ok(stored(3600)),
            },
            Case {
                name: "must-understand does not override private",
                given: Given {
                    resp: &[("cache-control", "max-age=10, private, must-understand")],
                    ..GET_200
                },
                expect: Err(NotStored::Private),
            },
            Case {
                name: "a Vary member * can never match a later request (RFC 9111 §4.1)",
                given: Given {
                    resp: &[("cache-control", "max-age=10"), ("vary", "foo, *")],
                    ..GET_200
                },
                expect: Err(NotStored::VaryStar),
            },
            Case {
                name: "a Vary naming header fields is storable",
                given: Given {
                    resp: &[("cache-control", "max-age=10"), ("vary", "accept-encoding")],
                    ..GET_200
                },
                expect: Ok(stored(10)),
            },
            Case {
                name: "Set-Cookie is not stored by default",
                given: Given {
                    resp: &[("cache-control", "max-age=10"), ("set-cookie", "a=b")],
                    ..GET_200
                },
                expect: Err(NotStored::SetCookie),
            },
            Case {
                name: "Set-Cookie is stored when the route allows it",
                given: Given {
                    resp: &[("cache-control", "max-age=10"), ("set-cookie", "a=b")],
                    store_set_cookie: true,
                    ..GET_200
                },
                expect: Ok(stored(10)),
            },
            Case {
                name: "201 is not heuristically cacheable: Last-Modified alone gives no \
                       freshness (RFC 9111 §4.2.2)",
                given: Given {
                    status: 201,
                    resp: &[("last-modified", T0_MINUS_1D)],
                    ..GET_200
                },
                expect: Err(NotStored::NoFreshness),
            },
            Case {
                name: "302 is not heuristically cacheable (RFC 9110 §15.1)",
                given: Given {
                    status: 302,
                    resp: &[("last-modified", T0_MINUS_1D)],
                    ..GET_200
                },
                expect: Err(NotStored::NoFreshness),
            },
            Case {
                name: "an unknown status with Last-Modified and no public has no freshness",
                given: Given {
                    status: 599,
                    resp: &[("last-modified", T0_MINUS_1D)],
                    ..GET_200
                },
                expect: Err(NotStored::NoFreshness),
            },
        ]);
    }

    #[test]
    fn authorization() {
        const AUTH: &[(&str, &str)] = &[("authorization", "FOO")];
        run(&[
            Case {
                name: "an authenticated response with only max-age is not stored \
                       (RFC 9111 §3.5)",
                given: Given {
                    req: AUTH,
                    resp: &[("cache-control", "max-age=3600")],
                    ..GET_200
                },
                expect: Err(NotStored::Authorization),
            },
            Case {
                name: "public lets an authenticated response be stored (RFC 9111 §3.5)",
                given: Given {
                    req: AUTH,
                    resp: &[("cache-control", "max-age=3600, public")],
                    ..GET_200
                },
                expect: Ok(stored(3600)),
            },
            Case {
                name: "must-revalidate lets an authenticated response be stored \
                       (RFC 9111 §3.5)",
                given: Given {
                    req: AUTH,
                    resp: &[("cache-control", "max-age=3600, must-revalidate")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(3600)
                }),
            },
            Case {
                name: "s-maxage lets an authenticated response be stored (RFC 9111 §3.5)",
                given: Given {
                    req: AUTH,
                    resp: &[("cache-control", "s-maxage=3600")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(3600)
                }),
            },
            Case {
                name: "proxy-revalidate is not among the directives that admit Authorization",
                given: Given {
                    req: AUTH,
                    resp: &[("cache-control", "max-age=3600, proxy-revalidate")],
                    ..GET_200
                },
                expect: Err(NotStored::Authorization),
            },
            Case {
                name: "a Surrogate-Control lifetime does not admit Authorization",
                given: Given {
                    req: AUTH,
                    resp: &[("surrogate-control", "max-age=3600")],
                    ..GET_200
                },
                expect: Err(NotStored::Authorization),
            },
        ]);
    }

    #[test]
    fn surrogate_control() {
        run(&[
            Case {
                name: "Surrogate-Control no-store overrides Cache-Control max-age",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=3600"),
                        ("surrogate-control", "no-store"),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "Surrogate-Control no-store wins over its own max-age",
                given: Given {
                    resp: &[("surrogate-control", "max-age=60, no-store")],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "Surrogate-Control no-store targeted at another device is ignored",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=60"),
                        ("surrogate-control", "no-store;other"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "Surrogate-Control max-age targeted at etagate makes Cache-Control \
                       no-store storable",
                given: Given {
                    resp: &[
                        ("cache-control", "no-store"),
                        ("surrogate-control", "max-age=10000;etagate"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(10000)),
            },
            Case {
                name: "Surrogate-Control max-age targeted at another device is ignored",
                given: Given {
                    resp: &[
                        ("cache-control", "no-store"),
                        ("surrogate-control", "max-age=10000;other"),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::NoStore),
            },
            Case {
                name: "Surrogate-Control max-age overrides private",
                given: Given {
                    resp: &[
                        ("cache-control", "private"),
                        ("surrogate-control", "max-age=60"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "Surrogate-Control max-age skips the must-understand status check",
                given: Given {
                    status: 599,
                    resp: &[
                        ("cache-control", "max-age=10, must-understand"),
                        ("surrogate-control", "max-age=60"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "Surrogate-Control max-age beats Cache-Control max-age",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("cache-control", "max-age=1"),
                        ("surrogate-control", "max-age=3600"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(3600)),
            },
            Case {
                name: "Surrogate-Control max-age beats s-maxage and lifts its ban on \
                       serving stale",
                given: Given {
                    resp: &[
                        ("cache-control", "s-maxage=1"),
                        ("surrogate-control", "max-age=3600"),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(3600)),
            },
            Case {
                name: "Surrogate-Control max-age clears no-cache and must-revalidate, keeps \
                       stale windows and immutable",
                given: Given {
                    resp: &[
                        (
                            "cache-control",
                            "no-cache, must-revalidate, immutable, stale-if-error=5",
                        ),
                        ("surrogate-control", "max-age=60"),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    immutable: true,
                    stale_if_error: secs(5),
                    ..stored(60)
                }),
            },
            Case {
                name: "an invalid Surrogate-Control max-age is ignored: it cannot make a \
                       private response shared",
                given: Given {
                    resp: &[
                        ("cache-control", "private"),
                        ("surrogate-control", "max-age=abc"),
                        ("etag", "\"v\""),
                    ],
                    ..GET_200
                },
                expect: Err(NotStored::Private),
            },
        ]);
    }

    #[test]
    fn lifetime() {
        run(&[
            Case {
                name: "s-maxage beats max-age in a shared cache and forbids serving stale \
                       (RFC 9111 §5.2.2.10)",
                given: Given {
                    resp: &[("date", T0), ("cache-control", "max-age=3600, s-maxage=1")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(1)
                }),
            },
            Case {
                name: "max-age beats Expires (RFC 9111 §5.3)",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("cache-control", "max-age=60"),
                        ("expires", T0_PLUS_300S),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "max-age makes a status that is not heuristically cacheable storable",
                given: Given {
                    status: 201,
                    resp: &[("cache-control", "max-age=60")],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            Case {
                name: "Expires makes a status that is not heuristically cacheable storable",
                given: Given {
                    status: 201,
                    resp: &[("date", T0), ("expires", T0_PLUS_300S)],
                    ..GET_200
                },
                expect: Ok(stored(300)),
            },
            Case {
                name: "an invalid max-age is stale at once (RFC 9111 §4.2.1), kept for its ETag",
                given: Given {
                    resp: &[("cache-control", "max-age=1.5"), ("etag", "\"v\"")],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "an invalid s-maxage is stale at once; max-age does not stand in for it",
                given: Given {
                    resp: &[
                        ("cache-control", "s-maxage=abc, max-age=60"),
                        ("etag", "\"v\""),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(0)
                }),
            },
            Case {
                name: "Expires counts from Date (RFC 9111 §4.2.1)",
                given: Given {
                    resp: &[("date", T0), ("expires", T0_PLUS_300S)],
                    ..GET_200
                },
                expect: Ok(stored(300)),
            },
            Case {
                name: "Expires counts from Date, not from now: Expires before Date is no \
                       freshness",
                given: Given {
                    resp: &[
                        ("date", T0_PLUS_400S),
                        ("expires", T0_PLUS_300S),
                        ("last-modified", T0_MINUS_5S),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "Expires equal to Date is stale at once, kept for its ETag",
                given: Given {
                    resp: &[("date", T0), ("expires", T0), ("etag", "\"x\"")],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "an invalid Date falls back to the response time",
                given: Given {
                    resp: &[("date", "foo"), ("expires", T0_PLUS_10S)],
                    ..GET_200
                },
                expect: Ok(stored(10)),
            },
            Case {
                name: "two Date lines are invalid: the response time stands in, no apparent age",
                given: Given {
                    resp: &[
                        ("date", T0_MINUS_10S),
                        ("date", T0_MINUS_10S),
                        ("expires", T0_PLUS_10S),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(10)),
            },
            Case {
                name: "an invalid Expires means already expired (RFC 9111 §5.3)",
                given: Given {
                    resp: &[("date", T0), ("expires", "0"), ("etag", "\"v\"")],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "two Expires lines are invalid, hence already expired (RFC 9111 §5.3)",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("expires", T0_PLUS_300S),
                        ("expires", T0_PLUS_300S),
                        ("etag", "\"v\""),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "heuristic lifetime is 10% of Date minus Last-Modified (RFC 9111 §4.2.2)",
                given: Given {
                    resp: &[("date", T0), ("last-modified", T0_MINUS_1D)],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    heuristic: true,
                    ..stored(8640)
                }),
            },
            Case {
                name: "heuristic lifetime is capped at one day",
                given: Given {
                    resp: &[("date", T0), ("last-modified", T0_MINUS_365D)],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    heuristic: true,
                    ..stored(86_400)
                }),
            },
            Case {
                name: "404 is heuristically cacheable (RFC 9110 §15.1)",
                given: Given {
                    status: 404,
                    resp: &[("date", T0), ("last-modified", T0_MINUS_1D)],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    heuristic: true,
                    ..stored(8640)
                }),
            },
            Case {
                name: "public allows a heuristic lifetime for any status (RFC 9111 §4.2.2)",
                given: Given {
                    status: 599,
                    resp: &[
                        ("date", T0),
                        ("last-modified", T0_MINUS_1D),
                        ("cache-control", "public"),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    heuristic: true,
                    ..stored(8640)
                }),
            },
            Case {
                name: "a Last-Modified after Date gives a zero heuristic lifetime, kept as a \
                       validator",
                given: Given {
                    resp: &[("date", T0), ("last-modified", T0_PLUS_60S)],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    heuristic: true,
                    ..stored(0)
                }),
            },
            Case {
                name: "an unparsable Last-Modified gives no heuristic, but still counts as a \
                       validator",
                given: Given {
                    resp: &[("last-modified", "yesterday")],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "no-cache: zero lifetime whatever max-age says, every use validated \
                       (RFC 9111 §5.2.2.4)",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=10000, no-cache"),
                        ("etag", "\"abcd\""),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    no_cache: true,
                    forbids_stale: true,
                    ..stored(0)
                }),
            },
            Case {
                name: "no-cache makes a status without freshness storable, as it is always \
                       validated",
                given: Given {
                    status: 201,
                    resp: &[("cache-control", "no-cache"), ("etag", "\"v\"")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    no_cache: true,
                    forbids_stale: true,
                    ..stored(0)
                }),
            },
        ]);
    }

    #[test]
    fn directives_recorded_for_later_use() {
        run(&[
            Case {
                name: "must-revalidate forbids serving stale (RFC 9111 §5.2.2.2)",
                given: Given {
                    resp: &[("cache-control", "max-age=60, must-revalidate")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(60)
                }),
            },
            Case {
                name: "proxy-revalidate forbids a shared cache to serve stale \
                       (RFC 9111 §5.2.2.8)",
                given: Given {
                    resp: &[("cache-control", "max-age=60, proxy-revalidate")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    forbids_stale: true,
                    ..stored(60)
                }),
            },
            Case {
                name: "immutable is recorded (RFC 8246)",
                given: Given {
                    resp: &[("cache-control", "max-age=60, immutable")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    immutable: true,
                    ..stored(60)
                }),
            },
            Case {
                name: "stale-while-revalidate and stale-if-error windows are recorded \
                       (RFC 5861 §3, §4)",
                given: Given {
                    resp: &[(
                        "cache-control",
                        "max-age=60, stale-while-revalidate=30, stale-if-error=600",
                    )],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    stale_while_revalidate: secs(30),
                    stale_if_error: secs(600),
                    ..stored(60)
                }),
            },
        ]);
    }

    #[test]
    fn stale_on_arrival_is_kept_only_if_useful_later() {
        run(&[
            Case {
                name: "stale on arrival without validator or stale window is not kept",
                given: Given {
                    resp: &[("cache-control", "max-age=0")],
                    ..GET_200
                },
                expect: Err(NotStored::StaleWithoutValidator),
            },
            Case {
                name: "a 200 with no freshness information and no validator is not kept",
                given: GET_200,
                expect: Err(NotStored::StaleWithoutValidator),
            },
            Case {
                name: "etagate's own content ETag is not an origin validator",
                given: Given {
                    resp: &[("cache-control", "max-age=0"), ("etag", CONTENT_ETAG)],
                    ..GET_200
                },
                expect: Err(NotStored::StaleWithoutValidator),
            },
            Case {
                name: "an origin ETag keeps a response stale on arrival",
                given: Given {
                    resp: &[("cache-control", "max-age=0"), ("etag", "\"x\"")],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "Last-Modified keeps a response stale on arrival (no heuristic beside \
                       max-age)",
                given: Given {
                    resp: &[
                        ("cache-control", "max-age=0"),
                        ("last-modified", T0_MINUS_1D),
                    ],
                    ..GET_200
                },
                expect: Ok(stored(0)),
            },
            Case {
                name: "stale-if-error alone keeps a response stale on arrival (RFC 5861 §4)",
                given: Given {
                    resp: &[("cache-control", "max-age=0, stale-if-error=60")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    stale_if_error: secs(60),
                    ..stored(0)
                }),
            },
            Case {
                name: "stale-while-revalidate alone keeps a response stale on arrival \
                       (RFC 5861 §3)",
                given: Given {
                    resp: &[("cache-control", "max-age=0, stale-while-revalidate=30")],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    stale_while_revalidate: secs(30),
                    ..stored(0)
                }),
            },
            Case {
                name: "a response made stale by its Age alone, without validator, is not kept",
                given: Given {
                    resp: &[("cache-control", "max-age=60"), ("age", "120")],
                    ..GET_200
                },
                expect: Err(NotStored::StaleWithoutValidator),
            },
        ]);
    }

    #[test]
    fn initial_age() {
        // Fresh for an hour from the Date of T0 with this initial age.
        let aged =
            |name: &'static str, resp: &'static [(&'static str, &'static str)], age: u64| Case {
                name,
                given: Given { resp, ..GET_200 },
                expect: Ok(Freshness {
                    initial_age: secs(age),
                    ..stored(3600)
                }),
            };
        run(&[
            Case {
                name: "Age is the initial age when Date shows no delay",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("cache-control", "max-age=600"),
                        ("age", "30"),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    initial_age: secs(30),
                    ..stored(600)
                }),
            },
            Case {
                name: "an Age beyond max-age makes the response stale on arrival",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("cache-control", "max-age=3600"),
                        ("age", "7200"),
                        ("etag", "\"v\""),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    initial_age: secs(7200),
                    ..stored(3600)
                }),
            },
            Case {
                name: "an Age above the apparent age wins (corrected_initial_age is the max, \
                       RFC 9111 §4.2.3)",
                given: Given {
                    resp: &[
                        ("date", T0_MINUS_10S),
                        ("expires", T0_PLUS_10S),
                        ("age", "25"),
                        ("etag", "\"v\""),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    initial_age: secs(25),
                    ..stored(20)
                }),
            },
            Case {
                name: "an apparent age (response time minus Date) above Age wins \
                       (RFC 9111 §4.2.3)",
                given: Given {
                    resp: &[
                        ("date", T0_MINUS_10S),
                        ("cache-control", "max-age=60"),
                        ("age", "3"),
                    ],
                    ..GET_200
                },
                expect: Ok(Freshness {
                    initial_age: secs(10),
                    ..stored(60)
                }),
            },
            Case {
                name: "Age is corrected by the response delay since the request was sent \
                       (RFC 9111 §4.2.3)",
                given: Given {
                    resp: &[
                        ("date", T0),
                        ("cache-control", "max-age=600"),
                        ("age", "30"),
                    ],
                    delay: 5,
                    ..GET_200
                },
                expect: Ok(Freshness {
                    initial_age: secs(35),
                    ..stored(600)
                }),
            },
            Case {
                name: "a Date after the response time gives no apparent age",
                given: Given {
                    resp: &[("date", T0_PLUS_10S), ("cache-control", "max-age=60")],
                    ..GET_200
                },
                expect: Ok(stored(60)),
            },
            aged(
                "an Age that is not digits is ignored (RFC 9111 §1.2.2)",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "abc"),
                ],
                0,
            ),
            aged(
                "a negative Age is ignored",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "-7200"),
                ],
                0,
            ),
            aged(
                "a decimal Age is ignored",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "7200.0"),
                ],
                0,
            ),
            aged(
                "an Age with a parameter is ignored",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "7200;foo=111"),
                ],
                0,
            ),
            aged(
                "an empty first member is ignored",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", ", 7200"),
                ],
                0,
            ),
            aged(
                "in a list without space the first value counts",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "7200,0"),
                    ("etag", "\"v\""),
                ],
                7200,
            ),
            aged(
                "in a list the first value counts",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "0, 7200"),
                ],
                0,
            ),
            aged(
                "of two field lines the first counts",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "30"),
                    ("age", "7200"),
                ],
                30,
            ),
            aged(
                "2^31 or more is 2147483648 (RFC 9111 §1.2.2)",
                &[
                    ("date", T0),
                    ("cache-control", "max-age=3600"),
                    ("age", "99999999999999999999"),
                    ("etag", "\"v\""),
                ],
                2_147_483_648,
            ),
        ]);
    }
}
