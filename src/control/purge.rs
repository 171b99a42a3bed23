//! Purge requests and their reports: what `POST /purge` takes and answers, and what a fleet
//! of etagate nodes sends between them. Both JSON forms are a stable interface (documented in
//! `docs/operations.md`); add fields only with defaults.
//!
//! Request (every field optional, `mode` defaults to `hard`; at least one target):
//!
//! ```json
//! {"urls": ["https://www.example.com/a?x=1"], "prefixes": ["https://www.example.com/blog/"],
//!  "tags": ["product-42"], "mode": "soft"}
//! ```
//!
//! Report (`entries`: stored responses removed, or newly marked stale; each target also gets
//! its own count, in request order; URLs and prefixes in their canonical form):
//!
//! ```json
//! {"mode": "soft", "entries": 3,
//!  "urls": [{"target": "https://www.example.com/a?x=1", "entries": 1}],
//!  "prefixes": [{"target": "https://www.example.com/blog/", "entries": 2}],
//!  "tags": [{"target": "product-42", "entries": 0}]}
//! ```
//!
//! A [`PurgeRequest`] is valid by construction: deserializing one checks it, so a node that
//! receives one from another can apply it without a second kind of error.

use crate::cache::key::{url_text, PrimaryKey};
use crate::cache::storage::MemStore;
use crate::http::authority::Authority;
use crate::http::tags::{is_valid_tag, MAX_TAG_LEN};
use crate::metrics::METRICS;
use pingora_cache::key::HashBinary;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::cache::storage::PurgeMode;

/// Targets (URLs, prefixes and tags together) one request may name.
pub const MAX_TARGETS: usize = 1000;
/// Longest URL or prefix accepted, in bytes.
pub const MAX_URL_LEN: usize = 8192;

/// Why a purge request was refused (the admin listener answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequestError(pub String);

impl fmt::Display for PurgeRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PurgeRequestError {}

fn refuse<T>(message: impl Into<String>) -> Result<T, PurgeRequestError> {
    Err(PurgeRequestError(message.into()))
}

/// The JSON form, as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequestJson {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    mode: PurgeMode,
}

/// One URL to purge: its canonical text and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlTarget {
    text: String,
    hash: HashBinary,
}

/// A checked purge request: absolute `http://` or `https://` URLs and URL prefixes (host
/// lowercased, default port dropped: the form keys are built from), exact tags, and the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PurgeRequestJson", into = "PurgeRequestJson")]
pub struct PurgeRequest {
    urls: Vec<UrlTarget>,
    prefixes: Vec<String>,
    tags: Vec<String>,
    mode: PurgeMode,
}

impl TryFrom<PurgeRequestJson> for PurgeRequest {
    type Error = PurgeRequestError;

    fn try_from(j: PurgeRequestJson) -> Result<Self, Self::Error> {
        PurgeRequest::new(j.urls, j.prefixes, j.tags, j.mode)
    }
}

impl From<PurgeRequest> for PurgeRequestJson {
    fn from(r: PurgeRequest) -> Self {
        PurgeRequestJson {
            urls: r.urls.into_iter().map(|u| u.text).collect(),
            prefixes: r.prefixes,
            tags: r.tags,
            mode: r.mode,
        }
    }
}

/// An absolute http(s) URL as (scheme, canonical authority, path and query as written).
fn parse_url(what: &str, text: &str) -> Result<(String, String, String), PurgeRequestError> {
    if text.len() > MAX_URL_LEN {
        return refuse(format!(
            "{what} '{}...' is longer than {MAX_URL_LEN} bytes",
            text.chars().take(64).collect::<String>()
        ));
    }
    let uri: http::Uri = match text.parse() {
        Ok(u) => u,
        Err(e) => {
            return refuse(format!(
                "{what} '{text}' is not an absolute http:// or https:// URL ({e})"
            ))
        }
    };
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s.to_string(),
        _ => {
            return refuse(format!(
                "{what} '{text}' must be an absolute http:// or https:// URL"
            ))
        }
    };
    let Some(authority) = uri.authority() else {
        return refuse(format!("{what} '{text}' has no host"));
    };
    let authority = match Authority::parse(authority.as_str().as_bytes(), &scheme) {
        Ok(a) => a.to_string(),
        Err(why) => return refuse(format!("{what} '{text}': {why}")),
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    Ok((scheme, authority, path))
}

