//! etagate: an HTTP gateway on Pingora that makes every origin speak conditional HTTP.
//!
//! The request's journey through the source:
//! - [`config`]: the YAML file, validated once into an immutable snapshot, swapped on reload;
//! - [`proxy`]: the `ProxyHttp` phases, a thin conductor;
//! - [`http`]: HTTP semantics as pure functions (validators, preconditions, freshness, ranges);
//! - [`cache`]: the shared cache on pingora-cache (storage, keys, storability);
//! - [`metrics`]: Prometheus metrics and the access log;
//! - [`admin`]: the operator listener;
//! - [`server`]: process lifecycle (start, reload, upgrade, drain).

pub mod admin;
pub mod cache;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod server;
