//! Property tests of freshness and reuse (RFC 9111 §4.2, §5.2.1; RFC 5861) over generated
//! stored responses, requests and clocks: the invariants hold for every combination, not
//! only for the table-driven cases in `http::usability`.

use etagate::http::cache_control::RequestDirectives;
use etagate::http::freshness::Freshness;
use etagate::http::usability::{may_serve_on_error, may_serve_while_revalidating, usability, Use};
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much a use gives a request without the origin: Validate < StaleAccepted < Fresh.
fn rank(u: Use) -> u8 {
    match u {
        Use::Validate => 0,
        Use::StaleAccepted => 1,
        Use::Fresh => 2,
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(s.into())
}

prop_compose! {
    fn freshness()(
        lifetime in 0u32..100_000,
        initial_age in 0u32..100_000,
        received in 1_000_000u64..2_000_000_000,
        no_cache in any::<bool>(),
        forbids_stale in any::<bool>(),
        immutable in any::<bool>(),
        swr in 0u32..10_000,
        sie in 0u32..10_000,
        heuristic in any::<bool>(),
    ) -> Freshness {
        Freshness {
            lifetime: secs(lifetime),
            initial_age: secs(initial_age),
            response_time: UNIX_EPOCH + Duration::from_secs(received),
            // A no-cache response may never be served stale either (as storability sets it).
            no_cache,
            forbids_stale: forbids_stale || no_cache,
            immutable,
            stale_while_revalidate: secs(swr),
            stale_if_error: secs(sie),
            heuristic,
            invalidated: false,
        }
    }
}

prop_compose! {
    fn request()(
        max_age in proptest::option::of(0u32..200_000),
        max_stale in proptest::option::of(proptest::option::of(0u32..200_000)),
        min_fresh in proptest::option::of(0u32..200_000),
        no_cache in any::<bool>(),
        stale_if_error in proptest::option::of(0u32..200_000),
    ) -> RequestDirectives {
        RequestDirectives {
            max_age,
            max_stale,
            min_fresh,
            no_cache,
            stale_if_error,
            ..Default::default()
        }
    }
}

fn at(f: &Freshness, after: u32) -> SystemTime {
    f.response_time + secs(after)
}

proptest! {
    /// A response that was younger when received is never judged staler than the same
    /// response received older, whatever the request asks.
    #[test]
    fn a_fresher_response_is_never_judged_staler(
        f in freshness(), req in request(), extra_age in 0u32..100_000, after in 0u32..200_000,
    ) {
        let older = Freshness { initial_age: f.initial_age + secs(extra_age), ..f };
        let now = at(&f, after);
        prop_assert!(rank(usability(&f, &req, now)) >= rank(usability(&older, &req, now)));
        prop_assert!(f.current_age(now) <= older.current_age(now));
    }

    /// Time only makes a stored response staler: age never decreases and, once stale, a
    /// response does not become fresh again.
    #[test]
    fn time_only_makes_a_response_staler(f in freshness(), t1 in 0u32..200_000, dt in 0u32..200_000) {
        let (a, b) = (at(&f, t1), at(&f, t1.saturating_add(dt)));
        prop_assert!(f.current_age(a) <= f.current_age(b));
        prop_assert!(f.is_fresh(a) || !f.is_fresh(b));
        prop_assert!(f.staleness(a) <= f.staleness(b));
    }

    /// `no-cache` on either side always means asking the origin (RFC 9111 §5.2.1.4, §5.2.2.4),
    /// and a stale response is never served in the background or on error against it.
    #[test]
    fn no_cache_always_validates(f in freshness(), req in request(), after in 0u32..200_000) {
        let now = at(&f, after);
        let mut nc = req;
        nc.no_cache = true;
        prop_assert_eq!(usability(&f, &nc, now), Use::Validate);
        prop_assert!(!may_serve_while_revalidating(&f, &nc, now));
        let origin_nc = Freshness { no_cache: true, forbids_stale: true, ..f };
        prop_assert_eq!(usability(&origin_nc, &req, now), Use::Validate);
        prop_assert!(!may_serve_on_error(&origin_nc, &req, Duration::from_secs(86_400), now));
    }

    /// The origin's ban on stale use (must-revalidate and kin, RFC 9111 §4.2.4) outweighs
    /// every client consent and every stale window.
    #[test]
    fn a_stale_ban_is_never_lifted(f in freshness(), req in request(), after in 0u32..200_000, route in 0u32..100_000) {
        let banned = Freshness { forbids_stale: true, ..f };
        let now = at(&banned, after);
        if !banned.is_fresh(now) {
            prop_assert_eq!(usability(&banned, &req, now), Use::Validate);
            prop_assert!(!may_serve_while_revalidating(&banned, &req, now));
            prop_assert!(!may_serve_on_error(&banned, &req, secs(route), now));
        }
    }

    /// After a soft purge every use asks the origin first, whatever the request accepts, and
    /// nothing is served while a refresh runs; stale-if-error may still serve it, but never
    /// where it could not have served the response without the purge.
    #[test]
    fn a_soft_purge_always_validates(
        f in freshness(), req in request(), purge_after in 0u32..200_000, later in 0u32..200_000, route in 0u32..100_000,
    ) {
        let mut purged = f;
        purged.invalidate(at(&f, purge_after));
        let now = at(&f, purge_after.saturating_add(later));
        prop_assert!(!purged.is_fresh(now));
        prop_assert_eq!(usability(&purged, &req, now), Use::Validate);
        prop_assert!(!may_serve_while_revalidating(&purged, &req, now));
        if may_serve_on_error(&purged, &req, secs(route), now) {
            prop_assert!(may_serve_on_error(&f, &req, secs(route), now));
        }
    }

    /// A fresh response needs no consent: without request directives it is served, and
    /// `max-stale` never turns a fresh answer into a stale one.
    #[test]
    fn fresh_means_served(f in freshness(), after in 0u32..200_000, max_stale in proptest::option::of(0u32..1000)) {
        let now = at(&f, after);
        if f.is_fresh(now) && !f.no_cache {
            prop_assert_eq!(usability(&f, &RequestDirectives::default(), now), Use::Fresh);
            let req = RequestDirectives { max_stale: Some(max_stale), ..Default::default() };
            prop_assert_eq!(usability(&f, &req, now), Use::Fresh);
        }
    }

    /// Stale with the client's consent stays within the staleness it consented to.
    #[test]
    fn stale_accepted_stays_within_max_stale(f in freshness(), req in request(), after in 0u32..200_000) {
        let now = at(&f, after);
        if usability(&f, &req, now) == Use::StaleAccepted {
            prop_assert!(!f.is_fresh(now));
            match req.max_stale {
                Some(Some(limit)) => prop_assert!(f.staleness(now) <= secs(limit)),
                Some(None) => {}
                None => prop_assert!(false, "stale accepted without max-stale"),
            }
        }
    }

    /// A longer stale-if-error window (from the response, the request or the route) never
    /// refuses what a shorter one allowed (RFC 5861 §4).
    #[test]
    fn a_wider_error_window_never_refuses_more(
        f in freshness(), req in request(), after in 0u32..200_000, route in 0u32..100_000, more in 0u32..100_000,
    ) {
        let now = at(&f, after);
        let wider = Freshness { stale_if_error: f.stale_if_error + secs(more), ..f };
        if may_serve_on_error(&f, &req, secs(route), now) {
            prop_assert!(may_serve_on_error(&wider, &req, secs(route), now));
            prop_assert!(may_serve_on_error(&f, &req, secs(route) + secs(more), now));
        }
    }
}
