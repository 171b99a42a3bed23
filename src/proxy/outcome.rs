//! What happened to a request, in the two vocabularies that report it: the `Cache-Status`
//! header (RFC 9211) the client sees and the cache outcome the metrics and the access log
//! count. One place decides both, from the facts of the request's path, so they cannot drift
//! apart between the paths a request can take.

use super::ctx::{Fwd, Sent};
use crate::cache::key::PrimaryKey;
use crate::http::cache_status::CacheStatus;
use crate::http::names;
use crate::metrics::{CacheOutcome, RouteMetrics};
use pingora_error::Result;
use pingora_http::ResponseHeader;

/// How a stored response answered a request without a forward of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredUse {
    /// Fresh (or stale within the request's max-stale).
    Hit,
    /// Stale, served while a background refresh runs.
    WhileRevalidating,
    /// Stale, served because the origin failed with this status (0: no response at all).
    OnError(u16),
}

/// A stored response served by etagate itself; `ttl` is its remaining freshness.
pub fn of_stored(how: StoredUse, ttl: i64) -> (CacheStatus, CacheOutcome) {
    let ttl = Some(ttl);
    match how {
        StoredUse::Hit => (
            CacheStatus {
                hit: true,
                ttl,
                ..Default::default()
            },
            CacheOutcome::Hit,
        ),
        StoredUse::WhileRevalidating => (
            CacheStatus {
                hit: true,
                ttl,
                detail: Some("stale-while-revalidate"),
                ..Default::default()
            },
            CacheOutcome::StaleWhileRevalidate,
        ),
        StoredUse::OnError(code) => (
            CacheStatus {
                fwd: Some("stale"),
                fwd_status: (code > 0).then_some(code),
                ttl,
                detail: Some("stale-if-error"),
                ..Default::default()
            },
            CacheOutcome::Stale,
        ),
    }
}

/// The facts of a request that went through an inner subrequest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub fwd: Option<Fwd>,
    /// Another request's fill answered (the inner found it stored).
    pub served_from_cache: bool,
    /// The origin answered the revalidation with 304.
    pub revalidated: bool,
    /// The response is being stored.
    pub storing: bool,
    pub origin_status: Option<u16>,
    /// The status of the response being sent.
    pub status: u16,
    /// A full response to a revalidation carries the stale entry's content tag.
    pub same_content: bool,
}

pub fn of_forwarded(f: &Forwarded) -> (CacheStatus, CacheOutcome) {
    if f.served_from_cache {
        let status = CacheStatus {
            hit: true,
            collapsed: true,
            ..Default::default()
        };
        return (status, CacheOutcome::Hit);
    }
    let status = CacheStatus {
        fwd: Some(f.fwd.unwrap_or(Fwd::Bypass).as_str()),
        fwd_status: f.origin_status,
        stored: f.storing,
        ..Default::default()
    };
    let outcome = if f.revalidated {
        CacheOutcome::RevalidatedUnchanged
    } else {
        match f.fwd {
            Some(Fwd::Bypass) | None => CacheOutcome::Bypass,
            Some(Fwd::Owner) => CacheOutcome::Owner,
            Some(Fwd::Stale) if f.status >= 500 => CacheOutcome::Expired,
            Some(Fwd::Stale) if f.same_content => CacheOutcome::RevalidatedUnchanged,
            Some(Fwd::Stale) => CacheOutcome::RevalidatedChanged,
            Some(Fwd::UriMiss) | Some(Fwd::VaryMiss) => {
                // Uncacheable means the origin answered and the answer may not be stored; a
                // failed fetch is still a miss.
                let answered = f.origin_status.is_some_and(|o| o < 500) && f.status < 500;
                if f.storing || !answered {
                    CacheOutcome::Miss
                } else {
                    CacheOutcome::Uncacheable
                }
            }
        }
    };
    (status, outcome)
}

/// The cache phase Pingora's own pipeline ended in, for a request that took it without a
/// subrequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelinePhase {
    /// A stored response answered.
    Hit,
    /// Fetched and being stored.
    Miss,
    /// A stale entry was replaced by a new response.
    Expired,
    /// The origin answered 304 to a revalidation; `stored`: the refreshed entry is kept.
    Revalidated { stored: bool },
    /// The cache did not take part, or the response may not be stored.
    Disabled,
}