impl PurgeRequest {
    /// Check and canonicalize a request.
    pub fn new(
        urls: Vec<String>,
        prefixes: Vec<String>,
        tags: Vec<String>,
        mode: PurgeMode,
    ) -> Result<PurgeRequest, PurgeRequestError> {
        let total = urls.len() + prefixes.len() + tags.len();
        if total == 0 {
            return refuse("nothing to purge: give at least one of urls, prefixes or tags");
        }
        if total > MAX_TARGETS {
            return refuse(format!(
                "{total} targets in one request; send at most {MAX_TARGETS} per request"
            ));
        }
        let urls = urls
            .iter()
            .map(|u| {
                let (scheme, authority, path) = parse_url("URL", u.trim())?;
                Ok(UrlTarget {
                    text: url_text(&scheme, &authority, &path),
                    hash: PrimaryKey::new(&scheme, &authority, &path).hash,
                })
            })
            .collect::<Result<Vec<_>, PurgeRequestError>>()?;
        let prefixes = prefixes
            .iter()
            .map(|p| {
                let (scheme, authority, path) = parse_url("prefix", p.trim())?;
                Ok(url_text(&scheme, &authority, &path))
            })
            .collect::<Result<Vec<_>, PurgeRequestError>>()?;
        for t in &tags {
            if !is_valid_tag(t) {
                let why = if t.is_empty() {
                    "is empty".to_string()
                } else if t.len() > MAX_TAG_LEN {
                    format!("is longer than {MAX_TAG_LEN} bytes, and etagate never indexes such a tag (the origin's tag was dropped)")
                } else {
                    "has surrounding whitespace or control characters, which no indexed tag has"
                        .to_string()
                };
                return refuse(format!("tag '{}' {why}", t.escape_debug()));
            }
        }
        Ok(PurgeRequest {
            urls,
            prefixes,
            tags,
            mode,
        })
    }

    /// Read an admin request body: a JSON object (see the module doc), or plain text with one
    /// absolute URL per line (a hard purge of those URLs, the original format).
    pub fn from_body(body: &[u8]) -> Result<PurgeRequest, PurgeRequestError> {
        let Ok(text) = std::str::from_utf8(body) else {
            return refuse("the body is not UTF-8");
        };
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            return serde_json::from_str(trimmed)
                .or_else(|e| refuse(format!("invalid purge request: {e}")));
        }
        let urls: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            return refuse(
                "send the URLs to purge in the body, one per line, or a JSON object \
                 {\"urls\": [...], \"prefixes\": [...], \"tags\": [...], \"mode\": \"hard\"|\"soft\"}",
            );
        }
        PurgeRequest::new(urls, Vec::new(), Vec::new(), PurgeMode::Hard)
    }

    pub fn mode(&self) -> PurgeMode {
        self.mode
    }

    /// The URLs, canonical.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.urls.iter().map(|u| u.text.as_str())
    }

    /// The prefixes, canonical.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(String::as_str)
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    /// Targets named, all kinds together.
    pub fn len(&self) -> usize {
        self.urls.len() + self.prefixes.len() + self.tags.len()
    }

    /// Never true for a checked request; here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one target of a purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The URL or prefix (canonical) or the tag.
    pub target: String,
    /// Stored responses it removed (hard) or newly marked stale (soft). A response already
    /// removed or marked by an earlier target or purge is not counted again.
    pub entries: usize,
}

/// What a purge did on one node (or, merged, on several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    pub mode: PurgeMode,
    /// All targets together.
    pub entries: usize,
    pub urls: Vec<TargetReport>,
    pub prefixes: Vec<TargetReport>,
    pub tags: Vec<TargetReport>,
}

