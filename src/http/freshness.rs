//! Storability and freshness for a shared cache (RFC 9111 §3, §4.2; RFC 5861; Edge
//! Architecture's `Surrogate-Control`).

use super::cache_control::{Delta, RequestDirectives, ResponseDirectives, SurrogateDirectives};
use super::date::parse_http_date;
use super::etag::is_content_etag;
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

/// The freshness facts of a stored response, fixed when it was received (or revalidated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Explicit or heuristic freshness lifetime.
    pub lifetime: Duration,
    /// RFC 9111 §4.2.3 `corrected_initial_age`. An unusable `Age` makes it `Duration::MAX`.
    pub initial_age: Duration,
    /// When the response arrived.
    pub response_time: SystemTime,
    /// Every use needs validation (`no-cache`).
    pub no_cache: bool,
    /// A stale copy may not be served without validation (must-revalidate, proxy-revalidate,
    /// s-maxage, no-cache).
    pub forbids_stale: bool,
    /// `immutable`: while fresh, a client's `max-age`/`min-fresh` does not force validation.
    pub immutable: bool,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// The lifetime came from the heuristic, not from the response.
    pub heuristic: bool,
}

impl Freshness {
    /// Fresh for `lifetime` from `response_time`, with no directives and no incoming `Age`.
    pub fn plain(lifetime: Duration, response_time: SystemTime) -> Freshness {
        Freshness {
            lifetime,
            initial_age: Duration::ZERO,
            response_time,
            no_cache: false,
            forbids_stale: false,
            immutable: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            heuristic: false,
        }
    }

    /// RFC 9111 §4.2.3 `current_age`.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        self.initial_age.saturating_add(resident)
    }

    /// `lifetime > current_age` (strictly: an `Expires` equal to `Date` is stale at once).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.no_cache && self.lifetime > self.current_age(now)
    }

    /// How long ago it became stale (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.current_age(now).saturating_sub(self.lifetime)
    }

    /// Remaining freshness in whole seconds, negative once stale (for `Cache-Status: ttl`).
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        let age = self.current_age(now);
        if self.lifetime >= age {
            (self.lifetime - age).as_secs() as i64
        } else {
            -((age - self.lifetime).as_secs().min(i64::MAX as u64) as i64)
        }
    }

    /// The `Age` value to send: current age in seconds, clamped as RFC 9111 §5.1 allows.
    pub fn age_header(&self, now: SystemTime) -> u64 {
        self.current_age(now).as_secs().min(2_147_483_648)
    }

    /// When the stored response stops being fresh (ignoring `no-cache`).
    pub fn fresh_until(&self) -> SystemTime {
        let remaining = self.lifetime.saturating_sub(self.initial_age);
        self.response_time
            .checked_add(remaining)
            .unwrap_or(self.response_time + Duration::from_secs(1 << 40))
    }
}

/// What a request may do with a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Serve it as is.
    Fresh,
    /// It is stale, but the request's `max-stale` accepts it.
    StaleAccepted,
    /// Ask the origin first (stale, `no-cache` on either side, or the request's `max-age` /
    /// `min-fresh` not met).
    Validate,
}

/// Decide how a stored response may satisfy a request (RFC 9111 §4, §5.2.1).
pub fn usability(f: &Freshness, req: &RequestDirectives, now: SystemTime) -> Use {
    if f.no_cache || req.no_cache {
        return Use::Validate;
    }
    let age = f.current_age(now);
    let fresh = f.lifetime > age;
    let immutable_fresh = f.immutable && fresh;
    if let Some(max_age) = req.max_age {
        if !immutable_fresh && age > Duration::from_secs(max_age.into()) {
            return Use::Validate;
        }
    }
    if let Some(min_fresh) = req.min_fresh {
        let left = f.lifetime.saturating_sub(age);
        if !immutable_fresh && (!fresh || left < Duration::from_secs(min_fresh.into())) {
            return Use::Validate;
        }
    }
    if fresh {
        return Use::Fresh;
    }
    match req.max_stale {
        Some(limit) if !f.forbids_stale => {
            let ok = limit.is_none_or(|s| f.staleness(now) <= Duration::from_secs(s.into()));
            if ok {
                Use::StaleAccepted
            } else {
                Use::Validate
            }
        }
        _ => Use::Validate,
    }
}

