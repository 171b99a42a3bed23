//! Whether a stored response may answer a request now, and how: as fresh, stale with the
//! client's consent, only after validation (RFC 9111 §4.2, §4.2.4, with the request directives
//! of §5.2.1), or stale while it is refreshed or while the origin fails (RFC 5861).
//!
//! Decided on every cache hit from the stored [`Freshness`] (fixed by [`super::storability`]
//! when the response was received) and the request's own `Cache-Control`.

use super::cache_control::RequestDirectives;
use super::freshness::Freshness;
use std::time::{Duration, SystemTime};

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
    // An operator's soft purge outweighs the client's consent to staleness (`max-stale`).
    if f.no_cache || req.no_cache || f.invalidated {
        return Use::Validate;
    }
    let age = f.current_age(now);
    let fresh = f.lifetime > age;
    // `immutable` (RFC 8246) exists so that a client's reload (`max-age=0`) does not send a
    // response that cannot change while fresh back to the origin.
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
    // The client's consent to staleness does not outweigh the origin's refusal
    // (must-revalidate and kin, RFC 9111 §4.2.4).
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

/// Whether a stale response may be served while it is refreshed in the background (RFC 5861
/// §3). A request that bounds the age or asks for validation wants an answer at least as fresh
/// as the refresh, so it waits for it; so does every request after a soft purge (the operator
/// asked for the next answer to come from the origin).
pub fn may_serve_while_revalidating(
    f: &Freshness,
    req: &RequestDirectives,
    now: SystemTime,
) -> bool {
    !f.forbids_stale
        && !f.invalidated
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    /// The moment every stored response in these cases arrived, so expectations are exact.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Received at `t0()` with no `Age`, fresh for `lifetime` seconds, no directives.
    fn fresh_for(lifetime: u64) -> Freshness {
        Freshness::plain(secs(lifetime), t0())
    }

    /// `f` soft-purged `at` seconds after it was received.
    fn purged(f: Freshness, at: u64) -> Freshness {
        let mut f = f;
        f.invalidate(t0() + secs(at));
        f
    }

    fn request(cache_control: &str) -> RequestDirectives {
        let mut h = HeaderMap::new();
        h.append(
            "cache-control",
            cache_control.parse().expect("cache-control value"),
        );
        RequestDirectives::parse(h.get_all("cache-control"))
    }

    /// Fails the test listing every failing case by name, not only the first.
    fn report(failures: Vec<String>) {
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    struct UseCase {
        name: &'static str,
        f: Freshness,
        /// The request's `Cache-Control`.
        req: &'static str,
        /// Seconds since the response was received.
        at: u64,
        expect: Use,
    }

    fn run_use(cases: &[UseCase]) {
        report(
            cases
                .iter()
                .filter_map(|c| {
                    let got = usability(&c.f, &request(c.req), t0() + secs(c.at));
                    (got != c.expect)
                        .then(|| format!("{}: got {got:?}, want {:?}", c.name, c.expect))
                })
                .collect(),
        );
    }

    #[test]
    fn usability_of_a_stored_response() {
        let strict = Freshness {
            forbids_stale: true,
            ..fresh_for(100)
        };
        let immutable = Freshness {
            immutable: true,
            ..fresh_for(100)
        };
        let cases = [
            UseCase {
                name: "fresh and nothing asked: served as is",
                f: fresh_for(100),
                req: "",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "an age equal to the lifetime is stale: validated",
                f: fresh_for(100),
                req: "",
                at: 100,
                expect: Use::Validate,
            },
            UseCase {
                name: "stale without max-stale: validated (RFC 9111 §4.2.4)",
                f: fresh_for(100),
                req: "",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "stored no-cache: validated even while within its lifetime \
                       (RFC 9111 §5.2.2.4)",
                f: Freshness {
                    no_cache: true,
                    forbids_stale: true,
                    ..fresh_for(100)
                },
                req: "",
                at: 0,
                expect: Use::Validate,
            },
            UseCase {
                name: "stored no-cache: validated even when max-stale would accept any staleness",
                f: Freshness {
                    no_cache: true,
                    ..fresh_for(100)
                },
                req: "max-stale",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "request no-cache: validated though fresh (RFC 9111 §5.2.1.4)",
                f: fresh_for(100),
                req: "no-cache",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "request no-cache: validated though immutable and fresh",
                f: immutable,
                req: "no-cache",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "request max-age below the age: validated (RFC 9111 §5.2.1.1)",
                f: fresh_for(100),
                req: "max-age=5",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "request max-age above the age: fresh",
                f: fresh_for(100),
                req: "max-age=50",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "request max-age equal to the age: fresh (the age may be equal)",
                f: fresh_for(100),
                req: "max-age=10",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "request max-age below the age refuses a stale copy max-stale accepts",
                f: fresh_for(100),
                req: "max-stale, max-age=120",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "request min-fresh above what is left: validated (RFC 9111 §5.2.1.3)",
                f: fresh_for(100),
                req: "min-fresh=95",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "request min-fresh equal to what is left: fresh",
                f: fresh_for(100),
                req: "min-fresh=90",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "request min-fresh refuses a stale copy max-stale accepts",
                f: fresh_for(100),
                req: "max-stale, min-fresh=0",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "immutable and fresh: request max-age=0 does not force validation \
                       (RFC 8246)",
                f: immutable,
                req: "max-age=0",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "immutable and fresh: request min-fresh does not force validation \
                       (RFC 8246)",
                f: immutable,
                req: "min-fresh=95",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "immutable but stale: request max-age applies again",
                f: immutable,
                req: "max-stale, max-age=120",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "immutable but stale: max-stale still accepts it",
                f: immutable,
                req: "max-stale, max-age=200",
                at: 130,
                expect: Use::StaleAccepted,
            },
            UseCase {
                name: "max-stale with a bound above the staleness: stale accepted \
                       (RFC 9111 §5.2.1.2)",
                f: fresh_for(100),
                req: "max-stale=60",
                at: 130,
                expect: Use::StaleAccepted,
            },
            UseCase {
                name: "max-stale with a bound equal to the staleness: stale accepted",
                f: fresh_for(100),
                req: "max-stale=30",
                at: 130,
                expect: Use::StaleAccepted,
            },
            UseCase {
                name: "max-stale with a bound below the staleness: validated",
                f: fresh_for(100),
                req: "max-stale=10",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "max-stale without a value accepts any staleness",
                f: fresh_for(100),
                req: "max-stale",
                at: 130,
                expect: Use::StaleAccepted,
            },
            UseCase {
                name:
                    "max-stale without a value accepts even a response of the largest initial age",
                f: Freshness {
                    initial_age: Duration::MAX,
                    ..fresh_for(100)
                },
                req: "max-stale",
                at: 0,
                expect: Use::StaleAccepted,
            },
            UseCase {
                name: "an invalid max-stale value means nothing: validated",
                f: fresh_for(100),
                req: "max-stale=abc",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "must-revalidate and kin override the client's max-stale \
                       (RFC 9111 §4.2.4)",
                f: strict,
                req: "max-stale",
                at: 130,
                expect: Use::Validate,
            },
            UseCase {
                name: "a stale ban does not matter while fresh",
                f: strict,
                req: "",
                at: 10,
                expect: Use::Fresh,
            },
            UseCase {
                name: "soft-purged while fresh: validated",
                f: purged(fresh_for(100), 5),
                req: "",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "soft-purged: the client's max-stale does not accept it",
                f: purged(fresh_for(100), 5),
                req: "max-stale",
                at: 10,
                expect: Use::Validate,
            },
            UseCase {
                name: "soft-purged: immutable does not keep it fresh",
                f: purged(immutable, 5),
                req: "",
                at: 10,
                expect: Use::Validate,
            },
        ];
        run_use(&cases);
    }

    struct StaleCase {
        name: &'static str,
        f: Freshness,
        /// The request's `Cache-Control`.
        req: &'static str,
        /// The route's `stale_if_error` (only `may_serve_on_error` reads it).
        route_default: u64,
        /// Seconds since the response was received.
        at: u64,
        expect: bool,
    }

    fn run_stale(cases: &[StaleCase], decide: impl Fn(&StaleCase, SystemTime) -> bool) {
        report(
            cases
                .iter()
                .filter_map(|c| {
                    let got = decide(c, t0() + secs(c.at));
                    (got != c.expect).then(|| format!("{}: got {got}, want {}", c.name, c.expect))
                })
                .collect(),
        );
    }

    #[test]
    fn stale_while_revalidate() {
        // fresh for 10 s, then served stale during a refresh for 30 s more
        let swr = Freshness {
            stale_while_revalidate: secs(30),
            ..fresh_for(10)
        };
        let cases = [
            StaleCase {
                name: "stale inside the window: served while revalidating (RFC 5861 §3)",
                f: swr,
                req: "",
                route_default: 0,
                at: 20,
                expect: true,
            },
            StaleCase {
                name: "stale exactly at the end of the window: still served",
                f: swr,
                req: "",
                route_default: 0,
                at: 40,
                expect: true,
            },
            StaleCase {
                name: "stale past the window: not served",
                f: swr,
                req: "",
                route_default: 0,
                at: 50,
                expect: false,
            },
            StaleCase {
                name: "still fresh: nothing to revalidate",
                f: swr,
                req: "",
                route_default: 0,
                at: 5,
                expect: false,
            },
            StaleCase {
                name: "no stale-while-revalidate window: not served",
                f: fresh_for(10),
                req: "",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "a stale ban (must-revalidate and kin) refuses the window",
                f: Freshness {
                    forbids_stale: true,
                    ..swr
                },
                req: "",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "request no-cache waits for the origin",
                f: swr,
                req: "no-cache",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "request max-age waits for the origin, however large",
                f: swr,
                req: "max-age=1000",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "request min-fresh waits for the origin",
                f: swr,
                req: "min-fresh=0",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "a request max-stale below the staleness does not shorten the window",
                f: swr,
                req: "max-stale=1",
                route_default: 0,
                at: 20,
                expect: true,
            },
            StaleCase {
                name: "soft-purged while fresh: not served while revalidating",
                f: purged(swr, 5),
                req: "",
                route_default: 0,
                at: 6,
                expect: false,
            },
            StaleCase {
                name: "soft-purged once stale: not served though inside the window",
                f: purged(swr, 12),
                req: "",
                route_default: 0,
                at: 20,
                expect: false,
            },
        ];
        run_stale(&cases, |c, now| {
            may_serve_while_revalidating(&c.f, &request(c.req), now)
        });
    }

    #[test]
    fn stale_if_error() {
        // fresh for 10 s, then usable on an origin error for 60 s more
        let sie = Freshness {
            stale_if_error: secs(60),
            ..fresh_for(10)
        };
        let cases = [
            StaleCase {
                name: "stale inside the response's window: served on error (RFC 5861 §4)",
                f: sie,
                req: "",
                route_default: 0,
                at: 50,
                expect: true,
            },
            StaleCase {
                name: "stale exactly at the end of the window: still served",
                f: sie,
                req: "",
                route_default: 0,
                at: 70,
                expect: true,
            },
            StaleCase {
                name: "stale past the response's window: not served",
                f: sie,
                req: "",
                route_default: 0,
                at: 80,
                expect: false,
            },
            StaleCase {
                name: "a longer route default widens the window",
                f: sie,
                req: "",
                route_default: 300,
                at: 80,
                expect: true,
            },
            StaleCase {
                name: "a route default alone opens a window",
                f: fresh_for(10),
                req: "",
                route_default: 300,
                at: 80,
                expect: true,
            },
            StaleCase {
                name: "the request's stale-if-error widens the window (RFC 5861 §4)",
                f: sie,
                req: "stale-if-error=300",
                route_default: 0,
                at: 80,
                expect: true,
            },
            StaleCase {
                name: "a shorter request stale-if-error does not narrow the response's window",
                f: sie,
                req: "stale-if-error=1",
                route_default: 0,
                at: 50,
                expect: true,
            },
            StaleCase {
                name: "no window anywhere: not served",
                f: fresh_for(10),
                req: "",
                route_default: 0,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "a still fresh response is within any window",
                f: sie,
                req: "",
                route_default: 0,
                at: 5,
                expect: true,
            },
            StaleCase {
                name: "a stale ban refuses even the route default",
                f: Freshness {
                    forbids_stale: true,
                    ..sie
                },
                req: "",
                route_default: 300,
                at: 20,
                expect: false,
            },
            StaleCase {
                name: "request no-cache does not stop serving stale on error",
                f: sie,
                req: "no-cache",
                route_default: 0,
                at: 50,
                expect: true,
            },
            StaleCase {
                name: "soft-purged: still served on error inside the window",
                f: purged(sie, 5),
                req: "",
                route_default: 0,
                at: 64,
                expect: true,
            },
            StaleCase {
                name: "soft-purged: the window counts from the purge, not from the expiry",
                f: purged(sie, 5),
                req: "",
                route_default: 0,
                at: 66,
                expect: false,
            },
        ];
        run_stale(&cases, |c, now| {
            may_serve_on_error(&c.f, &request(c.req), secs(c.route_default), now)
        });
    }
}