impl PurgeReport {
    /// Add another node's report of the same request: counts summed per target.
    pub fn merge(&mut self, other: &PurgeReport) {
        self.entries += other.entries;
        for (mine, theirs) in [
            (&mut self.urls, &other.urls),
            (&mut self.prefixes, &other.prefixes),
            (&mut self.tags, &other.tags),
        ] {
            for t in theirs {
                match mine.iter_mut().find(|m| m.target == t.target) {
                    Some(m) => m.entries += t.entries,
                    None => mine.push(t.clone()),
                }
            }
        }
    }
}

/// Apply `req` to `store`, counting each target in the purge metrics.
pub fn apply(store: &MemStore, req: &PurgeRequest) -> PurgeReport {
    let mode = req.mode;
    let counted = |kind: &str, target: &str, entries: usize| {
        METRICS.purge(kind, mode.as_str(), entries);
        TargetReport {
            target: target.to_string(),
            entries,
        }
    };
    let urls: Vec<TargetReport> = req
        .urls
        .iter()
        .map(|u| counted("url", &u.text, store.purge_url(&u.hash, mode)))
        .collect();
    let prefixes: Vec<TargetReport> = req
        .prefixes
        .iter()
        .map(|p| counted("prefix", p, store.purge_prefix(p, mode)))
        .collect();
    let tags: Vec<TargetReport> = req
        .tags
        .iter()
        .map(|t| counted("tag", t, store.purge_tag(t, mode)))
        .collect();
    let entries = urls
        .iter()
        .chain(&prefixes)
        .chain(&tags)
        .map(|t| t.entries)
        .sum();
    PurgeReport {
        mode,
        entries,
        urls,
        prefixes,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Entry;
    use crate::http::freshness::Freshness;
    use crate::http::vary::VarySpec;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn body(s: &str) -> Result<PurgeRequest, String> {
        PurgeRequest::from_body(s.as_bytes()).map_err(|e| e.0)
    }

    #[test]
    fn plain_text_bodies_are_absolute_urls_purged_hard() {
        let r = body("http://A.test:80/x?y=1\n\n https://b.test \n").expect("valid");
        assert_eq!(r.mode(), PurgeMode::Hard);
        assert_eq!(
            r.urls().collect::<Vec<_>>(),
            ["http://a.test/x?y=1", "https://b.test/"]
        );
        assert_eq!(
            r.urls[0].hash,
            PrimaryKey::new("http", "a.test", "/x?y=1").hash,
            "the key the proxy builds for that URL"
        );
        for bad in ["/relative", "ftp://a.test/", "  \n", "http://a.test:80:80/"] {
            assert!(body(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn json_bodies_name_urls_prefixes_tags_and_a_mode() {
        let r = body(
            r#" {"urls":["http://a.test/1"],"prefixes":["HTTPS://B.test:443/blog/"],"tags":["t 1","x"],"mode":"soft"}"#,
        )
        .expect("valid");
        assert_eq!(r.mode(), PurgeMode::Soft);
        assert_eq!(r.prefixes().collect::<Vec<_>>(), ["https://b.test/blog/"]);
        assert_eq!(r.tags().collect::<Vec<_>>(), ["t 1", "x"]);
        assert_eq!(r.len(), 4);
        let hard = body(r#"{"tags":["x"]}"#).expect("mode defaults to hard");
        assert_eq!(hard.mode(), PurgeMode::Hard);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            (r#"{}"#, "nothing to purge"),
            (r#"{"tags":["x"],"mode":"gentle"}"#, "unknown variant"),
            (r#"{"tag":["x"]}"#, "unknown field"),
            (r#"{"tags":[""]}"#, "is empty"),
            (r#"{"tags":[" x"]}"#, "whitespace"),
            (r#"{"urls":["/x"]}"#, "absolute"),
            (r#"{"prefixes":["example.com/"]}"#, "absolute"),
            (r#"{"urls": "http://a.test/"}"#, "invalid type"),
            (r#"{"tags": ["x"]"#, "EOF"),
        ];
        for (b, want) in cases {
            let e = body(b).expect_err(b);
            assert!(e.contains(want), "{b}: {e}");
        }
        let long = format!(r#"{{"tags":["{}"]}}"#, "a".repeat(MAX_TAG_LEN + 1));
        assert!(body(&long).expect_err("long tag").contains("never indexes"));
        let many: Vec<String> = (0..=MAX_TARGETS).map(|i| format!("\"t{i}\"")).collect();
        let many = format!(r#"{{"tags":[{}]}}"#, many.join(","));
        assert!(body(&many).expect_err("too many").contains("at most"));
    }

    #[test]
    fn the_json_form_round_trips_canonical() {
        let r = PurgeRequest::new(
            vec!["http://A.test/x".into()],
            vec!["http://a.test:80/p".into()],
            vec!["t".into()],
            PurgeMode::Soft,
        )
        .expect("valid");
        let json = serde_json::to_string(&r).expect("serialize");
        assert_eq!(
            json,
            r#"{"urls":["http://a.test/x"],"prefixes":["http://a.test/p"],"tags":["t"],"mode":"soft"}"#
        );
        let back: PurgeRequest = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, r);
    }

    #[test]
    fn reports_merge_per_target() {
        let mut a = PurgeReport {
            mode: PurgeMode::Hard,
            entries: 1,
            urls: vec![TargetReport {
                target: "http://a.test/".into(),
                entries: 1,
            }],
            ..Default::default()
        };
        let b = PurgeReport {
            mode: PurgeMode::Hard,
            entries: 3,
            urls: vec![TargetReport {
                target: "http://a.test/".into(),
                entries: 2,
            }],
            tags: vec![TargetReport {
                target: "t".into(),
                entries: 1,
            }],
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.entries, 4);
        assert_eq!(a.urls[0].entries, 3);
        assert_eq!(a.tags.len(), 1);
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["urls"][0]["target"], "http://a.test/");
        assert_eq!(json["mode"], "hard");
    }

    fn store_with(urls: &[(&str, &[&str])]) -> MemStore {
        let store = MemStore::new(8 << 20, 1 << 20);
        for (url, tags) in urls {
            let (scheme, authority, path) = parse_url("URL", url).expect("url");
            let key = PrimaryKey::with_text(&scheme, &authority, &path);
            let h = pingora_http::ResponseHeader::build(200, None).expect("header");
            let e = Entry::new(
                1,
                h,
                Bytes::from_static(b"x"),
                Freshness::plain(Duration::from_secs(60), SystemTime::now()),
                None,
                VarySpec::None,
                false,
            )
            .labelled(
                tags.iter().map(|t| Arc::from(*t)).collect(),
                key.url().cloned(),
            );
            store.insert(key.hash, Arc::new(e));
        }
        store
    }

    #[test]
    fn a_request_purges_each_target_and_reports_it() {
        let store = store_with(&[
            ("http://a.test/1", &["red"]),
            ("http://a.test/blog/1", &["red", "blue"]),
            ("http://a.test/blog/2", &[]),
            ("http://b.test/blog/3", &["blue"]),
        ]);
        let req = body(
            r#"{"urls":["http://a.test/1","http://a.test/none"],"prefixes":["http://a.test/blog/"],"tags":["blue"]}"#,
        )
        .expect("valid");
        let report = apply(&store, &req);
        assert_eq!(report.entries, 4);
        assert_eq!(
            report.urls.iter().map(|t| t.entries).collect::<Vec<_>>(),
            [1, 0]
        );
        assert_eq!(report.prefixes[0].entries, 2);
        assert_eq!(
            report.tags[0].entries, 1,
            "blog/1 was already gone; only b.test/blog/3 was left"
        );
        assert_eq!(store.objects(), 0);
    }
}