/// Whether a stale response may be served while it is refreshed in the background.
pub fn may_serve_while_revalidating(
    f: &Freshness,
    req: &RequestDirectives,
    now: SystemTime,
) -> bool {
    !f.forbids_stale
        && !req.no_cache
        && req.max_age.is_none()
        && req.min_fresh.is_none()
        && !f.is_fresh(now)
        && !f.stale_while_revalidate.is_zero()
        && f.staleness(now) <= f.stale_while_revalidate
}

/// Whether a stale response may be served because the origin failed (RFC 5861 §4). The window
/// is the longest of the response's `stale-if-error`, the request's, and the route default.
pub fn may_serve_on_error(
    f: &Freshness,
    req: &RequestDirectives,
    route_default: Duration,
    now: SystemTime,
) -> bool {
    if f.forbids_stale {
        return false;
    }
    let window = f
        .stale_if_error
        .max(route_default)
        .max(Duration::from_secs(req.stale_if_error.unwrap_or(0).into()));
    !window.is_zero() && f.staleness(now) <= window
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

/// Route-level storage choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorePolicy {
    /// Store responses that carry `Set-Cookie`.
    pub store_set_cookie: bool,
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

/// RFC 9111 §5.1 as the public test suite interprets it: `Age` must be exactly one field line
/// of digits; anything else (several lines, lists, signs, decimals, parameters) is invalid
/// freshness information, which §4.2.1 encourages caches to treat as stale.
fn age_value(h: &HeaderMap) -> Result<Duration, ()> {
    if !h.contains_key(AGE) {
        return Ok(Duration::ZERO);
    }
    let v = single_line(h, AGE).ok_or(())?;
    match super::cache_control::delta_seconds(Some(v)) {
        Delta::Seconds(s) => Ok(Duration::from_secs(s.into())),
        Delta::Invalid => Err(()),
    }
}

/// RFC 9111 §4.2.3 corrected initial age; `Duration::MAX` when `Age` is unusable.
pub fn initial_age(h: &HeaderMap, ex: &Exchange) -> Duration {
    let Ok(age) = age_value(h) else {
        return Duration::MAX;
    };
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
    if !(200..=599).contains(&status) || status == 206 || status == 304 {
        return Err(NotStored::Status);
    }
    let reqd = RequestDirectives::parse(req.get_all(CACHE_CONTROL));
    if reqd.no_store {
        return Err(NotStored::RequestNoStore);
    }
    let cc = ResponseDirectives::parse(resp.get_all(CACHE_CONTROL));
    let sc = SurrogateDirectives::parse(resp.get_all("surrogate-control"), SURROGATE_DEVICE);
    // Surrogate-Control addressed to this cache overrides Cache-Control for it.
    let surrogate_lifetime = sc.max_age;
    if sc.no_store {
        return Err(NotStored::NoStore);
    }
    if surrogate_lifetime.is_none() {
        if cc.must_understand {
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
    let has_expires = resp.contains_key(EXPIRES);
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
    };
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
    use http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    fn now() -> SystemTime {
        // a whole second, as Date headers are
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        SystemTime::UNIX_EPOCH + Duration::from_secs(t)
    }

    fn ex(t: SystemTime) -> Exchange {
        Exchange {
            request_time: t,
            response_time: t,
        }
    }

    fn assess_get(status: u16, resp: &[(&str, &str)]) -> Result<Freshness, NotStored> {
        assess(
            &Method::GET,
            &h(&[]),
            status,
            &h(resp),
            &ex(now()),
            &StorePolicy::default(),
        )
    }

    fn date(offset: i64) -> String {
        let t = now();
        let t = if offset >= 0 {
            t + Duration::from_secs(offset as u64)
        } else {
            t - Duration::from_secs((-offset) as u64)
        };
        fmt_http_date(t)
    }

    #[test]
    fn lifetime_precedence_surrogate_s_maxage_max_age_expires_heuristic() {
        let d = date(0);
        let f = assess_get(
            200,
            &[("date", &d), ("cache-control", "max-age=3600, s-maxage=1")],
        )
        .expect("stored");
        assert_eq!(f.lifetime, Duration::from_secs(1));
        let f = assess_get(
            200,
            &[
                ("date", &d),
                ("cache-control", "max-age=1"),
                ("surrogate-control", "max-age=3600"),
            ],
        )
        .expect("stored");
        assert_eq!(f.lifetime, Duration::from_secs(3600));
        let f = assess_get(200, &[("date", &d), ("expires", &date(300))]).expect("stored");
        assert_eq!(f.lifetime, Duration::from_secs(300));
        let f = assess_get(200, &[("date", &d), ("last-modified", &date(-86400))]).expect("stored");
        assert_eq!(f.lifetime, Duration::from_secs(8640));
        assert!(f.heuristic);
    }

    #[test]
    fn expires_counts_from_date_not_from_now() {
        let f = assess_get(
            200,
            &[
                ("date", &date(400)),
                ("expires", &date(300)),
                ("last-modified", &date(-5)),
            ],
        )
        .expect("stored");
        assert_eq!(f.lifetime, Duration::ZERO);
        let f = assess_get(
            200,
            &[("date", &date(0)), ("expires", &date(0)), ("etag", "\"x\"")],
        )
        .expect("stored");
        assert!(!f.is_fresh(now()), "Expires equal to Date is stale at once");
        let f = assess_get(200, &[("date", "foo"), ("expires", &date(10))]).expect("stored");
        assert!(
            f.is_fresh(now()),
            "an invalid Date falls back to the response time"
        );
    }

    #[test]
    fn age_and_date_make_the_initial_age() {
        let f = assess_get(
            200,
            &[
                ("date", &date(0)),
                ("cache-control", "max-age=3600"),
                ("age", "7200"),
                ("etag", "\"v\""),
            ],
        )
        .expect("stored");
        assert!(!f.is_fresh(now()));
        let f = assess_get(
            200,
            &[
                ("date", &date(-10)),
                ("expires", &date(10)),
                ("age", "25"),
                ("etag", "\"v\""),
            ],
        )
        .expect("stored");
        assert!(!f.is_fresh(now()));
        let f = assess_get(
            200,
            &[
                ("date", &date(0)),
                ("cache-control", "max-age=600"),
                ("age", "30"),
            ],
        )
        .expect("stored");
        assert_eq!(f.age_header(now()), 30);
    }

    #[test]
    fn malformed_age_makes_the_response_stale() {
        for bad in ["abc", "-7200", "7200.0", "7200,0", "0, 0", "7200;foo=bar"] {
            let f = assess_get(
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("age", bad),
                    ("etag", "\"v\""),
                ],
            )
            .expect("stored");
            assert!(!f.is_fresh(now()), "Age: {bad}");
        }
        let mut two = h(&[("cache-control", "max-age=3600"), ("etag", "\"v\"")]);
        two.append("age", HeaderValue::from_static("0"));
        two.append("age", HeaderValue::from_static("0"));
        let f = assess(
            &Method::GET,
            &h(&[]),
            200,
            &two,
            &ex(now()),
            &StorePolicy::default(),
        )
        .expect("stored");
        assert!(!f.is_fresh(now()), "two Age lines");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            assess_get(200, &[("cache-control", "No-StOrE, max-age=10")]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            assess_get(200, &[("cache-control", "private, max-age=10")]),
            Err(NotStored::Private)
        );
        assert_eq!(
            assess_get(200, &[("cache-control", "max-age=10"), ("vary", "foo, *")]),
            Err(NotStored::VaryStar)
        );
        assert_eq!(
            assess_get(
                200,
                &[("cache-control", "max-age=10"), ("set-cookie", "a=b")]
            ),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            assess_get(201, &[("last-modified", &date(-86400))]),
            Err(NotStored::NoFreshness)
        );
        assert_eq!(
            assess_get(599, &[("cache-control", "max-age=3600, must-understand")]),
            Err(NotStored::MustUnderstand)
        );
        assert_eq!(
            assess_get(200, &[("cache-control", "max-age=0")]),
            Err(NotStored::StaleWithoutValidator)
        );
        assert_eq!(
            assess_get(206, &[("cache-control", "max-age=10")]),
            Err(NotStored::Status)
        );
        assert_eq!(
            assess_get(
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("surrogate-control", "no-store")
                ]
            ),
            Err(NotStored::NoStore)
        );
    }

    #[test]
    fn must_understand_with_a_known_status_overrides_no_store() {
        let f = assess_get(
            200,
            &[("cache-control", "max-age=3600, no-store, must-understand")],
        );
        assert!(f.is_ok());
    }

    #[test]
    fn surrogate_control_makes_no_store_storable() {
        let f = assess_get(
            200,
            &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=10000;etagate"),
            ],
        );
        assert!(f.is_ok_and(|f| f.lifetime == Duration::from_secs(10000)));
        let f = assess_get(
            200,
            &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=10000;other"),
            ],
        );
        assert_eq!(f, Err(NotStored::NoStore));
    }

    #[test]
    fn authorization_needs_public_must_revalidate_or_s_maxage() {
        let req = h(&[("authorization", "FOO")]);
        let a = |cc: &str| {
            assess(
                &Method::GET,
                &req,
                200,
                &h(&[("cache-control", cc)]),
                &ex(now()),
                &StorePolicy::default(),
            )
        };
        assert_eq!(a("max-age=3600"), Err(NotStored::Authorization));
        assert!(a("max-age=3600, public").is_ok());
        assert!(a("max-age=3600, must-revalidate").is_ok());
        assert!(a("s-maxage=3600").is_ok());
    }

    #[test]
    fn public_allows_heuristics_for_any_status() {
        let f = assess_get(
            599,
            &[
                ("date", &date(0)),
                ("last-modified", &date(-86400)),
                ("cache-control", "public"),
            ],
        )
        .expect("stored");
        assert!(f.is_fresh(now()));
        assert_eq!(
            assess_get(599, &[("last-modified", &date(-86400))]),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn no_cache_is_stored_but_always_validated() {
        let f = assess_get(
            200,
            &[
                ("cache-control", "max-age=10000, no-cache"),
                ("etag", "\"abcd\""),
            ],
        )
        .expect("stored");
        assert_eq!(
            usability(&f, &RequestDirectives::default(), now()),
            Use::Validate
        );
    }

    fn fresh_for(secs: u64) -> Freshness {
        Freshness::plain(Duration::from_secs(secs), now())
    }

    #[test]
    fn request_directives_decide_usability() {
        let f = fresh_for(100);
        let t = now() + Duration::from_secs(10);
        let req =
            |s: &str| RequestDirectives::parse(h(&[("cache-control", s)]).get_all("cache-control"));
        assert_eq!(usability(&f, &req("max-age=5"), t), Use::Validate);
        assert_eq!(usability(&f, &req("max-age=50"), t), Use::Fresh);
        assert_eq!(usability(&f, &req("min-fresh=95"), t), Use::Validate);
        assert_eq!(usability(&f, &req("no-cache"), t), Use::Validate);
        let late = now() + Duration::from_secs(130);
        assert_eq!(usability(&f, &req(""), late), Use::Validate);
        assert_eq!(
            usability(&f, &req("max-stale=60"), late),
            Use::StaleAccepted
        );
        assert_eq!(usability(&f, &req("max-stale=10"), late), Use::Validate);
        assert_eq!(usability(&f, &req("max-stale"), late), Use::StaleAccepted);
        let mut strict = fresh_for(100);
        strict.forbids_stale = true;
        assert_eq!(usability(&strict, &req("max-stale"), late), Use::Validate);
        let mut imm = fresh_for(100);
        imm.immutable = true;
        assert_eq!(usability(&imm, &req("max-age=0"), t), Use::Fresh);
    }

    #[test]
    fn stale_serving_windows() {
        let mut f = fresh_for(10);
        f.stale_while_revalidate = Duration::from_secs(30);
        f.stale_if_error = Duration::from_secs(60);
        let none = RequestDirectives::default();
        let t = now() + Duration::from_secs(20);
        assert!(may_serve_while_revalidating(&f, &none, t));
        assert!(!may_serve_while_revalidating(
            &f,
            &none,
            now() + Duration::from_secs(50)
        ));
        assert!(may_serve_on_error(
            &f,
            &none,
            Duration::ZERO,
            now() + Duration::from_secs(50)
        ));
        assert!(!may_serve_on_error(
            &f,
            &none,
            Duration::ZERO,
            now() + Duration::from_secs(80)
        ));
        assert!(may_serve_on_error(
            &f,
            &none,
            Duration::from_secs(300),
            now() + Duration::from_secs(80)
        ));
        f.forbids_stale = true;
        assert!(!may_serve_on_error(&f, &none, Duration::from_secs(300), t));
        assert!(!may_serve_while_revalidating(&f, &none, t));
    }
}