pub fn of_pipeline(
    phase: PipelinePhase,
    fwd: Option<Fwd>,
    origin_status: u16,
) -> (CacheStatus, CacheOutcome) {
    let fwd_status = Some(origin_status);
    match phase {
        PipelinePhase::Hit => (
            CacheStatus {
                hit: true,
                ..Default::default()
            },
            CacheOutcome::Hit,
        ),
        PipelinePhase::Miss => (
            CacheStatus {
                fwd: Some(fwd.map(Fwd::as_str).unwrap_or("miss")),
                fwd_status,
                stored: true,
                ..Default::default()
            },
            CacheOutcome::Miss,
        ),
        PipelinePhase::Expired => (
            CacheStatus {
                fwd: Some("stale"),
                fwd_status,
                stored: true,
                ..Default::default()
            },
            CacheOutcome::RevalidatedChanged,
        ),
        PipelinePhase::Revalidated { stored } => (
            CacheStatus {
                fwd: Some("stale"),
                fwd_status: Some(304),
                stored,
                ..Default::default()
            },
            CacheOutcome::RevalidatedUnchanged,
        ),
        PipelinePhase::Disabled if fwd == Some(Fwd::Owner) => (
            CacheStatus {
                fwd: Some(Fwd::Owner.as_str()),
                fwd_status,
                ..Default::default()
            },
            CacheOutcome::Owner,
        ),
        PipelinePhase::Disabled if fwd != Some(Fwd::Bypass) => (
            CacheStatus {
                fwd: Some(fwd.map(Fwd::as_str).unwrap_or("miss")),
                fwd_status,
                ..Default::default()
            },
            CacheOutcome::Uncacheable,
        ),
        PipelinePhase::Disabled => (
            CacheStatus {
                fwd: Some("bypass"),
                fwd_status,
                ..Default::default()
            },
            CacheOutcome::Bypass,
        ),
    }
}

/// Write `Cache-Status` (and, with a route's debug headers on, `X-Cache-Key` and
/// `X-Cache-Hit`) into a response header.
pub fn label(
    header: &mut ResponseHeader,
    mut status: CacheStatus,
    debug_key: Option<&PrimaryKey>,
    from_cache: bool,
    cache_name: &str,
) -> Result<()> {
    if let Some(key) = debug_key {
        if let Some(text) = key.text() {
            status.key = Some(text.to_string());
            header.insert_header(names::X_CACHE_KEY, text)?;
        }
        header.insert_header(
            names::X_CACHE_HIT,
            if from_cache { "true" } else { "false" },
        )?;
    }
    header.insert_header(names::CACHE_STATUS, status.render_as(cache_name))?;
    Ok(())
}

/// Add this node's `Cache-Status` entry after the owner's (RFC 9211: the last entry is the
/// cache closest to the client).
pub fn label_after_owner(
    header: &mut ResponseHeader,
    status: CacheStatus,
    cache_name: &str,
) -> Result<()> {
    let ours = status.render_as(cache_name);
    let value = match header
        .headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
    {
        Some(owner) if !owner.trim().is_empty() => format!("{owner}, {ours}"),
        _ => ours,
    };
    header.insert_header(names::CACHE_STATUS, value)?;
    Ok(())
}

