//! The header fields etagate writes itself, spelled as their registrations and the RFCs spell
//! them. HTTP/1.1 field names are case-insensitive, but operators read `ETag` and
//! `Cache-Status` next to the origin's `Content-Type`, and nginx, Varnish and ATS write them so.
//! Pingora keeps the case of a name given as text (HTTP/2 lower-cases every name regardless);
//! the `http` crate's constants are lower case and only some of them are title-cased on the
//! wire, so these are text.

pub const ETAG: &str = "ETag";
pub const CACHE_STATUS: &str = "Cache-Status";
pub const X_CACHE_KEY: &str = "X-Cache-Key";
pub const X_CACHE_HIT: &str = "X-Cache-Hit";
pub const RETRY_AFTER: &str = "Retry-After";
pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
