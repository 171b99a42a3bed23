//! The freshness facts of a stored response and their age arithmetic (RFC 9111 §4.2).
//!
//! A [`Freshness`] is fixed once, when a response is received or revalidated
//! ([`super::storability`] derives it from the origin's headers), and read on every later use
//! ([`super::usability`], the `Age` and `Cache-Status` fields, the stored entry's expiry). Only
//! what both sides need lives here: the values, and the ages they imply at a given moment
//! (RFC 9111 §4.2.3), with the `Age` field's clamp (RFC 9111 §5.1).

use std::time::{Duration, SystemTime};

/// The freshness facts of a stored response, fixed when it was received (or revalidated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// Explicit or heuristic freshness lifetime.
    pub lifetime: Duration,
    /// RFC 9111 §4.2.3 `corrected_initial_age`.
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
    /// An operator marked it stale (a soft purge, [`Freshness::invalidate`]): every use needs
    /// validation first, whatever the client accepts, and it is never served while a refresh
    /// runs; only stale-if-error may still serve it. A revalidation gives the stored response
    /// a new `Freshness` without it.
    pub invalidated: bool,
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
            invalidated: false,
        }
    }

    /// End the freshness lifetime at `now` (if it has not ended already) and require
    /// validation from now on. The staleness that stale-if-error windows are measured against
    /// counts from here, so a soft purge does not use up the window of a response that was
    /// fresh until now.
    pub fn invalidate(&mut self, now: SystemTime) {
        self.lifetime = self.lifetime.min(self.current_age(now));
        self.invalidated = true;
    }

    /// RFC 9111 §4.2.3 `current_age`.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        self.initial_age.saturating_add(resident)
    }

    /// `lifetime > current_age` (strictly: an `Expires` equal to `Date` is stale at once).
    /// Never once invalidated, even if the clock goes back.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.no_cache && !self.invalidated && self.lifetime > self.current_age(now)
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
        // Saturating: a response time read back from disk is untrusted and may lie near the
        // end of the representable time.
        self.response_time
            .checked_add(remaining)
            .or_else(|| self.response_time.checked_add(Duration::from_secs(1 << 40)))
            .unwrap_or(self.response_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed response time, so every expectation is exact.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fresh_for(lifetime: u64) -> Freshness {
        Freshness::plain(secs(lifetime), t0())
    }

    /// Everything a `Freshness` answers at one moment.
    #[derive(Debug, PartialEq, Eq)]
    struct Expect {
        current_age: Duration,
        is_fresh: bool,
        staleness: Duration,
        ttl_secs: i64,
        age_header: u64,
        /// `fresh_until()` minus the response time.
        fresh_for: Duration,
    }

    struct Case {
        name: &'static str,
        f: Freshness,
        /// Milliseconds after the response time (negative: a clock that went back).
        at_ms: i64,
        expect: Expect,
    }

    fn observe(f: &Freshness, at_ms: i64) -> Expect {
        let offset = Duration::from_millis(at_ms.unsigned_abs());
        let now = if at_ms >= 0 {
            t0() + offset
        } else {
            t0() - offset
        };
        Expect {
            current_age: f.current_age(now),
            is_fresh: f.is_fresh(now),
            staleness: f.staleness(now),
            ttl_secs: f.ttl_secs(now),
            age_header: f.age_header(now),
            fresh_for: f
                .fresh_until()
                .duration_since(f.response_time)
                .expect("fresh_until is never before the response time"),
        }
    }

    fn run(cases: &[Case]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                let got = observe(&c.f, c.at_ms);
                (got != c.expect)
                    .then(|| format!("{}:\n   got {got:?}\n  want {:?}", c.name, c.expect))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn invalidating_ends_the_lifetime_now_and_for_good() {
        let mut f = fresh_for(100);
        f.invalidate(t0() + secs(30));
        assert!(f.invalidated);
        assert_eq!(f.lifetime, secs(30));
        assert!(!f.is_fresh(t0() + secs(30)));
        assert_eq!(f.staleness(t0() + secs(40)), secs(10));
        assert!(
            !f.is_fresh(t0() + secs(10)),
            "a clock that went back does not make it fresh again"
        );
        // Invalidating a response that was already stale keeps its earlier end.
        let mut stale = fresh_for(10);
        stale.invalidate(t0() + secs(30));
        assert_eq!(stale.lifetime, secs(10));
    }

    #[test]
    fn fresh_until_never_overflows() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 10);
        let f = Freshness {
            lifetime: Duration::MAX,
            response_time: far,
            ..Freshness::plain(Duration::ZERO, far)
        };
        assert!(f.fresh_until() >= far);
    }

    #[test]
    fn age_and_ttl_arithmetic() {
        run(&[
            Case {
                name: "resident time alone makes the age of a response received without Age",
                f: fresh_for(100),
                at_ms: 10_000,
                expect: Expect {
                    current_age: secs(10),
                    is_fresh: true,
                    staleness: Duration::ZERO,
                    ttl_secs: 90,
                    age_header: 10,
                    fresh_for: secs(100),
                },
            },
            Case {
                name: "current_age = corrected_initial_age + resident_time (RFC 9111 §4.2.3)",
                f: Freshness {
                    initial_age: secs(30),
                    ..fresh_for(100)
                },
                at_ms: 10_000,
                expect: Expect {
                    current_age: secs(40),
                    is_fresh: true,
                    staleness: Duration::ZERO,
                    ttl_secs: 60,
                    age_header: 40,
                    fresh_for: secs(70),
                },
            },
            Case {
                name: "an age equal to the lifetime is already stale (fresh means lifetime > age)",
                f: fresh_for(100),
                at_ms: 100_000,
                expect: Expect {
                    current_age: secs(100),
                    is_fresh: false,
                    staleness: Duration::ZERO,
                    ttl_secs: 0,
                    age_header: 100,
                    fresh_for: secs(100),
                },
            },
            Case {
                name: "a stale response has a negative ttl and counts its staleness",
                f: fresh_for(100),
                at_ms: 130_000,
                expect: Expect {
                    current_age: secs(130),
                    is_fresh: false,
                    staleness: secs(30),
                    ttl_secs: -30,
                    age_header: 130,
                    fresh_for: secs(100),
                },
            },
            Case {
                name: "ttl and Age truncate to whole seconds towards zero on both sides",
                f: fresh_for(100),
                at_ms: 100_500,
                expect: Expect {
                    current_age: Duration::from_millis(100_500),
                    is_fresh: false,
                    staleness: Duration::from_millis(500),
                    ttl_secs: 0,
                    age_header: 100,
                    fresh_for: secs(100),
                },
            },
            Case {
                name: "a clock earlier than the response time adds no resident time",
                f: Freshness {
                    initial_age: secs(20),
                    ..fresh_for(100)
                },
                at_ms: -5_000,
                expect: Expect {
                    current_age: secs(20),
                    is_fresh: true,
                    staleness: Duration::ZERO,
                    ttl_secs: 80,
                    age_header: 20,
                    fresh_for: secs(80),
                },
            },
            Case {
                name: "no-cache is never fresh, yet its ttl and expiry still follow the lifetime",
                f: Freshness {
                    no_cache: true,
                    ..fresh_for(100)
                },
                at_ms: 10_000,
                expect: Expect {
                    current_age: secs(10),
                    is_fresh: false,
                    staleness: Duration::ZERO,
                    ttl_secs: 90,
                    age_header: 10,
                    fresh_for: secs(100),
                },
            },
            Case {
                name: "an initial age beyond the lifetime expires the response on arrival",
                f: Freshness {
                    initial_age: secs(50),
                    ..fresh_for(10)
                },
                at_ms: 0,
                expect: Expect {
                    current_age: secs(50),
                    is_fresh: false,
                    staleness: secs(40),
                    ttl_secs: -40,
                    age_header: 50,
                    fresh_for: Duration::ZERO,
                },
            },
            Case {
                name: "an initial age of Duration::MAX (a damaged entry) is stale forever, without overflow",
                f: Freshness {
                    initial_age: Duration::MAX,
                    ..fresh_for(100)
                },
                at_ms: 10_000,
                expect: Expect {
                    current_age: Duration::MAX,
                    is_fresh: false,
                    staleness: Duration::MAX - secs(100),
                    ttl_secs: -i64::MAX,
                    age_header: 2_147_483_648,
                    fresh_for: Duration::ZERO,
                },
            },
            Case {
                name: "the Age sent is clamped at 2^31 seconds (RFC 9111 §5.1)",
                f: Freshness {
                    initial_age: secs(3_000_000_000),
                    ..fresh_for(0)
                },
                at_ms: 0,
                expect: Expect {
                    current_age: secs(3_000_000_000),
                    is_fresh: false,
                    staleness: secs(3_000_000_000),
                    ttl_secs: -3_000_000_000,
                    age_header: 2_147_483_648,
                    fresh_for: Duration::ZERO,
                },
            },
        ]);
    }
}