/// Count what a response etagate wrote itself did: its status and body for the log, and the
/// conditional answers (304 by where the validator came from, bytes not sent, 412).
pub fn record_delivery(
    sent: &mut Sent,
    metrics: &RouteMetrics,
    status: u16,
    body_bytes: u64,
    full_len: Option<usize>,
    validator_from_cache: bool,
) {
    sent.status = status;
    sent.body_bytes += body_bytes;
    match status {
        304 => {
            if validator_from_cache {
                metrics.not_modified_cache.inc();
            } else {
                metrics.not_modified_origin.inc();
            }
            if let Some(n) = full_len {
                metrics.saved_bytes.inc_by(n as u64);
            }
        }
        412 => metrics.precondition_failed.inc(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(fwd: Fwd) -> Forwarded {
        Forwarded {
            fwd: Some(fwd),
            origin_status: Some(200),
            status: 200,
            ..Default::default()
        }
    }

    #[test]
    fn forwarded_requests_are_classified_by_what_happened() {
        struct Case {
            name: &'static str,
            facts: Forwarded,
            header: &'static str,
            outcome: CacheOutcome,
        }
        let cases = [
            Case {
                name: "a fill by another request answered: a collapsed hit",
                facts: Forwarded {
                    served_from_cache: true,
                    ..forwarded(Fwd::UriMiss)
                },
                header: "etagate; hit; collapsed",
                outcome: CacheOutcome::Hit,
            },
            Case {
                name: "a miss being stored",
                facts: Forwarded {
                    storing: true,
                    ..forwarded(Fwd::UriMiss)
                },
                header: "etagate; fwd=uri-miss; fwd-status=200; stored",
                outcome: CacheOutcome::Miss,
            },
            Case {
                name: "a variant miss the origin answered but forbade storing",
                facts: forwarded(Fwd::VaryMiss),
                header: "etagate; fwd=vary-miss; fwd-status=200",
                outcome: CacheOutcome::Uncacheable,
            },
            Case {
                name: "a miss the origin failed is still a miss, not uncacheable",
                facts: Forwarded {
                    origin_status: Some(503),
                    status: 503,
                    ..forwarded(Fwd::UriMiss)
                },
                header: "etagate; fwd=uri-miss; fwd-status=503",
                outcome: CacheOutcome::Miss,
            },
            Case {
                name: "a miss the origin never answered is a miss",
                facts: Forwarded {
                    origin_status: None,
                    status: 502,
                    ..forwarded(Fwd::UriMiss)
                },
                header: "etagate; fwd=uri-miss",
                outcome: CacheOutcome::Miss,
            },
            Case {
                name: "a revalidation answered with 304",
                facts: Forwarded {
                    revalidated: true,
                    storing: true,
                    origin_status: Some(304),
                    ..forwarded(Fwd::Stale)
                },
                header: "etagate; fwd=stale; fwd-status=304; stored",
                outcome: CacheOutcome::RevalidatedUnchanged,
            },
            Case {
                name: "a revalidation answered with the same content",
                facts: Forwarded {
                    same_content: true,
                    ..forwarded(Fwd::Stale)
                },
                header: "etagate; fwd=stale; fwd-status=200",
                outcome: CacheOutcome::RevalidatedUnchanged,
            },
            Case {
                name: "a revalidation answered with new content",
                facts: forwarded(Fwd::Stale),
                header: "etagate; fwd=stale; fwd-status=200",
                outcome: CacheOutcome::RevalidatedChanged,
            },
            Case {
                name: "a revalidation that failed",
                facts: Forwarded {
                    status: 502,
                    origin_status: None,
                    ..forwarded(Fwd::Stale)
                },
                header: "etagate; fwd=stale",
                outcome: CacheOutcome::Expired,
            },
            Case {
                name: "the cache was not used",
                facts: forwarded(Fwd::Bypass),
                header: "etagate; fwd=bypass; fwd-status=200",
                outcome: CacheOutcome::Bypass,
            },
        ];
        for c in cases {
            let (status, outcome) = of_forwarded(&c.facts);
            assert_eq!(status.render(), c.header, "{}", c.name);
            assert_eq!(outcome, c.outcome, "{}", c.name);
        }
    }

    #[test]
    fn pipeline_phases_are_classified_like_forwarded_requests() {
        let cases: [(PipelinePhase, Option<Fwd>, u16, &str, CacheOutcome); 7] = [
            (
                PipelinePhase::Hit,
                Some(Fwd::UriMiss),
                200,
                "etagate; hit",
                CacheOutcome::Hit,
            ),
            (
                PipelinePhase::Miss,
                Some(Fwd::VaryMiss),
                200,
                "etagate; fwd=vary-miss; fwd-status=200; stored",
                CacheOutcome::Miss,
            ),
            (
                PipelinePhase::Expired,
                Some(Fwd::Stale),
                200,
                "etagate; fwd=stale; fwd-status=200; stored",
                CacheOutcome::RevalidatedChanged,
            ),
            (
                PipelinePhase::Revalidated { stored: true },
                Some(Fwd::Stale),
                200,
                "etagate; fwd=stale; fwd-status=304; stored",
                CacheOutcome::RevalidatedUnchanged,
            ),
            (
                PipelinePhase::Revalidated { stored: false },
                Some(Fwd::Stale),
                200,
                "etagate; fwd=stale; fwd-status=304",
                CacheOutcome::RevalidatedUnchanged,
            ),
            (
                PipelinePhase::Disabled,
                Some(Fwd::UriMiss),
                200,
                "etagate; fwd=uri-miss; fwd-status=200",
                CacheOutcome::Uncacheable,
            ),
            (
                PipelinePhase::Disabled,
                Some(Fwd::Bypass),
                201,
                "etagate; fwd=bypass; fwd-status=201",
                CacheOutcome::Bypass,
            ),
        ];
        for (phase, fwd, origin, header, outcome) in cases {
            let (s, o) = of_pipeline(phase, fwd, origin);
            assert_eq!(s.render(), header, "{phase:?} {fwd:?}");
            assert_eq!(o, outcome, "{phase:?} {fwd:?}");
        }
    }

    #[test]
    fn stored_answers_carry_their_ttl_and_why_a_stale_one_was_used() {
        let (s, o) = of_stored(StoredUse::Hit, 42);
        assert_eq!(
            (s.render().as_str(), o),
            ("etagate; hit; ttl=42", CacheOutcome::Hit)
        );
        let (s, o) = of_stored(StoredUse::WhileRevalidating, -3);
        assert_eq!(o, CacheOutcome::StaleWhileRevalidate);
        assert!(s.render().contains("hit; ttl=-3"), "{}", s.render());
        let (s, o) = of_stored(StoredUse::OnError(503), -9);
        assert_eq!(o, CacheOutcome::Stale);
        assert!(s
            .render()
            .starts_with("etagate; fwd=stale; fwd-status=503; ttl=-9"));
        let (s, _) = of_stored(StoredUse::OnError(0), -9);
        assert!(!s.render().contains("fwd-status"), "no response at all");
    }
}
